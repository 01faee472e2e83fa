#!/usr/bin/env python3
"""Gradient allreduce on Gloo with 2 ranks on this machine: biud's bucketed reducer
(`biud-launch --nproc 2 -- biud-dist-selftest --bench`: DataParallel::finalize(), copy into
buckets + allreduce + copy back) vs PyTorch DistributedDataParallel (same gradient shapes, same
bucket size, Gloo, 2 processes). Alternated, >= 3 repeats, medians. Not a test.

The gradients are a stack of transformer-block-shaped tensors (12 per block, as
biud-dist-selftest makes them). DDP reduces inside backward, so its cost is measured as the
backward with synchronisation minus the same backward under no_sync() (the backward itself is
one multiply per element), both timed between barriers.

Cases: small = 12 blocks of width 64 (144 tensors, 2.3 MiB: latency-bound), large = 4 blocks of
width 384 (48 tensors, 27 MiB: bandwidth-bound).

  bench_allreduce.py [--threads 1] [--iters 10] [--repeats 3] [--bucket-mb 25] [--quick] [--json out.json]
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = {"small": (12, 64), "large": (4, 384)}


def shapes(layers, w):
    s = [(3 * w, w), (3 * w,), (w, w), (w,), (4 * w, w), (4 * w,), (w, 4 * w), (w,), (w,), (w,), (w,), (w,)]
    return s * layers


def ddp_rank(rank, world, port, layers, width, bucket_mb, iters, threads, out):
    import time
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    torch.set_num_threads(threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(7 + rank)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = nn.ParameterList(nn.Parameter(torch.randn(s)) for s in shapes(layers, width))
            self.cs = [torch.randn(s) for s in shapes(layers, width)]

        def forward(self):
            return sum((p * c).sum() for p, c in zip(self.ps, self.cs))

    m = nn.parallel.DistributedDataParallel(Stack(), bucket_cap_mb=bucket_mb)

    def timed(sync):
        def once():
            m.zero_grad(set_to_none=True)
            m().backward()
        ctx = m.no_sync if not sync else None
        for _ in range(2):  # warm-up
            if ctx:
                with ctx():
                    once()
            else:
                once()
        dist.barrier()
        t = time.perf_counter()
        for _ in range(iters):
            if ctx:
                with ctx():
                    once()
            else:
                once()
        dist.barrier()
        return (time.perf_counter() - t) * 1e3 / iters

    with_sync = timed(True)
    without = timed(False)
    if rank == 0:
        nbytes = sum(p.numel() * 4 for p in m.parameters())
        with open(out, "w") as f:
            json.dump({"ms_backward_sync": with_sync, "ms_backward_nosync": without, "ms": with_sync - without,
                       "mib": nbytes / 1048576, "tensors": len(list(m.parameters()))}, f)
    dist.destroy_process_group()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="threads per rank (2 ranks on 2 cores: 1)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=25)
    ap.add_argument("--cases", default="small,large")
    ap.add_argument("--quick", action="store_true", help="3 iterations, the small case only")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if a.quick:
        a.iters, a.cases = 3, "small"
    import torch.multiprocessing as mp
    res = common.Result("allreduce", a.threads, a)
    for case in a.cases.split(","):
        layers, width = CASES[case]
        info = {}

        def biud():
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "r.json")
                cmd = [os.path.join(common.BIN, "biud-launch"), "--nproc", "2", "--quiet", "--",
                       os.path.join(common.BIN, "biud-dist-selftest"), "--bench", "--backend", "gloo", "--threads",
                       str(a.threads), "--layers", str(layers), "--width", str(width), "--bucket-mb", str(a.bucket_mb),
                       "--iters", str(a.iters), "--json", out, "--quiet"]
                common.child_peak_rss_mb(cmd)
                with open(out) as f:
                    r = json.load(f)
            info.update(mib=r["mib"], tensors=r["tensors"], buckets=r["buckets"])
            return r["bucketed"]["ms"]

        def ddp():
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "r.json")
                mp.spawn(ddp_rank, args=(2, free_port(), layers, width, a.bucket_mb, a.iters, a.threads, out), nprocs=2)
                with open(out) as f:
                    r = json.load(f)
            info.update(ddp_backward_nosync_ms=r["ms_backward_nosync"])
            return r["ms"]

        runs = common.alternate({"biud": biud, "peer": ddp}, a.repeats)
        res.add(common.row("gradient allreduce, Gloo, 2 ranks", f"{case}: {info.get('tensors')} tensors, "
                           f"{info.get('mib', 0):.1f} MiB", "ms", runs["biud"], runs["peer"],
                           f"torch DDP (bucket_cap_mb={a.bucket_mb:g}; backward minus no_sync backward)", **info))
    res.write(a.json)


if __name__ == "__main__":
    sys.exit(main())
