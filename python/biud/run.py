"""load_run(): a trained biud run (or one checkpoint folder of it) as PyTorch modules with their
weights, tokenizer and preprocessing settings — the same embeddings as `biud-embed --run`.

What is read: the checkpoint's config.json (checkpoint format 1, src/train/RunConfigJson.cpp)
when present, else the run's config.resolved.yaml resolved as biud's registry does (runs written
before config.json); model.safetensors; ema.safetensors over it when `ema` and present (biud's
applyEma); the tokenizer files (vocab.txt + tokenizer_config.json copied into the checkpoint, or
text.vocab of the config).
"""
import json
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoint as ckpt_mod
from .models.build import build, describe_netconfig
from .tokenizer import SpmTokenizer, WordPieceTokenizer

FORMAT_VERSION = 1  # the newest checkpoint format this package reads (config.json format_version)


class RunError(Exception):
    pass


def _load_safetensors(path: str):
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out, meta


def _read_yaml(path: str) -> dict:
    import yaml
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _heads_from_shapes(name: str, shapes: Dict[str, tuple]) -> Optional[dict]:
    if f"{name}.proj.weight" in shapes and name == "adapter":
        o, i = shapes[f"{name}.proj.weight"]
        return {"type": "adapter", "in": i, "out": o, "normalize": True}
    if f"{name}.proj.weight" in shapes:
        o, i = shapes[f"{name}.proj.weight"]
        return {"type": "projection", "in": i, "out": o, "hidden": 0, "normalize": True}
    if f"{name}.fc1.weight" in shapes:
        h, i = shapes[f"{name}.fc1.weight"]
        return {"type": "projection", "in": i, "out": shapes[f"{name}.fc2.weight"][0], "hidden": h, "normalize": True}
    if name == "temperature":
        return {"type": "temperature"}
    if name == "head" and "head.weight" in shapes:
        o, i = shapes["head.weight"]
        return {"type": "linear", "in": i, "out": o, "bias": "head.bias" in shapes}
    return None


def _pretrained_config(cfg: dict, root: str) -> dict:
    """finetune/report runs: the config of the BIUD run they started from (LoadRun.cpp)."""
    task = cfg.get("task")
    pre = (cfg.get(task) or {}).get("run", "")
    if not pre or not os.path.isdir(pre):
        raise RunError(f"`{root}` is a {task} run started from `{pre}`, which no longer exists; its "
                       "config.resolved.yaml describes the CT encoder: restore that folder or set "
                       f"{task}.run in {root}/config.resolved.yaml")
    _, pre_root = ckpt_mod.locate(pre)
    return _read_yaml(os.path.join(pre_root, "config.resolved.yaml"))


def describe_from_yaml(cfg: dict, root: str, shapes: Dict[str, tuple]) -> dict:
    """A config.json-like description of a run written before config.json."""
    task = cfg.get("task", "")
    model = cfg.get("model") or {}
    data = cfg.get("data") or {}
    text = cfg.get("text") or {}
    ct_net = model.get("ct_encoder") or {}
    if task in ("finetune", "report"):
        pc = _pretrained_config(cfg, root)
        ct_net = (pc.get("model") or {}).get("ct_encoder") or {}
        data = dict(data, ct=(pc.get("data") or {}).get("ct", {}))
        text = pc.get("text") or {}
    nets = {"ct_encoder": ct_net, "image_encoder": model.get("xray_encoder") or {},
            "text_encoder": model.get("text_encoder") or {}}
    mods = {}
    for prefix in sorted({k.split(".", 1)[0] for k in shapes}):
        if prefix in nets:
            mods[prefix] = describe_netconfig(nets[prefix], shapes, prefix + ".")
        else:
            mods[prefix] = _heads_from_shapes(prefix, shapes) or {"type": "unknown"}
    emb = {}
    if "ct_encoder" in mods:
        emb["ct"] = {"encoder": "ct_encoder", "head": "ct_proj" if "ct_proj" in mods else None, "input": "ct"}
        if "adapter" in mods:
            emb["ct_adapted"] = {"from": "ct", "head": "adapter", "normalize": True}
    if "image_encoder" in mods:
        d = mods["image_encoder"]
        emb["image"] = {"encoder": "image_encoder", "head": "image_proj", "input": "xray",
                        "channels": (nets["image_encoder"].get("in_channels") or
                                     (1 if d.get("spatial_dims") == 3 else 3))}
    if "text_encoder" in mods and "text_proj" in mods:
        emb["text"] = {"encoder": "text_encoder", "head": "text_proj"}
    tok = None
    if "text_encoder" in mods or "decoder" in mods:
        kind = text.get("tokenizer", "wordpiece")
        tok = {"kind": kind, "max_length": text.get("max_length", 128)}
        if kind == "wordpiece":
            tok.update(vocab=text.get("vocab"), lowercase=text.get("lowercase", True), from_yaml=True)
        else:
            tok.update(model=text.get("spm_model"))
    return {"format": "biud-checkpoint", "format_version": 0, "task": task,
            "embed_dim": model.get("embed_dim", 512), "modules": mods, "embeddings": emb, "tokenizer": tok,
            "preprocessing": {"ct": data.get("ct", {}), "xray": data.get("xray", {})}}


