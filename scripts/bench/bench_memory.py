#!/usr/bin/env python3
"""Peak memory of a training step of ViT3D-base at 96 x 224 x 224 with activation checkpointing:
biud (`biud-embed --bench --bench-optimizer adamw`, model.ct_encoder.checkpointing=true) vs
PyTorch eager (the same network from biud's Python package, python/biud/models/vit3d.py, built
from the same config keys with common.biud_net; checkpointing=True runs each block under
torch.utils.checkpoint.checkpoint(use_reentrant=False); torch.optim.AdamW). Each side runs in its
own process (2 steps: the second has the optimizer state) and the peak resident memory of that
process (getrusage ru_maxrss of the child) is compared; alternated, >= 3 repeats, medians.
With --allocators also biud under jemalloc and tcmalloc (LD_PRELOAD; Debian's libjemalloc2 /
libtcmalloc-minimal4) and glibc with MALLOC_TRIM_THRESHOLD_/MALLOC_MMAP_THRESHOLD_ set, to show
what the allocator's hold on freed memory costs. A build that links tcmalloc (cmake/BiudMalloc.cmake)
runs it as `biud`; jemalloc is then preloaded on top of it, and the glibc variant is left out.
Not a test.

  bench_memory.py [--threads 2] [--repeats 3] [--input 96x224x224] [--allocators] [--quick] [--json out.json]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

LIBS = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}


def peer_child(preset, inp, threads, checkpointing):
    """The PyTorch side, in this (child) process: 2 AdamW steps; prints the step times."""
    import time
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = common.biud_net("vit3d", preset, image_size=inp, checkpointing=checkpointing).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randn(1, 1, *inp)
    ts = []
    for _ in range(2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        m(x).pow(2).sum().backward()
        opt.step()
        ts.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"ms_each": ts, "params": common.params(m)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--input", default="96x224x224", help="D x H x W, multiples of 16")
    ap.add_argument("--no-checkpointing", action="store_true", help="time without activation checkpointing")
    ap.add_argument("--allocators", action="store_true", help="also biud under jemalloc, tcmalloc and tuned glibc")
    ap.add_argument("--quick", action="store_true", help="ViT3D-tiny at 32 x 64 x 64: a smoke run")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="base", help=argparse.SUPPRESS)
    a = ap.parse_args()
    inp = (32, 64, 64) if a.quick else tuple(int(v) for v in a.input.split("x"))
    preset = "tiny" if a.quick else a.preset
    ckpt = not a.no_checkpointing
    if a.peer_child:
        return peer_child(preset, inp, a.threads, ckpt)

    def biud(env=None):
        cmd = [os.path.join(common.BIN, "biud-embed"), "--bench", "--bench-net", "ct", "--threads", str(a.threads),
               "--device", "cpu", "--quiet", "--set", "model.ct_encoder.arch=vit3d",
               "--set", f"model.ct_encoder.preset={preset}", "--set", f"model.ct_encoder.checkpointing={str(ckpt).lower()}",
               "--set", f"model.ct_encoder.image_size=[{','.join(map(str, inp))}]", "--bench-batch", "1",
               "--bench-input", ",".join(map(str, inp)), "--bench-iters", "1", "--bench-warmup", "1",
               "--bench-optimizer", "adamw"]
        rss, out = common.child_peak_rss_mb(cmd, env)
        return rss

    def peer():
        cmd = [sys.executable, os.path.abspath(__file__), "--peer-child", "--threads", str(a.threads),
               "--input", "x".join(map(str, inp)), "--preset", preset] + (["--no-checkpointing"] if not ckpt else [])
        rss, out = common.child_peak_rss_mb(cmd)
        return rss

    runners = {"biud": biud, "peer": peer}
    if a.allocators:
        for name, lib in LIBS.items():
            if os.path.exists(lib) and not (name == "tcmalloc" and common.biud_malloc() == "tcmalloc"):
                runners[f"biud-{name}"] = lambda lib=lib: biud({"LD_PRELOAD": lib})
        if common.biud_malloc() == "glibc":  # glibc's knobs do nothing to a build that links tcmalloc
            runners["biud-glibc-trim"] = lambda: biud({"MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "1048576"})
    res = common.Result("memory", a.threads, a)
    runs = common.alternate(runners, a.repeats)
    case = f"vit3d {preset}, 1 x 1 x {'x'.join(map(str, inp))}, {'with' if ckpt else 'without'} checkpointing, AdamW"
    extra = {f"{k}_median": common.median(v) for k, v in runs.items() if k not in ("biud", "peer")}
    res.add(common.row("peak memory of a training step", case, "MiB", runs["biud"], runs["peer"],
                       "PyTorch eager, torch.utils.checkpoint", variants={k: v for k, v in runs.items()
                                                                           if k not in ("biud", "peer")}, **extra))
    for k, v in extra.items():
        print(f"    {k:<26} {v:10.1f} MiB")
    res.write(a.json)


if __name__ == "__main__":
    sys.exit(main())
