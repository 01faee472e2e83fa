"""Pre-norm transformer pieces of biud's 3D ViT (include/biud/models/Layers.h), timm's names:
`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`. Attention is
torch.nn.functional.scaled_dot_product_attention, the kernel biud calls
(src/models/Attention.cpp), with a boolean key mask (True = may attend)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def attention(q, k, v, key_padding: Optional[torch.Tensor] = None, causal: bool = False, dropout: float = 0.0):
    """q/k/v [B, H, L, Dh]; key_padding [B, Lk] (1 = token)."""
    mask = None
    if key_padding is not None:
        mask = key_padding.to(torch.bool).view(q.shape[0], 1, 1, k.shape[2])
    lq, lk = q.shape[2], k.shape[2]
    if causal and (mask is not None or lq != lk):
        c = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(lk - lq).view(1, 1, lq, lk)
        mask = c if mask is None else (mask & c)
        causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)


def split_heads(x, heads):
    b, l, d = x.shape
    return x.view(b, l, heads, d // heads).transpose(1, 2)


def merge_heads(x):
    b, h, l, dh = x.shape
    return x.transpose(1, 2).reshape(b, l, h * dh)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        if self.dropout > 0:
            h = F.dropout(h, self.dropout, self.training)
        return self.fc2(h)


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, dropout=0.0):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.dropout = heads, dropout

    def forward(self, x, key_padding=None, causal=False):
        b, l, d = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        o = attention(q, k, v, key_padding, causal, self.dropout if self.training else 0.0)
        return self.proj(merge_heads(o))


class TransformerBlock(nn.Module):
    """x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim, heads, mlp_ratio=4.0, dropout=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x, key_padding=None):
        h = x + self.attn(self.norm1(x), key_padding)
        return h + self.mlp(self.norm2(h))
