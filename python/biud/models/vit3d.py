"""Vision transformer over 3D volumes: the twin of biud's models::ViT3D
(include/biud/models/ViT3D.h, src/models/ViT3D.cpp), timm's names (`patch_embed.proj`,
`cls_token`, `pos_embed`, `blocks.N.*`, `norm`).

Input [B, C, D, H, W], each side a multiple of the patch. Another size than `image_size`
interpolates the learned position table trilinearly (align_corners=False) to its patch grid.
pool = cls: the class token after the final LayerNorm (the model has `cls_token`); pool = mean:
the mean of the patch tokens (no class token at all).

checkpointing (biud's `model.ct_encoder.checkpointing`, ViT3DOptions::checkpointing): in training
mode with gradients enabled, each transformer block runs under
torch.utils.checkpoint.checkpoint(use_reentrant=False) - its activations are recomputed in backward
instead of kept, as biud's C++ ViT3D does per block (src/models/ViT3D.cpp). Patch embedding,
positions and the final LayerNorm are not checkpointed (nor in biud). Outputs, gradients and
parameter names are the same either way.
"""
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .layers import TransformerBlock
from .resnet import EncoderOutput

PRESETS = {  # preset -> (dim, depth, heads, image_size, patch); biud's vit3dPreset()
    "tiny": (64, 2, 4, (32, 64, 64), (8, 16, 16)),
    "small": (384, 12, 6, (96, 224, 224), (16, 16, 16)),
    "base": (768, 12, 12, (96, 224, 224), (16, 16, 16)),
    "large": (1024, 24, 16, (96, 224, 224), (16, 16, 16)),
}


def sincos_position_3d(grid: Sequence[int], dim: int) -> torch.Tensor:
    """Fixed 3D sine-cosine table [gd*gh*gw, dim]: (dim // 6) * 2 channels per axis, sin then cos
    of the integer coordinate times 10000^(-i/half); spare channels zero."""
    per = (dim // 6) * 2
    if per < 2:
        raise ValueError(f"vit3d: sincos positions need dim >= 6, got {dim}")
    out = torch.zeros(grid[0], grid[1], grid[2], dim)
    half = per // 2
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / float(half))
    for a in range(3):
        pos = torch.arange(grid[a], dtype=torch.float64)
        ang = torch.outer(pos, omega)
        emb = torch.cat([ang.sin(), ang.cos()], 1).to(torch.float32)
        shape = [1, 1, 1, per]
        shape[a] = grid[a]
        out[..., a * per:(a + 1) * per] = emb.view(shape).expand(grid[0], grid[1], grid[2], per)
    return out.view(grid[0] * grid[1] * grid[2], dim)


def _grid(size, patch, what):
    g = []
    for i in range(3):
        if patch[i] <= 0 or size[i] % patch[i] != 0:
            raise ValueError(f"vit3d: {what} side {i} ({size[i]}) is not a multiple of the patch ({patch[i]}); "
                             "crop or pad the volume to a multiple")
        g.append(size[i] // patch[i])
    return g


class ViT3D(nn.Module):
    def __init__(self, in_channels: int = 1, image_size: Sequence[int] = (32, 64, 64),
                 patch: Sequence[int] = (8, 16, 16), dim: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, pos_embedding: str = "learned", pool: str = "cls",
                 token_dropout: float = 0.0, checkpointing: bool = False):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"vit3d: pool `{pool}` (use cls or mean)")
        if pos_embedding not in ("learned", "sincos"):
            raise ValueError(f"vit3d: pos `{pos_embedding}` (use learned or sincos)")
        if dim % heads:
            raise ValueError(f"vit3d: dim {dim} is not divisible by heads {heads}")
        self.in_channels, self.dim, self.pool, self.pos = in_channels, dim, pool, pos_embedding
        self.patch = list(patch)
        self.token_dropout = token_dropout
        self.checkpointing = checkpointing
        self.grid = _grid(image_size, patch, "image_size")
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(in_channels, dim, tuple(patch), stride=tuple(patch))
        n = self.grid[0] * self.grid[1] * self.grid[2]
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        else:
            self.cls_token = None
        if pos_embedding == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        else:
            self.pos_embed = None
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim = dim

    def position_embedding(self, g):
        if self.pos == "sincos":
            return sincos_position_3d(g, self.dim).unsqueeze(0).to(self.patch_embed.proj.weight.device)
        if list(g) == self.grid:
            return self.pos_embed
        t = self.pos_embed.view(1, *self.grid, self.dim).permute(0, 4, 1, 2, 3)
        t = F.interpolate(t, size=list(g), mode="trilinear", align_corners=False)
        return t.permute(0, 2, 3, 4, 1).reshape(1, g[0] * g[1] * g[2], self.dim)

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"vit3d: input must be [B, {self.in_channels}, D, H, W], got {list(x.shape)}")
        g = _grid(x.shape[2:], self.patch, "input")
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = t + self.position_embedding(g)
        b, n = t.shape[0], t.shape[1]
        if self.training and self.token_dropout > 0:
            keep = max(1, int(math.floor(n * (1.0 - self.token_dropout) + 0.5)))
            idx = torch.rand(b, n, device=t.device).sort(1).indices[:, :keep]
            t = t.gather(1, idx.unsqueeze(-1).expand(b, keep, self.dim))
        if self.cls_token is not None:
            t = torch.cat([self.cls_token.expand(b, 1, self.dim), t], 1)
        ckpt = self.checkpointing and self.training and torch.is_grad_enabled()
        for blk in self.blocks:
            t = checkpoint(blk, t, use_reentrant=False) if ckpt else blk(t)
        t = self.norm(t)
        if self.cls_token is not None:
            return EncoderOutput(t[:, 0], t[:, 1:])
        return EncoderOutput(t.mean(1), t)

    def forward(self, x):
        return self.encode(x).pooled


def vit3d(preset: str = "tiny", **kw) -> ViT3D:
    """A preset (tiny, small, base, large) with overrides (image_size, checkpointing, ...), as
    biud's vit3dPreset()."""
    if preset not in PRESETS:
        raise ValueError(f"vit3d: unknown preset `{preset}` ({', '.join(PRESETS)})")
    dim, depth, heads, image, patch = PRESETS[preset]
    args = dict(dim=dim, depth=depth, heads=heads, image_size=image, patch=patch)
    args.update({k: v for k, v in kw.items() if v is not None})
    return ViT3D(**args)
