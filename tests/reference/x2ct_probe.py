#!/usr/bin/env python3
"""scikit-learn reference for biud::train::linearProbe (biud-x2ct-eval's few-shot linear probe).

  x2ct_probe.py IN.safetensors C OUT.safetensors
      IN holds x_train [N, d], y_train [N, F] (NaN = unknown) and x_test [M, d] (float64).
      Per column f: LogisticRegression(C=C, lbfgs, tight tolerance) on the rows whose label is
      known; a column with one known class predicts that class's frequency. Writes OUT with
      `probs` [M, F] (float64).
"""
import sys

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression


def main(inp, c, out):
    t = load_file(inp)
    x, y, xt = t["x_train"], t["y_train"], t["x_test"]
    probs = np.zeros((xt.shape[0], y.shape[1]))
    for f in range(y.shape[1]):
        known = ~np.isnan(y[:, f])
        yf = (y[known, f] > 0.5).astype(int)
        if known.sum() == 0 or yf.min() == yf.max():
            probs[:, f] = 0.5 if known.sum() == 0 else yf.mean()
            continue
        m = LogisticRegression(C=float(c), tol=1e-12, max_iter=100000)
        m.fit(x[known], yf)
        probs[:, f] = m.predict_proba(xt)[:, 1]
    save_file({"probs": probs}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
