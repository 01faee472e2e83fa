#!/usr/bin/env python3
"""PyTorch reference for biud::image::resize2D: F.interpolate(bilinear, align_corners=False).

  image_resize2d.py W H OUT_W OUT_H [OUT_W OUT_H ...]
      -> prints a JSON list with one resized image per output size (row-major, y outer);
  the input is value(x, y) = sin(0.3 x) + 0.1 y, the same formula the C++ test uses.
"""
import json
import sys

import torch
import torch.nn.functional as F

args = list(map(int, sys.argv[1:]))
w, h, sizes = args[0], args[1], args[2:]
x = torch.arange(w, dtype=torch.float64)
y = torch.arange(h, dtype=torch.float64)
img = torch.sin(0.3 * x)[None, :] + 0.1 * y[:, None]  # (h, w)
outs = []
for ow, oh in zip(sizes[0::2], sizes[1::2]):
    out = F.interpolate(img[None, None], size=(oh, ow), mode="bilinear", align_corners=False, antialias=False)[0, 0]
    outs.append(out.flatten().tolist())
print(json.dumps(outs))
