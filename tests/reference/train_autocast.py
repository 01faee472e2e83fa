"""Reference for PrecisionTest: forward/backward of a small MLP under torch.autocast(cpu, bf16).

Reads in.safetensors (x, y, fc1.weight, fc1.bias, fc2.weight, fc2.bias), writes out.safetensors
with the output, its dtype code (0 = fp32, 1 = bf16), the loss and the fp32 gradients.
"""
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

d = load_file(sys.argv[1])
p = {k: d[k].clone().requires_grad_(True) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
with torch.autocast("cpu", dtype=torch.bfloat16):
    h = F.linear(d["x"], p["fc1.weight"], p["fc1.bias"])
    h = F.layer_norm(h, (h.shape[-1],))
    out = F.linear(F.gelu(h), p["fc2.weight"], p["fc2.bias"])
    loss = F.mse_loss(out.float(), d["y"])
loss.backward()
res = {"out": out.float().detach(), "out_bf16": torch.tensor([1.0 if out.dtype == torch.bfloat16 else 0.0]),
       "loss": loss.detach().reshape(1)}
for k, v in p.items():
    res["grad." + k] = v.grad
save_file(res, sys.argv[2])
