"""Modules from descriptions: a checkpoint's config.json `modules` entries (format version 1,
written by src/train/RunConfigJson.cpp), or — for runs written before config.json — the
`model.*` sections of config.resolved.yaml resolved as biud's registry does
(src/models/Registry.cpp: presets, then the non-zero overrides)."""
import json
import os
from typing import Optional

import torch.nn as nn

from .bert import BertConfig, BertModel
from .heads import DistillAdapter, ProjectionHead, Temperature
from .resnet import PRESETS as RESNET_PRESETS
from .resnet import ResNet
from .vit2d import PRESETS as VIT2D_PRESETS
from .vit2d import ViT2D
from .vit3d import PRESETS as VIT3D_PRESETS
from .vit3d import ViT3D

# Networks with a Python twin; the others of a run (fusion encoder, report decoder) are skipped.
BUILT = ("resnet", "vit3d", "vit2d", "bert", "projection", "adapter", "temperature", "linear")


def build(desc: dict) -> Optional[nn.Module]:
    """The module a config.json `modules` entry describes (None when it has no Python twin)."""
    t = desc.get("type")
    if t == "resnet":
        return ResNet(spatial_dims=desc["spatial_dims"], block=desc["block"], layers=desc["layers"],
                      width=desc["width"], in_channels=desc["in_channels"], num_classes=desc.get("num_classes", 0),
                      stem_kernel_depth=desc.get("stem_kernel_depth", 7), pool=desc.get("pool", "mean"))
    if t == "vit3d":
        return ViT3D(in_channels=desc["in_channels"], image_size=desc["image_size"], patch=desc["patch"],
                     dim=desc["dim"], depth=desc["depth"], heads=desc["heads"], mlp_ratio=desc.get("mlp_ratio", 4.0),
                     pos_embedding=desc.get("pos_embedding", "learned"), pool=desc.get("pool", "cls"),
                     checkpointing=desc.get("checkpointing", False))
    if t == "vit2d":
        return ViT2D(image_size=desc["image_size"], patch=desc["patch"], in_channels=desc["in_channels"],
                     dim=desc["dim"], depth=desc["depth"], heads=desc["heads"], mlp_dim=desc["mlp_dim"],
                     num_classes=desc.get("num_classes", 0))
    if t == "bert":
        return BertModel(BertConfig.from_dict(desc))
    if t == "projection":
        return ProjectionHead(desc["in"], desc["out"], desc.get("hidden", 0), desc.get("normalize", True))
    if t == "adapter":
        return DistillAdapter(desc["in"], desc["out"])
    if t == "temperature":
        return Temperature(min_tau=desc.get("min", 0.01), max_tau=desc.get("max", 1.0))
    if t == "linear":
        return nn.Linear(desc["in"], desc["out"], bias=desc.get("bias", True))
    return None


# --- config.resolved.yaml (runs before config.json) -----------------------------------------

def _nz(v):
    return v if v else None


def describe_netconfig(net: dict, weights_shapes: Optional[dict] = None, prefix: str = "") -> dict:
    """A registry network (`model.ct_encoder` / `xray_encoder` / `text_encoder` of a config) as a
    config.json description. `weights_shapes` (checkpoint key -> shape) fills what the config
    leaves to the tokenizer (the vocabulary size)."""
    arch, preset = net.get("arch", ""), net.get("preset", "tiny")
    pool = net.get("pool") or ""
    if arch == "vit3d":
        dim, depth, heads, image, patch = VIT3D_PRESETS[preset]
        p = net.get("patch") or []
        if p:
            if len(p) not in (1, 3):
                raise ValueError(f"model: vit3d patch needs 1 or 3 values (D,H,W), got {len(p)}")
            patch = tuple(p) if len(p) == 3 else (p[0],) * 3
        return {"type": "vit3d", "arch": arch, "preset": preset, "in_channels": _nz(net.get("in_channels")) or 1,
                "image_size": list(net.get("image_size") or image), "patch": list(patch),
                "dim": _nz(net.get("dim")) or dim, "depth": _nz(net.get("depth")) or depth,
                "heads": _nz(net.get("heads")) or heads, "mlp_ratio": 4.0,
                "pos_embedding": net.get("pos_embedding") or "learned", "pool": pool or "cls"}
    if arch.startswith("resnet"):
        dims = 3 if arch.startswith("resnet3d") else 2
        name = "resnet" + arch[len("resnet3d"):] if dims == 3 else arch
        if name not in RESNET_PRESETS:
            raise ValueError(f"model: unknown encoder arch `{arch}`")
        block, layers = RESNET_PRESETS[name]
        width = {"tiny": 8, "small": 32, "large": 128}.get(preset, 64)
        if net.get("dim"):
            mult = 8 if block == "basic" else 32
            if net["dim"] % mult:
                raise ValueError(f"model: {name} output width {net['dim']} must be a multiple of {mult}")
            width = net["dim"] // mult
        return {"type": "resnet", "arch": arch, "preset": preset, "spatial_dims": dims, "block": block,
                "layers": list(layers), "width": width,
                "in_channels": _nz(net.get("in_channels")) or (1 if dims == 3 else 3), "num_classes": 0,
                "stem_kernel_depth": _nz(net.get("stem_kernel_depth")) or 7, "pool": pool or "mean"}
    if arch in ("vit_b16", "vit2d"):
        if arch == "vit_b16":
            key = "tiny" if preset == "tiny" else "vit_b_16"
        else:
            key = "vit_b_16" if preset == "base" else preset
        image, patch, dim, depth, heads, mlp = VIT2D_PRESETS[key]
        if net.get("dim"):
            dim, mlp = net["dim"], 4 * net["dim"]
        return {"type": "vit2d", "arch": arch, "preset": preset, "image_size": (net.get("image_size") or [image])[0],
                "patch": (net.get("patch") or [patch])[0], "in_channels": _nz(net.get("in_channels")) or 3,
                "dim": dim, "depth": _nz(net.get("depth")) or depth, "heads": _nz(net.get("heads")) or heads,
                "mlp_dim": mlp, "num_classes": 0}
    if arch == "bert":
        w = net.get("weights") or ""
        if w and os.path.isdir(w) and os.path.exists(os.path.join(w, "config.json")):
            c = BertConfig.from_hf(os.path.join(w, "config.json"))
        elif w and os.path.isdir(w):
            raise ValueError(f"text encoder weights `{w}`: HF folder without config.json")
        else:
            c = BertConfig.preset(preset)
            if net.get("dim"):
                c.hidden_size, c.intermediate_size = net["dim"], 4 * net["dim"]
            if net.get("depth"):
                c.num_hidden_layers = net["depth"]
            if net.get("heads"):
                c.num_attention_heads = net["heads"]
            if net.get("max_len"):
                c.max_position_embeddings = net["max_len"]
            if net.get("vocab_size"):
                c.vocab_size = net["vocab_size"]
            elif weights_shapes and prefix + "embeddings.word_embeddings.weight" in weights_shapes:
                c.vocab_size = weights_shapes[prefix + "embeddings.word_embeddings.weight"][0]
        if pool:
            c.pool = pool
        d = c.to_dict()
        d.update(type="bert", arch="bert", preset=preset)
        return d
    raise ValueError(f"model: unknown encoder arch `{arch}` (vit3d, resnet3d18/34/50, resnet18/50, vit_b16, vit2d, bert)")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
