#!/usr/bin/env python3
"""CT-CLIP's own PyTorch code (ibrahimethemhamamci/CT-CLIP at COMMIT) as the reference for biud's
CtVit/CtClip models, the weight import and the zero-shot comparison.

CT-CLIP is not on PyPI and its licence (CC-BY-NC-SA) keeps its code out of this repository: the
source is read from $BIUD_CTCLIP_SRC or ~/.cache/biud/ctclip/<COMMIT> (tests/reference/
ctclip_setup.py puts it there and installs the PyPI packages its modules import). Without it every
command prints "SKIP <reason>" and exits 0, and the C++ tests skip.

The modules are imported as CT-CLIP's README installs them, minus their package __init__ files
(which pull in the training stack: accelerate, ema-pytorch, opencv): transformer_maskgit.ctvit,
transformer_maskgit.attention, ct_clip.ct_clip and scripts/data_inference_nii.py, unchanged, with
two runtime substitutions: their module-level `torch.device('cuda')` (hard-coded in CTViT and its
position bias) answers the CPU, and CTCLIP's constructor gets a stub for
BertTokenizer.from_pretrained('microsoft/BiomedVLP-CXR-BERT-specialized') (no network here; the
tokenizer is built from a vocab file with BertTokenizer(vocab, do_lower_case=True), as CT-CLIP's
zero_shot.py configures it).

  ctclip_reference.py model OUT CONFIG.json
      CTCLIP(CTViT(...), BertModel(BertConfig(...))) with every parameter and buffer perturbed
      (seeded), saved as CT-CLIP saves it: torch.save(state_dict) -> OUT/ctclip.pt (or, with
      "format": "safetensors", OUT/ctclip.safetensors as the shipped converter writes it); the
      config is copied to OUT/config.json. With "forward": true, a random video batch [B, 1, T, S, S]
      (CT-CLIP's layout) and the texts are run through CT-CLIP: OUT/ref.safetensors holds the
      video, ids, mask, encoded (CTViT tokens before the quantiser), codes, gap (top-1 minus
      top-2 cosine of each token), tokens (quantised), image_latents, text_latents and, for
      texts 0 and 1 against each image, CTCLIP.forward's output (logits).
  ctclip_reference.py nii ROOT OUTDIR CACHE NAME...
      CT-CLIP's two volume loaders on the CT-RATE-layout files ROOT/dataset/... (metadata CSVs
      from ROOT): `train` = scripts/data.py CTReportDataset.nii_img_to_tensor (rescale, resample,
      clip, / 1000, crop/pad), `zeroshot` = scripts/data_inference_nii.py
      CTReportDatasetinfer.nii_img_to_tensor (the same, but clipped to [-1000, 1000] BEFORE the
      resampling) vs biud's cache CACHE. JSON {"max_abs": {"name:loader": max |cache - CT-CLIP|},
      "differing": {... voxels differing by > 1e-4}, "min_code_gap": {... smallest top-2 cosine
      gap of the codebook choices}} on stdout; if OUTDIR has a model (ctclip.pt + config.json), its
      image latents of each loader's tensor go to OUTDIR/nii.safetensors ("name:loader").
  ctclip_reference.py zeroshot OUTDIR CACHE IDS_CSV FINDING...
      CT-CLIP's zero-shot rule (scripts/zero_shot.py) with the model of OUTDIR on the cached
      volumes of the ids in IDS_CSV (first column): per finding, CTCLIP.forward on the tokenized
      pair ["<finding> is present.", "<finding> is not present."] (padding to 512) and
      softmax(dim=0)[0]. JSON {id: [p per finding]} on stdout.
  ctclip_reference.py delong MANIFEST PROBS_A PROBS_B
      DeLong's test of B's AUROC against A's per finding (eval_classification.delong_reference:
      placement values, not the midrank algorithm biud uses) on two probability CSVs (id, one
      column per finding) and the manifest's 0/1 label columns; findings with one class are
      null. JSON {finding: {auc1, auc2, z, p} | null} on stdout.
"""
import contextlib
import io
import importlib.util
import json
import os
import sys
import types

COMMIT = "a2a155c601987820433c01db69b64d701d3d229d"


