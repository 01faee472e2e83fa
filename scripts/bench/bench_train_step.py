#!/usr/bin/env python3
"""Full training step (zero_grad, forward, loss, backward, AdamW step): biud (C++,
`biud-embed --bench --bench-optimizer adamw`) vs PyTorch eager with torch.optim.AdamW, same
network (the PyTorch side is biud's Python package, python/biud/models, built from the same config
keys), input, loss (||pooled||^2), threads; alternated, >= 3 repeats, medians. Not a test.

Cases (--cases, comma list of NAME):
  quickstart  the quickstart's CT encoder, resnet3d18 tiny with its 3 x 7 x 7 stem (0.52 M
              parameters), batch 32 of 1 x 42 x 84 x 84 (the recipe's random crop)
  vit3d-base  ViT3D-base (88 M parameters), batch 1 of 1 x 48 x 112 x 112 (--vit-input)
Peers: `torch` = what a PyTorch user writes (default memory format, torch.optim.AdamW() with its
defaults: on CPU the per-parameter loop); `torch-tuned` = the same with channels_last_3d (ResNet)
and AdamW(fused=True). biud variants: `biud` = the defaults (fused AdamW, channels-last
convolutions); with --levers also `biud-loop` (BIUD_ADAMW=loop), `biud-ncdhw`
(BIUD_CHANNELS_LAST=0), `biud-before` (both off: the arithmetic before issue 24) and
`biud-tcmalloc` (LD_PRELOAD of Debian's libtcmalloc-minimal4 when installed and the build does not
link it already: cmake/BiudMalloc.cmake), to show what each lever is worth. The JSON's
machine.biud_malloc says which allocator `biud` ran.

  bench_train_step.py [--threads 2] [--repeats 3] [--iters 3] [--cases quickstart,vit3d-base]
                      [--levers] [--quick] [--json out.json]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = {
    "quickstart": dict(arch="resnet3d18", preset="tiny", batch=32, input=(42, 84, 84), stem=3),
    "vit3d-base": dict(arch="vit3d", preset="base", batch=1, input=(48, 112, 112)),
}
QUICK = {
    "quickstart": dict(arch="resnet3d18", preset="tiny", batch=4, input=(24, 40, 40), stem=3),
    "vit3d-base": dict(arch="vit3d", preset="tiny", batch=2, input=(32, 64, 64)),
}


def biud_step(case, threads, warmup, iters, env=None, optimizer="adamw", extra=()):
    cmd = [os.path.join(common.BIN, "biud-embed"), "--bench", "--bench-net", "ct", "--threads", str(threads),
           "--device", "cpu", "--quiet", "--set", f"model.ct_encoder.arch={case['arch']}",
           "--set", f"model.ct_encoder.preset={case['preset']}", "--bench-batch", str(case["batch"]),
           "--bench-input", ",".join(map(str, case["input"])), "--bench-iters", str(iters),
           "--bench-warmup", str(warmup), "--bench-optimizer", optimizer,
           # the recipe's optimizer settings (configs/quickstart.yaml)
           "--set", "optimizer.lr=0.001", "--set", "optimizer.weight_decay=0.05", *extra]
    if case["arch"] == "vit3d":
        cmd += ["--set", f"model.ct_encoder.image_size=[{','.join(map(str, case['input']))}]"]
    if case.get("stem"):
        cmd += ["--set", f"model.ct_encoder.stem_kernel_depth={case['stem']}"]
    return common.run_json(cmd, env)


def torch_model(case, channels_last):
    # biud's Python package, from the same config keys biud_step passes to biud-embed
    m = common.biud_net(case["arch"], case["preset"], image_size=case["input"] if case["arch"] == "vit3d" else None,
                        stem_kernel_depth=case.get("stem", 0))
    x = torch.randn(case["batch"], 1, *case["input"])
    if channels_last and case["arch"] != "vit3d":
        m = m.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return m.train(), x


def torch_optimizer(m, fused):
    decay = [p for p in m.parameters() if p.dim() >= 2]
    rest = [p for p in m.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                             lr=1e-3, betas=(0.9, 0.98), eps=1e-8, fused=True if fused else None)


def torch_runner(case, tuned, warmup, iters):
    m, x = torch_model(case, channels_last=tuned)
    opt = torch_optimizer(m, fused=tuned)

    def step():
        opt.zero_grad(set_to_none=True)
        m(x).pow(2).sum().backward()
        opt.step()

    def run():
        for _ in range(warmup):
            step()
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            step()
            ts.append((time.perf_counter() - t) * 1e3)
        return common.median(ts)

    return run, common.params(m)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="alternated rounds (>= 3)")
    ap.add_argument("--iters", type=int, default=3, help="timed steps per round (their median counts)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cases", default="quickstart,vit3d-base")
    ap.add_argument("--vit-input", default="48x112x112", help="ViT3D-base input D x H x W (multiples of 16)")
    ap.add_argument("--levers", action="store_true", help="also time biud with each lever off")
    ap.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run of the script")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = common.Result("train_step", a.threads, a)
    for name in a.cases.split(","):
        case = dict((QUICK if a.quick else CASES)[name])
        if name == "vit3d-base" and not a.quick:
            case["input"] = tuple(int(v) for v in a.vit_input.split("x"))
        torch.manual_seed(0)
        peer, n_py = torch_runner(case, False, a.warmup, a.iters)
        tuned, _ = torch_runner(case, True, a.warmup, a.iters)
        info = {}

        def biud(env=None):
            r = biud_step(case, a.threads, a.warmup, a.iters, env)
            if not env:  # the default run's optimizer, not the last lever variant's
                info.update(params=r["params"], optimizer=r["optimizer"])
            return r["ms_median"]

        runners = {"biud": biud, "torch": peer, "torch-tuned": tuned}
        if a.levers:
            runners["biud-loop"] = lambda: biud({"BIUD_ADAMW": "loop"})
            runners["biud-ncdhw"] = lambda: biud({"BIUD_CHANNELS_LAST": "0"})
            runners["biud-before"] = lambda: biud({"BIUD_ADAMW": "loop", "BIUD_CHANNELS_LAST": "0"})
            tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
            if os.path.exists(tc) and common.biud_malloc() != "tcmalloc":  # a build that links it runs it already
                runners["biud-tcmalloc"] = lambda: biud({"LD_PRELOAD": tc})
        runs = common.alternate(runners, a.repeats)
        stem = f" with a {case['stem']}x7x7 stem" if case.get("stem") else ""
        label = (f"{name} ({case['arch']} {case['preset']}{stem}, {case['batch']} x 1 x "
                 f"{'x'.join(map(str, case['input']))})")
        extra = {k: runs[k] for k in runs if k not in ("biud", "torch")}
        extra_med = {f"{k}_median": common.median(v) for k, v in extra.items()}
        r = common.row("full step with AdamW", label, "ms", runs["biud"], runs["torch"],
                       "PyTorch eager, torch.optim.AdamW() defaults", params_biud=info.get("params"),
                       params_torch=n_py, biud_optimizer=info.get("optimizer"),
                       ratio_vs_tuned=common.median(runs["biud"]) / common.median(runs["torch-tuned"]),
                       tuned_name="PyTorch channels_last_3d + AdamW(fused=True)", variants=extra, **extra_med)
        res.add(r)
        for k, v in extra_med.items():
            print(f"    {k:<22} {v:10.4g} ms   (biud/this {common.median(runs['biud']) / v:.2f})")
    res.write(a.json)


if __name__ == "__main__":
    main()