def _make_tokenizer(t: Optional[dict], ckpt: str):
    if not t:
        return None
    max_length = t.get("max_length", 128)
    if t["kind"] == "spm":
        p = t.get("model")
        return SpmTokenizer(p if os.path.isabs(p) else os.path.join(ckpt, p), max_length)
    vocab = t.get("vocab")
    if not vocab:
        raise RunError("the run's text.vocab is empty: no WordPiece vocabulary to tokenise with")
    if t.get("from_yaml"):  # runs before config.json: the vocab the config names, with its tokenizer_config.json
        if not os.path.exists(vocab):
            raise RunError(f"text.vocab `{vocab}` of the run does not exist (it moved?); a run trained after "
                           "config.json carries its vocab.txt in the checkpoint folder")
        return WordPieceTokenizer.from_folder(vocab, max_length, t.get("lowercase", True))
    toks = t.get("tokens", {})
    return WordPieceTokenizer(os.path.join(ckpt, vocab), max_length, lowercase=t.get("lowercase", True),
                              strip_accents=t.get("strip_accents"),
                              tokenize_chinese_chars=t.get("tokenize_chinese_chars", True),
                              max_input_chars_per_word=t.get("max_input_chars_per_word", 100),
                              unk_token=toks.get("unk", "[UNK]"), cls_token=toks.get("cls", "[CLS]"),
                              sep_token=toks.get("sep", "[SEP]"), pad_token=toks.get("pad", "[PAD]"),
                              mask_token=toks.get("mask", "[MASK]"))


def _as_volume(v) -> torch.Tensor:
    if isinstance(v, np.ndarray):
        v = torch.from_numpy(np.ascontiguousarray(v))
    v = v.to(torch.float32)
    if v.dim() == 3:
        v = v.unsqueeze(0)
    if v.dim() == 4:
        v = v.unsqueeze(0)
    if v.dim() != 5:
        raise ValueError(f"a CT volume is [D, H, W], [C, D, H, W] or [B, C, D, H, W]; got {list(v.shape)}")
    return v


