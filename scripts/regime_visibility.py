#!/usr/bin/env python3
"""Which synthetic findings does an X-ray show? (docs/regime.md, configs/regime/findings.yaml)

Usage: regime_visibility.py CXR_MANIFEST [--train N] [--test N]

An L2 logistic regression (scikit-learn, C = 0.1) on the raw pixels of each X-ray, averaged 2 x 2
(64 px -> 32 x 32), fitted per finding on the first N rows of the manifest and scored (AUROC) on
the next ones. No learned features and no expert: a finding this probe separates at AUROC >= 0.75
is called X-ray-visible. Prints one line per finding: id, AUROC, prevalence.
"""
import argparse
import csv
import os

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

FINDINGS = ["lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax", "consolidation", "emphysema",
            "cardiomegaly", "pericardial_effusion", "atelectasis", "arterial_calcification"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.manifest, newline="")))[: a.train + a.test]
    base = os.path.dirname(a.manifest)

    def pixels(r):
        x = np.asarray(Image.open(os.path.join(base, r["image"])).convert("L"), dtype=np.float32) / 255
        h, w = x.shape
        return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3)).ravel()

    X = np.stack([pixels(r) for r in rows])
    Y = np.array([[int(r[f]) for f in FINDINGS] for r in rows])
    tr, te = slice(0, a.train), slice(a.train, a.train + a.test)
    for k, f in enumerate(FINDINGS):
        m = LogisticRegression(C=0.1, max_iter=2000).fit(X[tr], Y[tr, k])
        print(f"{f} {roc_auc_score(Y[te, k], m.decision_function(X[te])):.3f} {Y[:, k].mean():.3f}")


if __name__ == "__main__":
    main()
