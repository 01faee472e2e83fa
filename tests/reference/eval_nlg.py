"""Reference NLG scores for tests/eval/NlgTest.cpp.

Usage: eval_nlg.py OUT.json [--meteor]
Builds a small corpus of synthetic radiology sentences (raw text with capitals and punctuation),
tokenises it with biud's scheme (lower-case, split on anything but [a-z0-9]) and scores the same
tokens with nltk corpus_bleu, pycocoevalcap Cider and Meteor (the METEOR 1.5 jar; skipped with a
message when java is missing), and rouge-score on the raw texts (its tokenizer gives the same tokens).
"""
import json
import re
import shutil
import sys
import warnings

import numpy as np


def tokenize(s):
    return re.sub(r"[^a-z0-9\x80-\U0010ffff]+", " ", s.lower()).split()


def corpus(rng, n):
    findings = ["pleural effusion", "consolidation", "atelectasis", "pneumothorax", "cardiomegaly", "nodule",
                "emphysema", "ground-glass opacity", "lymphadenopathy", "pericardial effusion"]
    places = ["in the right lower lobe", "in the left upper lobe", "at the lung bases", "bilaterally",
              "in the lingula", "adjacent to the hilum"]
    sizes = ["small", "moderate", "large", "mild", "2.5 cm", "subtle"]
    hyps, refs = [], []
    for _ in range(n):
        def sent():
            f = rng.choice(findings)
            kind = rng.integers(0, 4)
            if kind == 0:
                return f"No {f} is seen."
            if kind == 1:
                return f"There is a {rng.choice(sizes)} {f} {rng.choice(places)}."
            if kind == 2:
                return f"{rng.choice(sizes).capitalize()} {f}, unchanged from prior."
            return f"The heart is normal in size; {f} {rng.choice(places)}."
        ref = " ".join(sent() for _ in range(rng.integers(1, 4)))
        # Hypothesis: mostly a perturbed copy of the reference, sometimes unrelated.
        toks = ref.split()
        if rng.random() < 0.2:
            hyp = " ".join(sent() for _ in range(rng.integers(1, 3)))
        else:
            keep = [t for t in toks if rng.random() > 0.2]
            if rng.random() < 0.5 and len(keep) > 3:
                i = rng.integers(0, len(keep) - 2)
                keep[i], keep[i + 1] = keep[i + 1], keep[i]
            if rng.random() < 0.3:
                keep.append(sent())
            hyp = " ".join(keep)
        hyps.append(hyp)
        refs.append([ref])
    return hyps, refs


def main():
    rng = np.random.default_rng(7)
    hyps, refs = corpus(rng, 60)
    # Edge cases: very short hypotheses (shorter than the n-gram order), repeated words.
    hyps += ["Effusion.", "no no no no effusion", "Lungs are clear."]
    refs += [["Small left pleural effusion."], ["No effusion."], ["The lungs are clear. No effusion."]]
    # A second reference for a few items (multi-reference BLEU/ROUGE/CIDEr).
    refs[0].append("Pleural effusion on the right, small.")
    refs[5].append("No acute abnormality.")
    H = [tokenize(h) for h in hyps]
    R = [[tokenize(r) for r in rs] for rs in refs]
    out = {"hyps": hyps, "refs": refs, "tokens0": H[0]}

    from nltk.translate.bleu_score import corpus_bleu
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in range(1, 5):
            out[f"bleu{n}"] = corpus_bleu(R, H, weights=tuple([1.0 / n] * n))
        # A corpus where 4-grams never match (nltk's no-smoothing zero handling).
        out["bleu4_nomatch"] = corpus_bleu([[["a", "b", "c", "d", "e"]]], [["a", "b", "c", "x", "d", "e"]])

    from rouge_score import rouge_scorer
    sc = rouge_scorer.RougeScorer(["rougeL"])
    vals = []
    for h, rs in zip(hyps, refs):
        vals.append(max(sc.score(r, h)["rougeL"].fmeasure for r in rs))
    out["rouge_l"] = float(np.mean(vals))
    out["rouge_l_items"] = vals

    from pycocoevalcap.cider.cider import Cider
    gts = {i: [" ".join(t) for t in R[i]] for i in range(len(H))}
    res = {i: [" ".join(H[i])] for i in range(len(H))}
    score, scores = Cider().compute_score(gts, res)
    out["cider"] = float(score)
    out["cider_items"] = [float(s) for s in scores]

    if "--meteor" not in sys.argv:
        out["meteor"] = None
    elif shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor
        m = Meteor()
        score, scores = m.compute_score(gts, res)
        out["meteor"] = float(score)
        out["meteor_items"] = [float(s) for s in scores]
    else:
        print("java not found: METEOR reference skipped", file=sys.stderr)
        out["meteor"] = None
        out["meteor_skipped"] = "java not found"
    json.dump(out, open(sys.argv[1], "w"))


if __name__ == "__main__":
    main()
