"""Cross-check of the C++ safetensors reader/writer with the `safetensors` package.

usage: models_safetensors.py write OUT_FILE     -> writes known tensors of every dtype
       models_safetensors.py check IN_FILE      -> loads a file biud wrote and checks its values
       models_safetensors.py npy OUT_DIR        -> .npy files (numpy.save) + the same arrays in ref.safetensors
"""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def tensors():
    return {
        "f32": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
        "f16": (torch.arange(6, dtype=torch.float32) / 3).to(torch.float16).reshape(2, 3),
        "bf16": (torch.arange(5, dtype=torch.float32) * 1.5 - 2).to(torch.bfloat16),
        "i64": torch.tensor([[-(2**40), 0, 7]], dtype=torch.int64),
        "f64": torch.tensor([3.141592653589793], dtype=torch.float64),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(2.5),
    }


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "npy":
        import os
        import numpy as np
        rng = np.random.default_rng(0)
        arrays = {"f4": rng.standard_normal((3, 4, 5)).astype("<f4"), "f8": rng.standard_normal(7),
                  "f2": rng.standard_normal((2, 2)).astype("<f2"), "i8": np.arange(-3, 3, dtype="<i8").reshape(2, 3),
                  "u1": np.array([0, 200, 255], dtype="u1"), "b1": np.array([True, False])}
        for k, a in arrays.items():
            np.save(os.path.join(path, k + ".npy"), a)
        np.save(os.path.join(path, "fortran.npy"), np.asfortranarray(arrays["f4"]))
        np.save(os.path.join(path, "bigendian.npy"), arrays["f4"].astype(">f4"))
        save_file({k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in arrays.items()},
                  os.path.join(path, "ref.safetensors"))
        return
    if mode == "write":
        save_file(tensors(), path, metadata={"format": "pt", "who": "python"})
        return
    want = tensors()
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        assert keys == set(want), f"keys {sorted(keys)} != {sorted(want)}"
        meta = f.metadata()
        assert meta.get("who") == "biud", meta
        for k, v in want.items():
            got = f.get_tensor(k)
            assert got.dtype == v.dtype, (k, got.dtype, v.dtype)
            assert got.shape == v.shape, (k, got.shape, v.shape)
            assert torch.equal(got, v), (k, got, v)
    print("ok")


if __name__ == "__main__":
    main()
