"""Reference values for tests/eval/ClassificationTest.cpp from scikit-learn and numpy.

Usage: eval_classification.py OUT.json
Writes cases (inputs and expected outputs) as JSON; +inf thresholds are written as the string "inf".
DeLong is checked against an independent O(m*n) implementation from the placement values
(DeLong et al. 1988), not the midrank algorithm the C++ code uses.
"""
import json
import math
import sys
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, precision_recall_fscore_support,
                             precision_score, recall_score, roc_auc_score, roc_curve)


def enc(a):
    return ["inf" if (isinstance(v, float) and math.isinf(v)) else (None if v != v else float(v)) for v in np.asarray(a, dtype=float)]


def classification_case(name, y, s):
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    c = {"name": name, "labels": y.tolist(), "scores": s.tolist()}
    two = len(set(y.tolist())) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c["auroc"] = float(roc_auc_score(y, s)) if two else None
        c["ap"] = float(average_precision_score(y, s)) if y.sum() > 0 else None
        if two:
            fpr, tpr, thr = roc_curve(y, s)
            c["roc"] = {"fpr": enc(fpr), "tpr": enc(tpr), "thresholds": enc(thr)}
            fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
            c["roc_full"] = {"fpr": enc(fpr), "tpr": enc(tpr), "thresholds": enc(thr)}
            j = int(np.argmax(tpr - fpr))
            if j == 0:
                j = 1
            t = float(thr[j])
            c["youden"] = t
            pred = (s >= t).astype(int)
            c["at_youden"] = {
                "f1": float(f1_score(y, pred, zero_division=0)),
                "accuracy": float(accuracy_score(y, pred)),
                "sensitivity": float(recall_score(y, pred, zero_division=0)),
                "specificity": float(recall_score(y, pred, pos_label=0, zero_division=0)),
                "precision": float(precision_score(y, pred, zero_division=0)),
            }
    return c


def delong_reference(y, s1, s2):
    """DeLong variance from pairwise placement values psi(x, y) (O(m n))."""
    y = np.asarray(y)
    out = {}
    V10, V01, aucs = [], [], []
    for s in (s1, s2):
        s = np.asarray(s, dtype=float)
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]).astype(float) + 0.5 * (x[:, None] == z[None, :])
        aucs.append(psi.mean())
        V10.append(psi.mean(axis=1))
        V01.append(psi.mean(axis=0))
    m, n = len(V10[0]), len(V01[0])
    S10 = np.cov(np.vstack(V10))
    S01 = np.cov(np.vstack(V01))
    S = S10 / m + S01 / n
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    diff = aucs[0] - aucs[1]
    z = diff / math.sqrt(var)
    p = math.erfc(abs(z) / math.sqrt(2))
    out.update(auc1=aucs[0], auc2=aucs[1], var=var, z=z, p=p, var1=S[0, 0], var2=S[1, 1],
               ci=[diff - 1.959963984540054 * math.sqrt(var), diff + 1.959963984540054 * math.sqrt(var)])
    return out


def main():
    rng = np.random.default_rng(20240601)
    cases = []
    # Hand cases.
    cases.append(classification_case("tiny", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]))
    cases.append(classification_case("all_tied", [0, 1, 0, 1, 1], [0.5] * 5))
    cases.append(classification_case("perfect", [0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9]))
    cases.append(classification_case("inverted", [1, 1, 0, 0], [0.1, 0.2, 0.3, 0.8]))
    cases.append(classification_case("ties_across", [0, 1, 1, 0, 1, 0, 0], [0.2, 0.2, 0.6, 0.6, 0.6, 0.9, 0.1]))
    cases.append(classification_case("one_class_pos", [1, 1, 1], [0.2, 0.5, 0.9]))
    cases.append(classification_case("one_class_neg", [0, 0, 0, 0], [0.2, 0.5, 0.9, 0.1]))
    # Random cases with many ties (scores rounded).
    for i, (n, dec) in enumerate([(12, 1), (37, 1), (200, 2), (500, 1), (301, 3)]):
        y = rng.integers(0, 2, n)
        if y.sum() in (0, n):
            y[0] = 1 - y[0]
        s = np.round(np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1), dec)
        cases.append(classification_case(f"random{i}", y, s))
    # DeLong cases.
    delong = []
    for i, n in enumerate([40, 150, 600]):
        y = rng.integers(0, 2, n)
        s1 = np.round(rng.normal(0.8 * y, 1.0), 1)
        s2 = np.round(s1 * 0.5 + rng.normal(0.5 * y, 1.0), 1)
        d = {"labels": y.tolist(), "s1": s1.tolist(), "s2": s2.tolist()}
        d.update(delong_reference(y, s1, s2))
        delong.append(d)
    # Clinical efficacy: random multilabel predictions, sklearn micro/macro with zero_division=0.
    Y = rng.integers(0, 2, (60, 6))
    P = np.where(rng.random((60, 6)) < 0.75, Y, 1 - Y)
    Y[:, 5] = 0  # a finding never present
    P[:, 4] = 0  # a finding never predicted
    clin = {"ref": Y.tolist(), "pred": P.tolist()}
    for avg in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(Y, P, average=avg, zero_division=0)
        clin[avg] = [float(p), float(r), float(f)]
    json.dump({"cases": cases, "delong": delong, "clinical": clin}, open(sys.argv[1], "w"))


if __name__ == "__main__":
    main()
