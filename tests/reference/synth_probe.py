"""Learnability of a biud-synth data set: a linear probe on coarsely downsampled CT volumes.

usage: synth_probe.py DATASET_DIR
For each finding, fits an L2 logistic regression (scikit-learn) on the train split (voxels
averaged in 4x4x4 blocks, HU/1000, plus a whole-volume HU histogram) and reports the test-split AUROC, next to the same probe fitted
on shuffled train labels (a model that cannot learn the findings: about 0.5). Prints JSON.
"""
import csv
import json
import os
import sys

import nibabel as nib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

FINDINGS = ["lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax", "consolidation", "emphysema",
            "cardiomegaly", "pericardial_effusion", "atelectasis", "arterial_calcification"]


def features(path, block=4):
    hu = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    a = hu / 1000.0
    n = [s // block * block for s in a.shape]
    a = a[:n[0], :n[1], :n[2]]
    blocks = a.reshape(n[0] // block, block, n[1] // block, block, n[2] // block, block).mean(axis=(1, 3, 5)).ravel()
    # Plus a position-free HU histogram (fraction of voxels per 50 HU bin).
    hist = np.histogram(hu, bins=np.arange(-1050, 1051, 50))[0] / hu.size
    return np.concatenate([blocks, 30 * hist])


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "ct", "manifest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    sets = {}
    for split in ("train", "test"):
        rs = [r for r in rows if r["split"] == split]
        X = np.stack([features(os.path.join(d, "ct", r["image"])) for r in rs])
        Y = np.array([[int(r[k]) for k in FINDINGS] for r in rs])
        sets[split] = (X, Y)
    (Xtr, Ytr), (Xte, Yte) = sets["train"], sets["test"]
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    rng = np.random.default_rng(0)
    out = {"n_train": len(Xtr), "n_test": len(Xte), "auroc": {}, "auroc_shuffled": {}}
    for i, k in enumerate(FINDINGS):
        if Ytr[:, i].min() == Ytr[:, i].max() or Yte[:, i].min() == Yte[:, i].max():
            continue
        clf = LogisticRegression(C=0.01, max_iter=2000).fit(Xtr, Ytr[:, i])
        out["auroc"][k] = round(float(roc_auc_score(Yte[:, i], clf.decision_function(Xte))), 3)
        clf = LogisticRegression(C=0.01, max_iter=2000).fit(Xtr, rng.permutation(Ytr[:, i]))
        out["auroc_shuffled"][k] = round(float(roc_auc_score(Yte[:, i], clf.decision_function(Xte))), 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
