"""Reference for OptimTest: the same model, grouping and schedule with torch.optim.AdamW.

Groups follow biud's rule independently: no decay for tensors of dim < 2; lr per name prefix.
The schedule is written out from its definition (warmup (s+1)/W, then cosine to min_ratio).
"""
import json
import math
import sys

import torch
import torch.nn as nn

cfg = json.load(open(sys.argv[1]))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.norm(self.fc1(x))))


net = Toy()
with torch.no_grad():
    for name, p in net.named_parameters():
        v = cfg["init"][name]
        p.copy_(torch.tensor(v["data"], dtype=torch.float32).view(v["shape"]))

groups = []
for name, p in net.named_parameters():
    lr = cfg["lr_fc2"] if name.startswith("fc2.") else cfg["lr"]
    wd = 0.0 if p.dim() < 2 else cfg["wd"]
    groups.append({"params": [p], "lr": lr, "weight_decay": wd, "base": lr})
# "fused": PyTorch's fused CPU kernel (torch.optim.AdamW(fused=True)), else its default loop.
opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-8, fused=bool(cfg.get("fused", False)))

x = torch.tensor(cfg["x"]).view(5, 6)
y = torch.tensor(cfg["y"]).view(5, 2)
steps, warm, lo = cfg["steps"], cfg["warmup"], cfg["min_ratio"]
for s in range(steps):
    if s < warm:
        f = (s + 1) / warm
    else:
        p = min(1.0, (s - warm) / max(1, steps - warm))
        f = lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p))
    for g in opt.param_groups:
        g["lr"] = g["base"] * f
    opt.zero_grad()
    torch.nn.functional.mse_loss(net(x), y).backward()
    opt.step()

print(json.dumps({n: p.detach().flatten().tolist() for n, p in net.named_parameters()}))
