#!/usr/bin/env python3
"""Forward+backward time of biud's networks (C++, via `biud-embed --bench`) against the same
network in PyTorch Python on the same input, threads and device. Prints a table and writes
JSON lines to --out (default: stdout only).

The Python twins: vit3d = biud's Python package (python/biud, the one Python definition of biud's
networks, equal to the C++ one: tests/integration/PythonEqualityTest.cpp), bert = HF transformers
BertModel, resnet50 / vit_b16 = torchvision.

usage: scripts/bench/bench_models.py [--threads 2] [--device cpu] [--cases vit3d:tiny,bert:tiny]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BERT = {"tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
        "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)}


def python_case(arch, preset, batch, inp, seq, device):
    if arch == "vit3d":
        sys.path.insert(0, os.path.join(ROOT, "python"))
        from biud.models import vit3d
        m = vit3d(preset, image_size=tuple(inp) if inp else None)
        x = torch.randn(batch, 1, *(inp or ((32, 64, 64) if preset == "tiny" else (96, 224, 224))))
        f = lambda: m(x)
    elif arch == "bert":
        from transformers import BertConfig, BertModel
        m = BertModel(BertConfig(**BERT[preset], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                   attn_implementation="sdpa"))
        x = torch.randint(1000, 30522, (batch, seq))
        mask = torch.ones_like(x)
        f = lambda: m(input_ids=x, attention_mask=mask).last_hidden_state[:, 0]
    elif arch in ("resnet50", "vit_b16"):
        import torchvision
        m = torchvision.models.resnet50() if arch == "resnet50" else torchvision.models.vit_b_16(image_size=inp[0] if inp else 224)
        if arch == "resnet50":
            m.fc = nn.Identity()
        else:
            m.heads = nn.Identity()
        x = torch.randn(batch, 3, *(inp or (224, 224)))
        f = lambda: m(x)
    else:
        raise SystemExit(f"no Python twin for {arch}")
    m.to(device).train()
    x = x.to(device)
    if arch == "bert":
        mask = mask.to(device)
    return m, f


def time_python(arch, preset, batch, inp, seq, device, warmup, iters):
    m, f = python_case(arch, preset, batch, inp, seq, device)

    def step():
        m.zero_grad(set_to_none=True)
        f().pow(2).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t0) * 1000 / iters


def time_cpp(binary, arch, preset, batch, inp, seq, threads, device, warmup, iters):
    net = {"vit3d": "ct", "bert": "text", "resnet50": "xray", "vit_b16": "xray"}[arch]
    section = {"ct": "ct_encoder", "text": "text_encoder", "xray": "xray_encoder"}[net]
    cmd = [binary, "--bench", "--bench-net", net, "--threads", str(threads), "--device", device,
           "--set", f"model.{section}.arch={'bert' if arch == 'bert' else arch}",
           "--set", f"model.{section}.preset={preset}", "--bench-batch", str(batch), "--bench-seq", str(seq),
           "--bench-iters", str(iters), "--bench-warmup", str(warmup), "--quiet"]
    if inp:
        cmd += ["--bench-input", ",".join(map(str, inp))]
        if arch == "vit3d":
            cmd += ["--set", f"model.ct_encoder.image_size=[{','.join(map(str, inp))}]"]
        if arch == "vit_b16":
            cmd += ["--set", f"model.xray_encoder.image_size=[{inp[0]}]"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "bin", "biud-embed"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cases", default="vit3d:tiny:2,bert:tiny:8,vit3d:base:1:48x112x112,bert:base:2,resnet50:base:2:128x128",
                    help="comma list of arch:preset:batch[:DxHxW input]")
    ap.add_argument("--seq", type=int, default=128, help="text length for bert")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", help="append JSON lines here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    print(f"{'case':<28} {'C++ ms':>10} {'PyTorch ms':>11} {'C++/Py':>7}")
    for case in a.cases.split(","):
        parts = case.split(":")
        arch, preset, batch = parts[0], parts[1], int(parts[2])
        inp = [int(v) for v in parts[3].split("x")] if len(parts) > 3 else None
        torch.manual_seed(0)
        py = time_python(arch, preset, batch, inp, a.seq, a.device, a.warmup, a.iters)
        cpp = time_cpp(a.binary, arch, preset, batch, inp, a.seq, a.threads, a.device, a.warmup, a.iters)
        row = dict(case=case, cpp_ms=cpp["ms_fwd_bwd"], python_ms=py, ratio=cpp["ms_fwd_bwd"] / py,
                   threads=a.threads, device=a.device, params=cpp["params"], input=cpp["input"])
        rows.append(row)
        print(f"{case:<28} {row['cpp_ms']:>10.1f} {py:>11.1f} {row['ratio']:>7.2f}", flush=True)
    if a.out:
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