class Run(nn.Module):
    """A loaded biud run. Its submodules carry the checkpoint's names (`ct_encoder`, `text_encoder`,
    `image_encoder`, `ct_proj`, `text_proj`, `image_proj`, `adapter`, `temperature`, `head`), so
    run.state_dict() keys are the checkpoint's (for the networks with a Python twin).

    Attributes: task, checkpoint (folder), root (run folder), config (config.json or its
    equivalent built from config.resolved.yaml), preprocessing ({"ct": data.ct, "xray": data.xray}
    of the run), tokenizer (callable: texts -> ids, mask), ema (True when ema.safetensors was
    applied), skipped (networks of the checkpoint without a Python twin: fusion, decoder).
    """

    def __init__(self, config: dict, modules: Dict[str, nn.Module], tokenizer, checkpoint: str, root: str,
                 ema: bool, skipped: List[str], source: str):
        super().__init__()
        for k, m in modules.items():
            self._modules[k] = m  # (add_module refuses names __getattr__ answers)
        self.config, self.tokenizer, self.checkpoint, self.root = config, tokenizer, checkpoint, root
        self.task = config.get("task")
        self.preprocessing = config.get("preprocessing", {})
        self.embeddings = config.get("embeddings", {})
        self.ema, self.skipped, self.source = ema, skipped, source
        self.eval()

    def _get(self, name):
        return self._modules.get(name)

    def __getattr__(self, name):
        # run.ct_encoder / text_encoder / xray_encoder (= image_encoder): the network, or None
        # when the run has none.
        if name == "xray_encoder":
            name = "image_encoder"
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("ct_encoder", "text_encoder", "image_encoder"):
                return None
            raise

    def _device(self):
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # --- CT -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_ct(self, volume) -> Dict[str, torch.Tensor]:
        """pooled/tokens of the CT encoder; `embedding`: biud-embed's volume_embedding (the
        normalised shared-space embedding of a biud run; the encoder's pooled features of a
        finetune/report run); `adapted` (biud runs: the adapter's normalised output, volume_adapted);
        `logits` (finetune runs: the label head)."""
        if self.ct_encoder is None:
            raise RunError(f"`{self.root}` is a {self.task} run without a CT encoder")
        x = _as_volume(volume).to(self._device())
        enc = self.ct_encoder.encode(x)
        out = {"pooled": enc.pooled, "tokens": enc.tokens}
        spec = self.embeddings.get("ct", {})
        head = spec.get("head")
        out["embedding"] = self._get(head)(enc.pooled) if head else enc.pooled
        if "ct_adapted" in self.embeddings:
            out["adapted"] = F.normalize(self._get(self.embeddings["ct_adapted"]["head"])(out["embedding"]), dim=-1)
        if self._get("head") is not None and self.task == "finetune":
            out["logits"] = self._get("head")(enc.pooled)
        return out

    def embed_ct(self, volume) -> torch.Tensor:
        """[B, d]: biud-embed's volume_embedding of a preprocessed volume ([D,H,W], [C,D,H,W] or
        [B,C,D,H,W], e.g. a read_cache() item)."""
        return self.encode_ct(volume)["embedding"]

    # --- reports --------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_text(self, texts: Union[str, Sequence[str]], batch_size: int = 8) -> torch.Tensor:
        """[N, d]: biud-embed's text_embedding (normalised, the shared space) of report texts."""
        if "text" not in self.embeddings or self.tokenizer is None:
            raise RunError(f"`{self.root}` is a {self.task} run without a report tower in the shared space")
        if isinstance(texts, str):
            texts = [texts]
        enc, head = self._get(self.embeddings["text"]["encoder"]), self._get(self.embeddings["text"]["head"])
        parts = []
        for s in range(0, len(texts), batch_size):
            ids, mask = self.tokenizer(list(texts[s:s + batch_size]))
            dev = self._device()
            parts.append(head(enc.encode(ids.to(dev), mask.to(dev)).pooled))
        return torch.cat(parts)

    # --- X-rays (clip2d / x2ct runs) --------------------------------------------------------------
    @torch.no_grad()
    def embed_xray(self, images) -> torch.Tensor:
        """[B, d]: the image tower's normalised embedding of preprocessed X-rays [B, 1 or C, H, W]
        (grey images are repeated to the encoder's channels, as biud's ClipModel)."""
        spec = self.embeddings.get("image")
        if spec is None:
            raise RunError(f"`{self.root}` is a {self.task} run without an X-ray tower")
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        x = x.to(torch.float32).to(self._device())
        if x.dim() == 3:
            x = x.unsqueeze(1)
        ch = spec.get("channels", 3)
        if x.shape[1] == 1 and ch > 1:
            x = x.expand(x.shape[0], ch, x.shape[2], x.shape[3])
        return self._get(spec["head"])(self._get(spec["encoder"]).encode(x).pooled)

    def read_cache(self, path: str, verify: str = "once"):
        """biud.read_cache(path) that also checks the cache was built with this run's CT
        preprocessing (runs with config.json: the preprocessing hash)."""
        from .cache import read_cache
        return read_cache(path, self.preprocessing.get("ct", {}).get("hash"), verify)

    def extra_repr(self):
        return f"task={self.task}, checkpoint={self.checkpoint!r}, ema={self.ema}, source={self.source}"