def source_root():
    env = os.environ.get("BIUD_CTCLIP_SRC")
    if env:
        return env
    cache = os.environ.get("BIUD_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "biud"))
    return os.path.join(cache, "ctclip", COMMIT)


def skip_if_missing():
    root = source_root()
    need = [os.path.join(root, "transformer_maskgit", "transformer_maskgit", "ctvit.py"),
            os.path.join(root, "CT_CLIP", "ct_clip", "ct_clip.py"),
            os.path.join(root, "scripts", "data_inference_nii.py")]
    missing = [p for p in need if not os.path.exists(p)]
    mods = []
    for m in ("einops", "beartype", "vector_quantize_pytorch", "pandas", "transformers", "nibabel", "tqdm"):
        if importlib.util.find_spec(m) is None:
            mods.append(m)
    if missing or mods:
        print(f"SKIP CT-CLIP reference unavailable (source {root}: {'missing ' + missing[0] if missing else 'ok'}; "
              f"modules missing: {', '.join(mods) or 'none'}): run tests/reference/ctclip_setup.py")
        sys.exit(0)
    return root


class _TorchOnCpu(types.ModuleType):
    """`torch` for CT-CLIP's modules: everything is torch's, except that torch.device(...) is the CPU
    (CTViT and its ContinuousPositionBias hard-code torch.device('cuda'))."""

    def __init__(self, torch):
        super().__init__("torch")
        self._torch = torch

    def __getattr__(self, k):
        return getattr(self._torch, k)

    def device(self, *a, **k):
        return self._torch.device("cpu")


def upstream():
    root = skip_if_missing()
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    for name, path in (("transformer_maskgit", os.path.join(root, "transformer_maskgit", "transformer_maskgit")),
                       ("ct_clip", os.path.join(root, "CT_CLIP", "ct_clip"))):
        m = types.ModuleType(name)
        m.__path__ = [path]  # a package without running its __init__.py
        sys.modules[name] = m
    import transformer_maskgit.attention as attention
    import transformer_maskgit.ctvit as ctvit
    import ct_clip.ct_clip as ct_clip
    cpu = _TorchOnCpu(torch)
    attention.torch = cpu
    ctvit.torch = cpu
    ct_clip.BertTokenizer = types.SimpleNamespace(from_pretrained=lambda *a, **k: None)
    spec = importlib.util.spec_from_file_location("data_inference_nii", os.path.join(root, "scripts", "data_inference_nii.py"))
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    return types.SimpleNamespace(torch=torch, ctvit=ctvit, ct_clip=ct_clip, data=data)


def build(up, cfg):
    """CT-CLIP's model as scripts/run_zero_shot.py builds it, with cfg's sizes."""
    from transformers import BertConfig, BertModel
    torch = up.torch
    torch.manual_seed(cfg.get("seed", 0))
    im = cfg["image"]
    image = up.ctvit.CTViT(dim=im["dim"], codebook_size=im["codebook_size"], image_size=im["image_size"],
                           patch_size=im["patch_size"], temporal_patch_size=im["temporal_patch_size"],
                           spatial_depth=im["spatial_depth"], temporal_depth=im["temporal_depth"],
                           dim_head=im["dim_head"], heads=im["heads"])
    text = BertModel(BertConfig(**cfg["text"]))
    grid = im["image_size"] // im["patch_size"]
    model = up.ct_clip.CTCLIP(image_encoder=image, text_encoder=text, dim_image=grid * grid * im["dim"],
                              dim_text=cfg["text"].get("hidden_size", 768), dim_latent=cfg["latent"],
                              extra_latent_projection=False, use_mlm=False, downsample_image_embeds=False,
                              use_all_token_embeds=False)
    return model.eval()


def perturb(model, torch, seed):
    """Every float parameter and buffer moved off its initial value (gains off 1, biases off 0,
    codebook rows off unit length), so that a wrong name, a missed bias or a skipped scale shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.state_dict().items()):
            if not t.is_floating_point() or t.numel() == 0:
                continue
            if name.endswith("vq._codebook.embed"):
                t.copy_(torch.randn(t.shape, generator=g))
            elif name == "temperature":
                t.fill_(2.3)
            else:
                scale = 0.05 if t.dim() >= 2 else 0.2
                t.add_(torch.randn(t.shape, generator=g) * scale)


def tokenizer(cfg):
    from transformers import BertTokenizer
    return BertTokenizer(cfg["vocab"], do_lower_case=True)


def load(up, outdir):
    cfg = json.load(open(os.path.join(outdir, "config.json")))
    model = build(up, cfg)
    model.load_state_dict(up.torch.load(os.path.join(outdir, "ctclip.pt"), map_location="cpu"))
    return cfg, model.eval()


def image_latents(model, video, enc=None):
    """CTCLIP.forward's image path (enc_image -> mean over t -> flatten -> to_visual_latent -> l2norm);
    `enc`: CTViT's output for `video` when already computed."""
    import torch.nn.functional as F
    if enc is None:
        enc = model.visual_transformer(video, return_encoded_tokens=True)
    enc = enc.mean(dim=1)
    enc = enc.view(enc.shape[0], -1)
    return F.normalize(model.to_visual_latent(enc), dim=-1)


def text_latents(model, tok):
    import torch.nn.functional as F
    out = model.text_transformer(tok.input_ids, attention_mask=tok.attention_mask)
    return F.normalize(model.to_text_latent(out[0][:, 0, :]), dim=-1)


def cmd_model(outdir, cfg_path):
    up = upstream()
    torch = up.torch
    from safetensors.torch import save_file
    cfg = json.load(open(cfg_path))
    os.makedirs(outdir, exist_ok=True)
    model = build(up, cfg)
    perturb(model, torch, cfg.get("seed", 0) + 1)
    if cfg.get("format", "pt") == "safetensors":  # what scripts/ctclip_to_safetensors.py makes of the .pt
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  os.path.join(outdir, "ctclip.safetensors"))
    else:
        torch.save(model.state_dict(), os.path.join(outdir, "ctclip.pt"))
    json.dump(cfg, open(os.path.join(outdir, "config.json"), "w"), indent=1)
    if not cfg.get("forward", False):
        print(json.dumps({"keys": len(model.state_dict())}))
        return
    g = torch.Generator().manual_seed(cfg.get("seed", 0) + 2)
    b, frames = cfg["video"]
    s = cfg["image"]["image_size"]
    video = torch.rand((b, 1, frames, s, s), generator=g) * 2 - 1
    tok = tokenizer(cfg)(cfg["texts"], return_tensors="pt", padding="max_length", truncation=True, max_length=512)
    vt = model.visual_transformer
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        encoded = vt.encode(vt.to_patch_emb(video))
        flat = torch.nn.functional.normalize(encoded.reshape(-1, encoded.shape[-1]), dim=-1)
        sims = flat @ torch.nn.functional.normalize(vt.vq.codebook, dim=-1).t()
        top = sims.topk(2, dim=-1)
        tokens = vt(video, return_encoded_tokens=True)
        il = image_latents(model, video, tokens)
        tl = text_latents(model, tok)
        pair = {k: v[:2] for k, v in tok.items()}
        logits = torch.stack([model(types.SimpleNamespace(**pair), video[i:i + 1], device=torch.device("cpu"))
                              for i in range(b)])
    save_file({"video": video.contiguous(), "ids": tok.input_ids.contiguous(), "mask": tok.attention_mask.contiguous(),
               "encoded": encoded.contiguous(), "codes": top.indices[:, 0].contiguous(),
               "gap": (top.values[:, 0] - top.values[:, 1]).contiguous(), "tokens": tokens.contiguous(),
               "image_latents": il.contiguous(), "text_latents": tl.contiguous(), "logits": logits.contiguous()},
              os.path.join(outdir, "ref.safetensors"))
    print(json.dumps({"keys": len(model.state_dict())}))


