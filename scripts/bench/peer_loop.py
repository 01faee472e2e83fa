#!/usr/bin/env python3
"""The Python peer of the `biud-train` BIUD loop for bench_train_loop.py: a minimal PyTorch training
loop over the same preprocessed CT cache (biud-preprocess's index.json + shard files) with a
torch DataLoader, as a PyTorch user would write it. Not a test.

Per step: a batch of `--batch` training CTs read from the cache (numpy memmap of the int16 record,
/ quant), randomly cropped to the recipe's 84 x 84 x 42 voxels with the recipe's intensity
shift/scale; the quickstart's CT encoder (resnet3d18 tiny with its 3 x 7 x 7 stem, from biud's Python
package) and a projection to 128; a CLIP loss against the frozen report features of the cache
(text_features/*.safetensors, projected 384 -> 128) and a KL loss against the teacher's scores
over its 5 retrieved X-ray reports (retrieval/teacher_features.safetensors: h_star, scores) -
the shape of BIUD's RoCo + pair losses (without RoCo's false-negative handling and the semantic
term, so slightly less work than biud's step); torch.optim.AdamW with the recipe's lr and decay.

Prints one JSON line per step: {"step": k, "time": unix seconds after the optimizer step}.

  peer_loop.py --run runs/quickstart [--steps 30] [--batch 32] [--workers 2] [--threads 2]
"""
import argparse
import glob
import json
import os
import sys
import time

T_START = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CROP = (42, 84, 84)  # z, y, x (configs/quickstart.yaml data.augment.random_crop [84, 84, 42] is x, y, z)


class CacheDataset(torch.utils.data.Dataset):
    """Training CTs of the manifest, read from the biud cache (include/biud/image/CtCache.h)."""

    def __init__(self, cache, ids, rows):
        with open(os.path.join(cache, "index.json")) as f:
            idx = json.load(f)
        by_id = {it["id"]: it for it in idx["items"]}
        self.cache, self.items, self.rows = cache, [by_id[i] for i in ids], rows
        self.maps = {}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        if it["shard"] not in self.maps:
            self.maps[it["shard"]] = np.memmap(os.path.join(self.cache, it["shard"]), dtype=np.uint8, mode="r")
        x, y, z = it["shape"]
        raw = self.maps[it["shard"]][it["offset"]:it["offset"] + it["bytes"]].view(np.int16).reshape(z, y, x)
        rng = np.random.default_rng((i * 7919 + int(time.time() * 1e6)) % (1 << 32))
        o = [rng.integers(0, s - c + 1) for s, c in zip((z, y, x), CROP)]
        v = raw[o[0]:o[0] + CROP[0], o[1]:o[1] + CROP[1], o[2]:o[2] + CROP[2]].astype(np.float32) * (1.0 / it["quant"])
        v = v * (1 + rng.uniform(-0.1, 0.1)) + rng.uniform(-0.1, 0.1)
        return torch.from_numpy(v)[None], self.rows[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart", help="the quickstart's run folder (cache, data, retrieval)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import csv
    with open(os.path.join(a.run, "data", "ct", "manifest.csv"), newline="") as f:
        manifest = list(csv.DictReader(f))
    train = [(r, m["id"]) for r, m in enumerate(manifest) if m["split"] == "train"]
    from safetensors.torch import load_file
    text = load_file(glob.glob(os.path.join(a.run, "cache", "text_features", "*.safetensors"))[0])["features"]
    teacher = load_file(os.path.join(a.run, "retrieval", "teacher_features.safetensors"))
    ds = CacheDataset(os.path.join(a.run, "cache"), [i for _, i in train], [r for r, _ in train])
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
                                     persistent_workers=a.workers > 0)
    enc = common.biud_net("resnet3d18", "tiny", stem_kernel_depth=3)  # configs/quickstart.yaml's CT encoder
    ct_proj = nn.Linear(enc.out_dim, 128)
    text_proj = nn.Linear(text.shape[1], 128)
    log_tau = nn.Parameter(torch.tensor(float(np.log(0.07))))
    params = list(enc.parameters()) + list(ct_proj.parameters()) + list(text_proj.parameters()) + [log_tau]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.05},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=2e-3,
                            betas=(0.9, 0.98), eps=1e-8)
    step = 0
    print(json.dumps({"step": 0, "time": T_START, "what": "process start (after the interpreter)"}), flush=True)
    while step < a.steps:
        for x, rows in dl:
            opt.zero_grad(set_to_none=True)
            z = F.normalize(ct_proj(enc(x)), dim=-1)
            t = F.normalize(text_proj(text[rows % text.shape[0]]), dim=-1)
            logits = z @ t.t() / log_tau.exp()
            target = torch.arange(len(rows))
            clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
            h = F.normalize(teacher["h_star"][rows], dim=-1)                 # [B, 5, 128]
            s = torch.einsum("bd,bkd->bk", z, h) / 0.07
            pair = F.kl_div(F.log_softmax(s, -1), F.softmax(teacher["scores"][rows] / 0.005, -1), reduction="batchmean")
            (clip + pair).backward()
            opt.step()
            step += 1
            print(json.dumps({"step": step, "time": time.time(), "loss": float(clip + pair)}), flush=True)
            if step >= a.steps:
                break


if __name__ == "__main__":
    main()
