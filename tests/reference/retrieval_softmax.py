"""Reference for the per-epoch top-K draw (METHOD §2): P(rank j) = softmax(scores / tau)_j.

Usage: retrieval_softmax.py TAU K "s11,s12,...;s21,..."  -> JSON list of probability rows
(first K scores of each row), computed with numpy in float64, independently of the C++ code.
"""
import json
import sys

import numpy as np


def main() -> None:
    tau = float(sys.argv[1])
    k = int(sys.argv[2])
    rows = [[float(x) for x in r.split(",")] for r in sys.argv[3].split(";")]
    out = []
    for r in rows:
        s = np.asarray(r[:k], dtype=np.float32).astype(np.float64) / tau
        p = np.exp(s - s.max())
        out.append((p / p.sum()).tolist())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