def read_cache(cache):
    """{id: [z, y, x] float32} of a biud cache (the record layout ctrate_release.py decodes)."""
    import numpy as np
    idx = json.load(open(os.path.join(cache, "index.json")))
    out = {}
    for it in idx["items"]:
        raw = np.memmap(os.path.join(cache, it["shard"]), np.uint8, "r")[it["offset"]:it["offset"] + it["bytes"]]
        assert it["dtype"] == "int16", it["dtype"]
        out[it["id"]] = raw.view(np.int16).astype(np.float32).reshape(it["shape"][::-1]) / it["quant"]
    return out


def cmd_nii(root, outdir, cache, *names):
    up = upstream()
    torch = up.torch
    import numpy as np
    import pandas as pd
    from safetensors.torch import save_file
    spec = importlib.util.spec_from_file_location("ctclip_data", os.path.join(source_root(), "scripts", "data.py"))
    train_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_data)
    loaders = {"train": train_data.CTReportDataset.nii_img_to_tensor,          # scripts/data.py (training)
               "zeroshot": up.data.CTReportDatasetinfer.nii_img_to_tensor}     # data_inference_nii.py (zero-shot)
    meta = pd.concat([pd.read_csv(os.path.join(root, "dataset", "metadata", f))
                      for f in ("train_metadata.csv", "validation_metadata.csv")])
    cached = read_cache(cache)
    have_model = os.path.exists(os.path.join(outdir, "ctclip.pt"))
    model = load(up, outdir)[1] if have_model else None
    out = {"max_abs": {}, "differing": {}, "min_code_gap": {}}
    lat = {}
    for name in names:
        split, p, scan, _ = name.split("_")
        path = os.path.join(root, "dataset", split, f"{split}_{p}", f"{split}_{p}_{scan}", name + ".nii.gz")
        got = cached[name]  # [z, y, x] = [k, j, i]
        for kind, fn in loaders.items():
            t = fn(None, path, meta)  # CT-CLIP's loader (self is not used); [1, k, i, j]
            want = t[0].numpy().transpose(0, 2, 1)
            assert got.shape == want.shape, (name, got.shape, want.shape)
            d = np.abs(got - want)
            key = f"{name}:{kind}"
            out["max_abs"][key] = float(d.max())
            out["differing"][key] = int((d > 1e-4).sum())
            if model is not None:
                with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                    video = t.unsqueeze(0).float()
                    vt = model.visual_transformer
                    tokens = vt(video, return_encoded_tokens=True)
                    lat[key] = image_latents(model, video, tokens)[0].contiguous()
                    enc = vt.encode(vt.to_patch_emb(video))
                    flat = torch.nn.functional.normalize(enc.reshape(-1, enc.shape[-1]), dim=-1)
                    top = (flat @ torch.nn.functional.normalize(vt.vq.codebook, dim=-1).t()).topk(2, dim=-1).values
                    out["min_code_gap"][key] = float((top[:, 0] - top[:, 1]).min())
    if lat:
        save_file(lat, os.path.join(outdir, "nii.safetensors"))
    print(json.dumps(out))


