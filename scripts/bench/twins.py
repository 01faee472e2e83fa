"""Plain-PyTorch twins of biud's networks for the benchmarks (what a PyTorch user would write).

resnet3d(width, layers): biud's ResNet with spatial_dims 3 (src/models/ResNet.cpp): a
(7 x 7 x 7, stride 2) stem, BatchNorm, ReLU, 3x3x3 max-pool, four stages of basic blocks
(stride 2 from the second), global mean pool. The quickstart's CT encoder is resnet3d18 tiny:
width 8, layers (2, 2, 2, 2).
vit3d(preset, image): biud's ViT3D (timm layout: patch conv, class token, learned positions,
pre-norm blocks with SDPA attention and exact GELU, final LayerNorm, class-token output).
The benchmarks time these against biud's own on the same input shapes.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock3d(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv3d(cin, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (self.down(x) if self.down is not None else x))


class ResNet3d(nn.Module):
    def __init__(self, width=8, layers=(2, 2, 2, 2), in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        stages, cin = [], width
        for s, n in enumerate(layers):
            planes = width << s
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock3d(cin, planes, 2 if (b == 0 and s > 0) else 1))
                cin = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        h = F.max_pool3d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.stages(h).flatten(2).mean(2)


VIT3D = {"tiny": dict(dim=64, depth=2, heads=4, patch=(8, 16, 16)),
         "base": dict(dim=768, depth=12, heads=12, patch=(16, 16, 16))}


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, D)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT3d(nn.Module):
    def __init__(self, dim, depth, heads, image, patch, checkpointing=False):
        super().__init__()
        grid = [i // p for i, p in zip(image, patch)]
        self.proj = nn.Conv3d(1, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, grid[0] * grid[1] * grid[2], dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.checkpointing = checkpointing

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2) + self.pos
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1)
        for b in self.blocks:
            if self.checkpointing and self.training:
                from torch.utils.checkpoint import checkpoint
                t = checkpoint(b, t, use_reentrant=False)
            else:
                t = b(t)
        return self.norm(t)[:, 0]


def vit3d(preset, image, checkpointing=False):
    return ViT3d(image=image, checkpointing=checkpointing, **VIT3D[preset])


def params(m):
    return sum(p.numel() for p in m.parameters())
