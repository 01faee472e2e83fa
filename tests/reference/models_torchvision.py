"""Reference for the C++ ResNet-50 and ViT-B/16: torchvision models with random weights (BN
running statistics randomised too, so eval-mode BN matters), saved to safetensors with
torchvision's own parameter names, and their eval-mode logits on small random images.

usage: models_torchvision.py OUT_DIR
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.randn(2, 3, 64, 64)

    r = torchvision.models.resnet50()
    with torch.no_grad():
        for m in r.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0)  # keeps activations in a sane range through 50 layers
                m.bias.uniform_(-0.1, 0.1)
    r.eval()
    with torch.no_grad():
        yr = r(x)
    save_file({k: v.contiguous() for k, v in r.state_dict().items()}, os.path.join(out, "resnet50.safetensors"))

    v = torchvision.models.vit_b_16(image_size=64)
    with torch.no_grad():
        for n, p in v.named_parameters():
            if "bias" in n or "pos_embedding" in n or "class_token" in n:
                p.normal_(0, 0.02)  # torchvision initialises these to zero: make them matter
    v.eval()
    with torch.no_grad():
        yv = v(x)
    save_file({k: v.contiguous() for k, v in v.state_dict().items()}, os.path.join(out, "vit_b_16.safetensors"))
    save_file({"x": x, "resnet50": yr, "vit_b_16": yv}, os.path.join(out, "ref.safetensors"))


if __name__ == "__main__":
    main()
