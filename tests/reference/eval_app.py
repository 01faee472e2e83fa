"""Inputs and scikit-learn/numpy expectations for tests/eval/AppTest.cpp (biud-eval end to end).

Usage: eval_app.py DIR
Writes DIR/labels.csv (with unknown = empty cells), DIR/pred.csv, DIR/pred2.csv, DIR/emb_a.npy,
DIR/emb_b.csv and DIR/expected.json: per-finding roc_auc_score / average_precision_score on the
rows with known labels, and retrieval Recall@K / MAP from numpy cosine similarities.
"""
import json
import sys

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def main():
    d = sys.argv[1]
    rng = np.random.default_rng(3)
    F = ["pleural effusion", "cardiomegaly", "nodule,small"]  # a name that needs CSV quoting
    n = 120
    Y = (rng.random((n, len(F))) < 0.35).astype(float)
    Y[rng.random((n, len(F))) < 0.1] = np.nan
    P = 1 / (1 + np.exp(-(rng.normal(size=(n, len(F))) + 1.5 * np.nan_to_num(Y) - 0.7)))
    P = np.round(P, 2)  # ties
    P2 = np.round(1 / (1 + np.exp(-(rng.normal(size=(n, len(F))) + 0.8 * np.nan_to_num(Y) - 0.4))), 2)
    q = lambda s: '"' + s + '"' if "," in s else s
    with open(f"{d}/labels.csv", "w") as f:
        f.write("id," + ",".join(q(x) for x in F) + "\n")
        for i in range(n):
            f.write(f"case{i}," + ",".join("" if np.isnan(v) else str(int(v)) for v in Y[i]) + "\n")
    for name, M in (("pred", P), ("pred2", P2)):
        order = rng.permutation(n)  # row order must not matter
        with open(f"{d}/{name}.csv", "w") as f:
            f.write("id," + ",".join(q(x) for x in F) + ",extra\n")
            for i in order:
                f.write(f"case{i}," + ",".join(repr(float(v)) for v in M[i]) + ",0.5\n")
    exp = {"findings": F, "auroc": {}, "ap": {}}
    for k, name in enumerate(F):
        m = ~np.isnan(Y[:, k])
        exp["auroc"][name] = roc_auc_score(Y[m, k], P[m, k])
        exp["ap"][name] = average_precision_score(Y[m, k], P[m, k])
    # Reader study on "cardiomegaly": the model's sensitivity at each reader's specificity =
    # the largest tpr among ROC points with 1 - fpr >= specificity.
    from sklearn.metrics import roc_curve
    k = F.index("cardiomegaly")
    m = ~np.isnan(Y[:, k])
    fpr, tpr, _ = roc_curve(Y[m, k], P[m, k], drop_intermediate=False)
    readers = [("R1", 0.7, 0.8), ("R2", 0.55, 0.93), ("R3", 0.9, 0.5)]
    with open(f"{d}/readers.csv", "w") as f:
        f.write("reader,finding,sensitivity,specificity\n")
        for r, se, sp in readers:
            f.write(f"{r},cardiomegaly,{se},{sp}\n")
    exp["readers"] = {r: float(tpr[(1 - fpr) >= sp].max()) for r, se, sp in readers}
    A = rng.normal(size=(40, 8))
    B = A + rng.normal(scale=1.2, size=(40, 8))
    np.save(f"{d}/emb_a.npy", A)
    with open(f"{d}/emb_b.csv", "w") as f:
        f.write("id," + ",".join(f"d{j}" for j in range(8)) + "\n")
        for i in range(40):
            f.write(f"{i}," + ",".join(repr(float(v)) for v in B[i]) + "\n")
    S = (A / np.linalg.norm(A, axis=1, keepdims=True)) @ (B / np.linalg.norm(B, axis=1, keepdims=True)).T
    for key, M in (("a_to_b", S), ("b_to_a", S.T)):
        ranks = np.array([1 + np.sum(M[i] > M[i, i]) for i in range(len(M))])
        exp[key] = {"recall@1": float(np.mean(ranks <= 1)), "recall@5": float(np.mean(ranks <= 5)),
                    "recall@10": float(np.mean(ranks <= 10)), "map": float(np.mean(1.0 / ranks)),
                    "median_rank": float(np.median(ranks))}
    json.dump(exp, open(f"{d}/expected.json", "w"))


if __name__ == "__main__":
    main()
