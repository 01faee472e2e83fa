"""What the reference readers make of (malformed) safetensors and .npy files built by the C++ tests.

usage: tensor_malformed.py safetensors DIR   -> DIR/python.json: safetensors.torch.load_file on DIR/*.safetensors
       tensor_malformed.py npy DIR           -> DIR/python.json: numpy.load on DIR/*.npy

python.json maps each file name to {"ok": false, "error": "..."} when the reader raises, or to
{"ok": true, "tensors": {name: {"dtype", "shape", "values", "nonfinite", "first_nonfinite"}}}
with the values as float64 (NaN / Inf written as the strings "nan", "inf", "-inf").
"""
import json
import math
import os
import sys

import numpy as np


def describe(shape, flat, dtype):
    flat = np.asarray(flat, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(flat))
    values = [v if math.isfinite(v) else str(v) for v in flat.tolist()]
    return {"dtype": dtype, "shape": list(shape), "values": values, "nonfinite": int(bad.size),
            "first_nonfinite": int(bad[0]) if bad.size else -1}


def read_safetensors(path):
    import torch
    from safetensors.torch import load_file
    out = {}
    for k, t in load_file(path).items():
        # Flattened in torch first: numpy refuses shapes like [0, 2**63-1] that torch holds.
        out[k] = describe(t.shape, t.reshape(-1).to(torch.float64).numpy(), str(t.dtype))
    return out


def read_npy(path):
    a = np.load(path)  # allow_pickle=False, numpy's default header limit
    return {"array": describe(a.shape, a.reshape(-1), str(a.dtype))}


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    reader, ext = {"safetensors": (read_safetensors, ".safetensors"), "npy": (read_npy, ".npy")}[mode]
    result = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(ext):
            continue
        try:
            result[f] = {"ok": True, "tensors": reader(os.path.join(folder, f))}
        except Exception as e:  # every reader error counts as a refusal
            result[f] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    with open(os.path.join(folder, "python.json"), "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
