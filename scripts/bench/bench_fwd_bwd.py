#!/usr/bin/env python3
"""Forward + backward of six networks: biud (C++, `biud-embed --bench`) vs the same network in
PyTorch Python (bench_models.py's twins: vit3d = biud's architecture in PyTorch, bert = HF
transformers BertModel, resnet50 / vit_b16 = torchvision), same input, threads, loss
(||pooled||^2). bench_models.py times one case once; this runs every case --repeats times,
alternating the order (biud first, then PyTorch first, ...), and keeps the medians. Not a test.

  bench_fwd_bwd.py [--threads 2] [--repeats 3] [--iters 3] [--cases ...] [--quick] [--json out.json]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models  # noqa: E402
import common  # noqa: E402

SIX = "vit3d:tiny:2,bert:tiny:8,resnet50:base:1:64x64,vit3d:base:1:48x112x112,bert:base:2,vit_b16:base:1:112x112"
QUICK = "vit3d:tiny:2,bert:tiny:8"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(common.BIN, "biud-embed"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=SIX, help="comma list of arch:preset:batch[:DxHxW input]")
    ap.add_argument("--seq", type=int, default=128, help="text length for bert")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="the two tiny cases only")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if a.quick:
        a.cases = QUICK
    torch.set_num_threads(a.threads)
    res = common.Result("fwd_bwd", a.threads, a)
    for case in a.cases.split(","):
        parts = case.split(":")
        arch, preset, batch = parts[0], parts[1], int(parts[2])
        inp = [int(v) for v in parts[3].split("x")] if len(parts) > 3 else None
        info = {}

        def py():
            torch.manual_seed(0)
            return bench_models.time_python(arch, preset, batch, inp, a.seq, "cpu", a.warmup, a.iters)

        def cpp():
            r = bench_models.time_cpp(a.binary, arch, preset, batch, inp, a.seq, a.threads, "cpu", a.warmup, a.iters)
            info.update(params=r["params"], input=r["input"])
            return r["ms_fwd_bwd"]

        runs = common.alternate({"biud": cpp, "peer": py}, a.repeats)
        twin = {"vit3d": "the same ViT3D in PyTorch", "bert": "HF transformers BertModel (sdpa)",
                "resnet50": "torchvision resnet50", "vit_b16": "torchvision vit_b_16"}[arch]
        res.add(common.row("forward + backward", case, "ms", runs["biud"], runs["peer"], twin, **info))
    res.write(a.json)


if __name__ == "__main__":
    sys.exit(main())
