"""2D vision transformer with torchvision's parameter names: the twin of biud's models::ViT2D
(include/biud/models/ViT2D.h, src/models/ViT2D.cpp), so torchvision's vit_b_16 state dict loads
(`conv_proj`, `class_token`, `encoder.pos_embedding`,
`encoder.layers.encoder_layer_N.{ln_1, self_attention.in_proj_weight, self_attention.out_proj,
ln_2, mlp.0, mlp.3}`, `encoder.ln`, `heads.head`). pooled = the class token after `encoder.ln`.
Another image size than `image_size` interpolates the position grid bicubically
(align_corners=True), as torchvision's interpolate_embeddings.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import attention, merge_heads
from .resnet import EncoderOutput

PRESETS = {  # name -> (image_size, patch, dim, depth, heads, mlp_dim); biud's vit2dPreset()
    "vit_b_16": (224, 16, 768, 12, 12, 3072),
    "vit_b16": (224, 16, 768, 12, 12, 3072),
    "base": (224, 16, 768, 12, 12, 3072),
    "vit_b_32": (224, 32, 768, 12, 12, 3072),
    "vit_l_16": (224, 16, 1024, 24, 16, 4096),
    "large": (224, 16, 1024, 24, 16, 4096),
    "tiny": (64, 16, 64, 2, 4, 256),
    "small": (224, 16, 384, 12, 6, 1536),
}


class PackedAttention(nn.Module):
    """torch.nn.MultiheadAttention's parameter layout over scaled_dot_product_attention."""

    def __init__(self, dim, heads):
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.out_proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x):
        b, l, d = x.shape
        q, k, v = (F.linear(x, self.in_proj_weight, self.in_proj_bias)
                   .view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0))
        return self.out_proj(merge_heads(attention(q, k, v)))


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, mlp_dim, dropout=0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = PackedAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim),
                                 nn.Dropout(dropout))
        self.dropout = dropout

    def forward(self, x):
        h = self.self_attention(self.ln_1(x))
        if self.dropout > 0:
            h = F.dropout(h, self.dropout, self.training)
        h = h + x
        return h + self.mlp(self.ln_2(h))


class ViT2D(nn.Module):
    def __init__(self, image_size=224, patch=16, in_channels=3, dim=768, depth=12, heads=12, mlp_dim=3072,
                 num_classes=0, dropout=0.0):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"vit2d: image_size {image_size} is not a multiple of patch {patch}")
        if dim % heads:
            raise ValueError(f"vit2d: dim {dim} not divisible by heads {heads}")
        self.image_size, self.patch, self.in_channels, self.dim, self.dropout = image_size, patch, in_channels, dim, dropout
        self.conv_proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        g = image_size // patch
        self.encoder = nn.Module()
        self.encoder.pos_embedding = nn.Parameter(torch.randn(1, g * g + 1, dim) * 0.02)
        self.encoder.layers = nn.Module()
        self.depth = depth
        for i in range(depth):
            setattr(self.encoder.layers, f"encoder_layer_{i}", EncoderLayer(dim, heads, mlp_dim, dropout))
        self.encoder.ln = nn.LayerNorm(dim, eps=1e-6)
        if num_classes > 0:
            self.heads = nn.Module()
            self.heads.head = nn.Linear(dim, num_classes)
        else:
            self.heads = None
        self.out_dim = dim

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"vit2d: input must be [B, {self.in_channels}, H, W], got {list(x.shape)}")
        if x.shape[2] % self.patch or x.shape[3] % self.patch:
            raise ValueError(f"vit2d: image {x.shape[2]}x{x.shape[3]} is not a multiple of the patch {self.patch}")
        t = self.conv_proj(x)
        gh, gw, b = t.shape[2], t.shape[3], t.shape[0]
        t = t.flatten(2).transpose(1, 2)
        t = torch.cat([self.class_token.expand(b, 1, self.dim), t], 1)
        pos = self.encoder.pos_embedding
        g = self.image_size // self.patch
        if gh != g or gw != g:
            grid = pos[:, 1:1 + g * g].reshape(1, g, g, self.dim).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=[gh, gw], mode="bicubic", align_corners=True)
            pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, self.dim)], 1)
        t = t + pos
        if self.dropout > 0:
            t = F.dropout(t, self.dropout, self.training)
        for i in range(self.depth):
            t = getattr(self.encoder.layers, f"encoder_layer_{i}")(t)
        t = self.encoder.ln(t)
        return EncoderOutput(t[:, 0], t[:, 1:])

    def forward(self, x):
        p = self.encode(x).pooled
        return self.heads.head(p) if self.heads is not None else p


def vit2d(preset: str = "vit_b_16", **kw) -> ViT2D:
    """A preset with overrides, as biud's vit2dPreset()."""
    if preset not in PRESETS:
        raise ValueError(f"vit2d: unknown preset `{preset}` ({', '.join(PRESETS)})")
    image, patch, dim, depth, heads, mlp = PRESETS[preset]
    args = dict(image_size=image, patch=patch, dim=dim, depth=depth, heads=heads, mlp_dim=mlp)
    args.update({k: v for k, v in kw.items() if v is not None})
    return ViT2D(**args)
