"""A small X-ray encoder exported with torch.jit.script (the way a stage-0 teacher is handed to
biud), its input and its output, for the C++ TorchScript teacher wrapper.

usage: models_torchscript.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file


class Teacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.proj = nn.Linear(16, 24)

    def forward(self, x: torch.Tensor):
        f = torch.relu(self.conv(x))
        tokens = f.flatten(2).transpose(1, 2)
        return self.proj(tokens.mean(1)), tokens


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    m = torch.jit.script(Teacher().eval())
    m.save(os.path.join(out, "teacher.pt"))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pooled, tokens = m(x)
    save_file({"x": x, "pooled": pooled, "tokens": tokens.contiguous()}, os.path.join(out, "ref.safetensors"))


if __name__ == "__main__":
    main()
