"""ResNet-18/34/50/101 in 2D (X-ray) or 3D (CT): the twin of biud's models::ResNet
(include/biud/models/ResNet.h, src/models/ResNet.cpp).

Parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
`fc`), so torchvision's resnet50 state dict loads into the 2D model unchanged. The 3D model is
the same network with Conv3d/BatchNorm3d/max_pool3d, a (stem_kernel_depth x 7 x 7) stem, and
stride 2 along every axis.

Pooling of the last stage: mean (torchvision), max, or GeM ((mean x^p)^(1/p), learnable p).
"""
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class EncoderOutput(NamedTuple):
    pooled: torch.Tensor  # [B, D]
    tokens: torch.Tensor  # [B, N, D]


def _conv(dims, cin, cout, k, stride, pad):
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    return cls(cin, cout, k, stride=stride, padding=pad, bias=False)


def _bn(dims, c):
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


class ResBlock(nn.Module):
    """Basic (two 3x3 convs) or bottleneck (1x1, 3x3 with the stride, 1x1 x4) block."""

    def __init__(self, dims: int, bottleneck: bool, cin: int, planes: int, stride: int, down: bool):
        super().__init__()
        exp = 4 if bottleneck else 1
        if bottleneck:
            shapes = [(cin, planes, 1, 1), (planes, planes, 3, stride), (planes, planes * 4, 1, 1)]
        else:
            shapes = [(cin, planes, 3, stride), (planes, planes, 3, 1)]
        self.n = len(shapes)
        for i, (a, b, k, s) in enumerate(shapes, 1):
            setattr(self, f"conv{i}", _conv(dims, a, b, k, s, k // 2))
            setattr(self, f"bn{i}", _bn(dims, b))
        self.downsample = (nn.Sequential(_conv(dims, cin, planes * exp, 1, stride, 0), _bn(dims, planes * exp))
                           if down else None)

    def forward(self, x):
        h = x
        for i in range(1, self.n + 1):
            h = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h))
            if i < self.n:
                h = torch.relu(h)
        return torch.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """biud's ResNet. `encode(x)` -> EncoderOutput(pooled [B, C], tokens [B, N, C]) where tokens
    is the last feature map flattened; `forward(x)` -> logits (num_classes > 0) or pooled."""

    def __init__(self, spatial_dims: int = 2, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3),
                 width: int = 64, in_channels: int = 3, num_classes: int = 0, stem_kernel_depth: int = 7,
                 pool: str = "mean"):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"resnet: spatial_dims must be 2 or 3, got {spatial_dims}")
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"resnet: block `{block}` (use basic or bottleneck)")
        if pool not in ("mean", "max", "gem"):
            raise ValueError(f"resnet: pool `{pool}` (use mean, max or gem)")
        self.spatial_dims, self.in_channels, self.pool = spatial_dims, in_channels, pool
        d = spatial_dims
        bottleneck = block == "bottleneck"
        exp = 4 if bottleneck else 1
        if d == 2:
            self.conv1 = _conv(2, in_channels, width, 7, 2, 3)
        else:
            kd = stem_kernel_depth
            self.conv1 = _conv(3, in_channels, width, (kd, 7, 7), 2, (kd // 2, 3, 3))
        self.bn1 = _bn(d, width)
        cin = width
        for s in range(4):
            planes = width << s
            blocks = []
            for b in range(layers[s]):
                stride = 2 if (b == 0 and s > 0) else 1
                down = b == 0 and (stride != 1 or cin != planes * exp)
                blocks.append(ResBlock(d, bottleneck, cin, planes, stride, down))
                cin = planes * exp
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.out_dim = cin
        if pool == "gem":
            self.gem_p = nn.Parameter(torch.full((1,), 3.0))
        self.fc = nn.Linear(cin, num_classes) if num_classes > 0 else None
        # biud's initialisation (src/models/ResNet.cpp, torchvision's): He (fan_out) for the
        # convolutions, BatchNorm scale 1 / shift 0 (PyTorch's default).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"resnet: input must be [B, {self.in_channels}, "
                             f"{'H, W' if self.spatial_dims == 2 else 'D, H, W'}], got {list(x.shape)}")
        h = torch.relu(self.bn1(self.conv1(x)))
        h = F.max_pool2d(h, 3, 2, 1) if self.spatial_dims == 2 else F.max_pool3d(h, 3, 2, 1)
        for s in range(1, 5):
            h = getattr(self, f"layer{s}")(h)
        flat = h.flatten(2)  # [B, C, N]
        if self.pool == "mean":
            pooled = flat.mean(2)
        elif self.pool == "max":
            pooled = flat.max(2).values
        else:
            p = self.gem_p.clamp_min(1.0)
            pooled = flat.clamp_min(1e-6).pow(p).mean(2).pow(1.0 / p)
        return EncoderOutput(pooled, flat.transpose(1, 2))

    def forward(self, x):
        p = self.encode(x).pooled
        return self.fc(p) if self.fc is not None else p


def resnet(name: str, spatial_dims: int, **kw) -> ResNet:
    """A preset (resnet18/34/50/101) with overrides, as biud's resnetPreset()."""
    if name not in PRESETS:
        raise ValueError(f"resnet: unknown depth `{name}` (use {', '.join(PRESETS)})")
    block, layers = PRESETS[name]
    return ResNet(spatial_dims=spatial_dims, block=block, layers=layers, **kw)
