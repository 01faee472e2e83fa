#!/usr/bin/env python3
"""Convert a CT-CLIP checkpoint (torch.save'd state dict, e.g. CT-CLIP_v2.pt) to .safetensors with
Python's torch.load. `biud-import-weights ct-clip` reads the .pt itself; this is for a file saved
in the legacy (non-zip) format, with custom classes inside, or to share the weights as
safetensors. Needs torch and safetensors.

  python scripts/ctclip_to_safetensors.py CT-CLIP_v2.pt CT-CLIP_v2.safetensors
"""
import sys

import torch
from safetensors.torch import save_file


def main(src, dst):
    sd = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):  # a training package {"model": ..., "optim": ...}
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            sys.exit(f"{src}: entry {k} is not a tensor: not a state dict")
        out[k[7:] if k.startswith("module.") else k] = v.detach().clone().contiguous()  # no shared storage
    save_file(out, dst, metadata={"source": src})
    print(f"{len(out)} tensors -> {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
