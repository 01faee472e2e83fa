"""The small heads of biud's models (include/biud/models/Heads.h): projections into the shared
space, the distillation adapter (d -> d_X) and the learnable temperature."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ProjectionHead(nn.Module):
    """Linear (`proj`, hidden = 0) or Linear-GELU-Linear (`fc1`/`fc2`), L2-normalised when `normalize`."""

    def __init__(self, inp: int, out: int, hidden: int = 0, normalize: bool = True):
        super().__init__()
        if hidden == 0:
            self.proj = nn.Linear(inp, out)
        else:
            self.fc1 = nn.Linear(inp, hidden)
            self.fc2 = nn.Linear(hidden, out)
        self.hidden, self.normalize = hidden, normalize

    def forward(self, x):
        y = self.proj(x) if self.hidden == 0 else self.fc2(F.gelu(self.fc1(x)))
        return F.normalize(y, dim=-1) if self.normalize else y


class DistillAdapter(nn.Module):
    """`proj`: the CT embedding h^CT (width d) into the X-ray teacher's space (width d_X).
    biud normalises its output (biud-embed's volume_adapted)."""

    def __init__(self, d: int, d_x: int):
        super().__init__()
        self.proj = nn.Linear(d, d_x)

    def forward(self, x):
        return self.proj(x)


class Temperature(nn.Module):
    """tau = exp(log_tau) clamped to [min, max]."""

    def __init__(self, init: float = 0.07, min_tau: float = 0.01, max_tau: float = 1.0):
        super().__init__()
        self.log_tau = nn.Parameter(torch.tensor(math.log(init)))
        self.min_tau, self.max_tau = min_tau, max_tau

    def forward(self):
        return self.log_tau.clamp(math.log(self.min_tau), math.log(self.max_tau)).exp()
