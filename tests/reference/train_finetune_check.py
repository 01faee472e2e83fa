"""Independent recomputation of the evaluation apps' numbers from their output files
(tests/integration/EvalAppsTest.cpp).

Usage:
  train_finetune_check.py auroc MANIFEST.csv PROBABILITIES.csv   -> {"auroc": {label: sklearn AUROC}}
  train_finetune_check.py bleu REPORTS.csv                       -> {"bleu1".."bleu4": nltk corpus_bleu,
                                                                     "rouge_l": rouge-score mean F}
AUROC: sklearn.metrics.roc_auc_score over the cases with a known label (null with one class).
BLEU: biud's tokenisation (lower-case, split on anything but [a-z0-9]), nltk corpus_bleu without
smoothing, one reference per report; ROUGE-L: rouge_score RougeScorer(['rougeL']) on raw texts.
"""
import csv
import json
import math
import re
import sys


def tokenize(s):
    return re.sub(r"[^a-z0-9\x80-\U0010ffff]+", " ", s.lower()).split()


def auroc(manifest, probabilities):
    from sklearn.metrics import roc_auc_score

    with open(manifest, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    with open(probabilities, newline="") as f:
        reader = csv.DictReader(f)
        labels = [c for c in reader.fieldnames if c != "id"]
        probs = list(reader)
    out = {}
    for lab in labels:
        y, s = [], []
        for p in probs:
            v = rows[p["id"]][lab]
            if v in ("", "nan", "NaN", "-1"):
                continue
            y.append(int(float(v) > 0.5))
            s.append(float(p[lab]))
        out[lab] = roc_auc_score(y, s) if 0 < sum(y) < len(y) else None
    return {"auroc": out}


def bleu(reports):
    from nltk.translate.bleu_score import corpus_bleu
    from rouge_score import rouge_scorer

    with open(reports, newline="") as f:
        rows = list(csv.DictReader(f))
    hyps = [tokenize(r["generated"]) for r in rows]
    refs = [[tokenize(r["reference"])] for r in rows]
    out = {}
    for n in range(1, 5):
        out[f"bleu{n}"] = corpus_bleu(refs, hyps, weights=tuple([1.0 / n] * n))
    sc = rouge_scorer.RougeScorer(["rougeL"])
    out["rouge_l"] = sum(sc.score(r["reference"], r["generated"])["rougeL"].fmeasure for r in rows) / len(rows)
    return out


def main():
    mode = sys.argv[1]
    res = auroc(sys.argv[2], sys.argv[3]) if mode == "auroc" else bleu(sys.argv[2])
    print(json.dumps(res, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))


if __name__ == "__main__":
    main()