def cmd_zeroshot(outdir, cache, ids_csv, *findings):
    up = upstream()
    torch = up.torch
    import csv
    cfg, model = load(up, outdir)
    tok = tokenizer(cfg)
    cached = read_cache(cache)
    with open(ids_csv, newline="") as f:
        ids = [r[0] for r in list(csv.reader(f))[1:]]
    pairs = [tok([f"{x} is present.", f"{x} is not present."], return_tensors="pt", padding="max_length",
                 truncation=True, max_length=512) for x in findings]
    out = {}
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        for i in ids:
            vol = torch.from_numpy(cached[i].transpose(0, 2, 1).copy())[None, None]  # CT-CLIP's [k, i, j]
            probs = []
            for t in pairs:
                logits = model(t, vol, device=torch.device("cpu"))
                probs.append(float(torch.nn.Softmax(dim=0)(logits)[0]))  # zero_shot.py's apply_softmax
            out[i] = probs
    print(json.dumps(out))


def cmd_delong(manifest, probs_a, probs_b):
    import csv
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from eval_classification import delong_reference

    def table(path):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {r["id"]: r for r in rows}

    a, b, m = table(probs_a), table(probs_b), table(manifest)
    ids = list(a)
    findings = [k for k in next(iter(a.values())) if k != "id"]
    out = {}
    for f in findings:
        y = [int(float(m[i][f])) for i in ids]
        if len(set(y)) < 2:
            out[f] = None
            continue
        d = delong_reference(y, [float(b[i][f]) for i in ids], [float(a[i][f]) for i in ids])
        out[f] = {k: d[k] for k in ("auc1", "auc2", "z", "p")}
    print(json.dumps(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "delong":  # needs numpy only
        cmd_delong(*sys.argv[2:])
    else:
        {"model": cmd_model, "nii": cmd_nii, "zeroshot": cmd_zeroshot}[cmd](*sys.argv[2:])