def load_run(path: str, ema: bool = True, device: Union[str, torch.device] = "cpu", config: str = "auto") -> Run:
    """Load a biud run folder (its newest complete checkpoint) or a checkpoint folder.

    ema: overlay the checkpoint's moving average (ema.safetensors) when it has one, as biud's
    tools do with eval.ema (the default). config: `auto` = the checkpoint's config.json when
    present, else the run's config.resolved.yaml; `json` / `yaml` to force one.
    """
    ckpt, root = ckpt_mod.locate(path)
    weights_file = os.path.join(ckpt, "model.safetensors")
    if not os.path.exists(weights_file):
        raise RunError(f"checkpoint `{ckpt}` has no model.safetensors")
    weights, meta = _load_safetensors(weights_file)
    fmt = int(meta.get("biud_checkpoint_format", "0") or 0)
    if fmt > FORMAT_VERSION:
        raise RunError(f"`{weights_file}` is checkpoint format {fmt}; this biud package reads up to "
                       f"{FORMAT_VERSION}: update it (pip install -e python/ from a newer biud)")
    cfg_json = os.path.join(ckpt, "config.json")
    use_json = config == "json" or (config == "auto" and os.path.exists(cfg_json))
    if use_json:
        if not os.path.exists(cfg_json):
            raise RunError(f"checkpoint `{ckpt}` has no config.json (written by biud since checkpoint format 1); "
                           "load it with config='yaml'")
        with open(cfg_json, encoding="utf-8") as f:
            desc = json.load(f)
        if desc.get("format_version", 0) > FORMAT_VERSION:
            raise RunError(f"`{cfg_json}` is format {desc['format_version']}; this package reads up to {FORMAT_VERSION}")
        source = "config.json"
    else:
        yml = os.path.join(root, "config.resolved.yaml")
        if not os.path.exists(yml):
            raise RunError(f"`{root}` has no config.resolved.yaml and `{ckpt}` no config.json: is it a biud run?")
        desc = describe_from_yaml(_read_yaml(yml), root, {k: tuple(v.shape) for k, v in weights.items()})
        source = "config.resolved.yaml"

    modules, skipped = {}, []
    for name, d in desc["modules"].items():
        m = build(d)
        if m is None:
            skipped.append(name)
            continue
        sub = {k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(name + ".")}
        try:
            m.load_state_dict(sub, strict=True)
        except RuntimeError as e:
            raise RunError(f"`{weights_file}`: the tensors of `{name}` do not fit its description in {source} "
                           f"({d.get('type')} {d.get('arch', '')}): {e}") from e
        modules[name] = m
    used = False
    ema_file = os.path.join(ckpt, "ema.safetensors")
    if ema and os.path.exists(ema_file):
        avg, _ = _load_safetensors(ema_file)
        for k, v in avg.items():
            name, rest = k.split(".", 1)
            if name in skipped:
                continue
            if name not in modules:
                raise RunError(f"`{ema_file}`: tensor `{k}` belongs to no network of the run")
            target = dict(modules[name].named_parameters())
            target.update(dict(modules[name].named_buffers()))
            if rest not in target or tuple(target[rest].shape) != tuple(v.shape):
                raise RunError(f"`{ema_file}`: tensor `{k}` {list(v.shape)} does not fit the model")
            with torch.no_grad():
                target[rest].copy_(v)
        used = True
    tok = _make_tokenizer(desc.get("tokenizer"), ckpt)
    run = Run(desc, modules, tok, ckpt, root, used, skipped, source)
    return run.to(device)
