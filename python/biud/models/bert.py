"""BERT with Hugging Face's parameter names: the twin of biud's models::BertModel
(include/biud/models/Bert.h, src/models/Bert.cpp), so HF BERT checkpoints (BERT, PubMedBERT,
CXR-BERT, MiniLM) and the `text_encoder.*` tower of a biud run load unchanged.

Post-LayerNorm encoder layers; attention through scaled_dot_product_attention with a boolean key
mask (padding never attended to); position ids 0..L-1; token types 0. Pooling (`pool`):
cls = the first token's last hidden state, mean = the mean over real tokens (attention mask 1),
pooler = tanh(pooler.dense(first token)).
"""
import json
from dataclasses import dataclass, asdict, fields
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import attention, merge_heads, split_heads


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    pad_token_id: int = 0
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    hidden_act: str = "gelu"
    pool: str = "cls"
    add_pooler: bool = True
    add_cross_attention: bool = False
    cross_attention_dim: int = 0

    @staticmethod
    def preset(name: str) -> "BertConfig":
        """tiny (64 wide, 2 layers, 4 heads), small, base (BERT-base), large: biud's BertOptions::preset."""
        sizes = {"base": (768, 12, 12, 3072), "tiny": (64, 2, 4, 256), "small": (384, 6, 12, 1536),
                 "large": (1024, 24, 16, 4096)}
        if name not in sizes:
            raise ValueError(f"bert: unknown preset `{name}` (tiny, small, base, large)")
        h, l, a, i = sizes[name]
        return BertConfig(hidden_size=h, num_hidden_layers=l, num_attention_heads=a, intermediate_size=i)

    @staticmethod
    def from_hf(path: str) -> "BertConfig":
        """An HF config.json (unknown keys ignored), as biud's BertOptions::fromJsonFile."""
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        mt = j.get("model_type", "bert")
        if mt not in ("bert", "bert-generation"):
            raise ValueError(f"{path}: model_type `{mt}` is not a BERT model")
        if j.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: position_embedding_type `{j['position_embedding_type']}` is not supported")
        c = BertConfig()
        for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_act"):
            if k in j:
                setattr(c, k, j[k])
        if isinstance(j.get("pad_token_id"), int):
            c.pad_token_id = j["pad_token_id"]
        return c

    @staticmethod
    def from_dict(d: dict) -> "BertConfig":
        names = {f.name for f in fields(BertConfig)}
        return BertConfig(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


def activation(x, name):
    if name == "gelu":
        return F.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return F.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu(x)
    if name in ("silu", "swish"):
        return F.silu(x)
    raise ValueError(f"bert: hidden_act `{name}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu)")


class TextOutput(NamedTuple):
    hidden: torch.Tensor  # [B, L, D]
    pooled: torch.Tensor  # [B, D]


class _Holder(nn.Module):
    pass


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(max(1, c.type_vocab_size), c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = c.hidden_dropout_prob

    def forward(self, ids, token_types=None, offset=0):
        length = ids.shape[1]
        if offset + length > self.position_embeddings.num_embeddings:
            raise ValueError(f"bert: sequence of {offset + length} tokens is longer than max_position_embeddings "
                             f"{self.position_embeddings.num_embeddings} (truncate the text)")
        pos = torch.arange(offset, offset + length, dtype=torch.long, device=ids.device).unsqueeze(0)
        tt = token_types if token_types is not None else torch.zeros_like(ids)
        e = self.word_embeddings(ids) + self.token_type_embeddings(tt) + self.position_embeddings(pos)
        return F.dropout(self.LayerNorm(e), self.dropout, self.training)


class BertAttention(nn.Module):
    """HF's `attention.self` + `attention.output`."""

    def __init__(self, c: BertConfig, kv_dim: int):
        super().__init__()
        d = c.hidden_size
        self.self = _Holder()
        self.self.query = nn.Linear(d, d)
        self.self.key = nn.Linear(kv_dim, d)
        self.self.value = nn.Linear(kv_dim, d)
        self.output = _Holder()
        self.output.dense = nn.Linear(d, d)
        self.output.LayerNorm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.heads = c.num_attention_heads
        self.attn_dropout, self.hidden_dropout = c.attention_probs_dropout_prob, c.hidden_dropout_prob

    def forward(self, x, key_padding=None, memory=None):
        kv = memory if memory is not None else x
        s = self.self
        o = attention(split_heads(s.query(x), self.heads), split_heads(s.key(kv), self.heads),
                      split_heads(s.value(kv), self.heads), key_padding, False,
                      self.attn_dropout if self.training else 0.0)
        h = F.dropout(self.output.dense(merge_heads(o)), self.hidden_dropout, self.training)
        return self.output.LayerNorm(h + x)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c, c.hidden_size)
        if c.add_cross_attention:
            self.crossattention = BertAttention(c, c.cross_attention_dim or c.hidden_size)
        else:
            self.crossattention = None
        self.intermediate = _Holder()
        self.intermediate.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output = _Holder()
        self.output.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.output.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.act, self.dropout = c.hidden_act, c.hidden_dropout_prob

    def forward(self, x, mask=None, memory=None, memory_mask=None):
        h = self.attention(x, mask)
        if self.crossattention is not None:
            if memory is None:
                raise ValueError("bert: a layer with cross-attention needs the memory sequence")
            h = self.crossattention(h, memory_mask, memory)
        m = F.dropout(self.output.dense(activation(self.intermediate.dense(h), self.act)), self.dropout, self.training)
        return self.output.LayerNorm(m + h)


class BertModel(nn.Module):
    """`encode(ids, mask)` -> TextOutput(hidden [B, L, D], pooled [B, D])."""

    def __init__(self, config: Optional[BertConfig] = None, **kw):
        super().__init__()
        c = config if config is not None else BertConfig(**kw)
        if c.pool not in ("cls", "mean", "pooler"):
            raise ValueError(f"bert: pool `{c.pool}` (use cls, mean or pooler)")
        if c.pool == "pooler" and not c.add_pooler:
            raise ValueError("bert: pool `pooler` needs add_pooler")
        if c.hidden_size % c.num_attention_heads:
            raise ValueError(f"bert: hidden_size {c.hidden_size} not divisible by {c.num_attention_heads} heads")
        activation(torch.zeros(1), c.hidden_act)
        self.config = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = _Holder()
        self.encoder.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))
        if c.add_pooler:
            self.pooler = _Holder()
            self.pooler.dense = nn.Linear(c.hidden_size, c.hidden_size)
        else:
            self.pooler = None
        self.out_dim = c.hidden_size

    def encode(self, ids, mask=None, token_types=None) -> TextOutput:
        if ids.dim() != 2:
            raise ValueError(f"bert: token ids must be [B, L], got {list(ids.shape)}")
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"bert: attention mask {list(mask.shape)} does not match the ids {list(ids.shape)}")
        h = self.embeddings(ids, token_types)
        for layer in self.encoder.layer:
            h = layer(h, mask)
        if self.config.pool == "mean":
            pooled = masked_mean(h, mask) if mask is not None else h.mean(1)
        elif self.config.pool == "pooler":
            pooled = torch.tanh(self.pooler.dense(h[:, 0]))
        else:
            pooled = h[:, 0]
        return TextOutput(h, pooled)

    def forward(self, ids, mask=None):
        return self.encode(ids, mask).hidden


def masked_mean(hidden, mask):
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
