#!/usr/bin/env python3
"""Top-K retrieval on precomputed features: biud-retrieve (feature mode) vs a chunked PyTorch peer.

Both sides read the same files (CT and X-ray report features as .npy with id lists, X-ray image
features), search the exact top-K by inner product in tiles of query-block x block (torch.mm +
topk per tile and a K-wide merge on the peer's side; biud: retrieval/TopK.h), gather the image
features of the kept X-rays by id, and write pairing.csv + the teacher-features safetensors. Same
threads on both sides (torch.set_num_threads = biud --threads). Runs alternate (biud, peer, and
torch.mm alone on --mm-tiles tiles of the same shape, each in its own process) for --repeat
rounds; medians are reported. Checked
after the runs: identical indices and bit-identical scores on both sides.

Reported per side: the search time (inside the process, the top-K pass only), its GFLOP/s
(2 N M d / time) and its share of torch.mm's GFLOP/s on one [query-block, d] x [d, block] tile,
the whole process's wall time, and its peak RSS (ru_maxrss of the child).

With --precisions bf16,fp16 biud also runs once per listed precision (fp16 from a float16 .npy of the
same X-ray features, bf16 from the fp32 file); the report gives the share of CTs whose top-1 /
top-K set equals fp32's, the recall of fp32's top K, and the peak RSS.

Usage: scripts/bench/bench_retrieval.py [--n 12000] [--m 300000] [--d 384] [--k 5] [--threads 2]
       [--repeat 3] [--json out.json] [--precisions bf16,fp16]
"""
import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ---------------------------------------------------------------------------------------------
# The peer: what a PyTorch user writes (one process, like biud-retrieve).

def peer(a):
    import numpy as np
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    q = torch.from_numpy(np.load(os.path.join(a.data, "ct.npy")))
    db = torch.from_numpy(np.load(os.path.join(a.data, "xray.npy")))
    img = torch.from_numpy(np.load(os.path.join(a.data, "image.npy")))
    ct_ids = open(os.path.join(a.data, "ct_ids.txt")).read().split("\n")[:-1]
    xr_ids = open(os.path.join(a.data, "xray_ids.txt")).read().split("\n")[:-1]
    img_ids = open(os.path.join(a.data, "image_ids.txt")).read().split("\n")[:-1]
    n, m = q.shape[0], db.shape[0]
    k = min(a.k, m)

    t0 = time.perf_counter()
    scores, indices = [], []
    with torch.no_grad():
        for q0 in range(0, n, a.query_block):
            qc = q[q0:q0 + a.query_block]
            best_s = torch.full((qc.shape[0], k), float("-inf"))
            best_i = torch.full((qc.shape[0], k), -1, dtype=torch.int64)
            for b0 in range(0, m, a.block):
                s = qc @ db[b0:b0 + a.block].T
                v, i = s.topk(min(k, s.shape[1]), dim=1)
                cs, ci = torch.cat([best_s, v], 1), torch.cat([best_i, i + b0], 1)
                # stable: on equal scores the running best (lower indices) stays ahead
                order = torch.sort(cs, dim=1, descending=True, stable=True).indices[:, :k]
                best_s, best_i = cs.gather(1, order), ci.gather(1, order)
            scores.append(best_s)
            indices.append(best_i)
    scores, indices = torch.cat(scores), torch.cat(indices)
    search = time.perf_counter() - t0

    row = {x: r for r, x in enumerate(img_ids)}
    kept = torch.unique(indices)
    kept_img = img[torch.tensor([row[xr_ids[j]] for j in kept.tolist()])]
    cand = kept_img[torch.searchsorted(kept, indices.flatten())].view(n, k, -1)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "pairing.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ct_id", "xray_id", "score", "rank"])
        sl, il = scores.tolist(), indices.tolist()
        for i in range(n):
            for r in range(k):
                w.writerow([ct_ids[i], xr_ids[il[i][r]], f"{sl[i][r]:.6f}", r + 1])
    save_file({"h_star": cand.contiguous(), "scores": scores, "report_embedding": q, "indices": indices},
              os.path.join(a.out, "teacher_features.safetensors"), metadata={"ct_ids": "\n".join(ct_ids)})
    print(json.dumps({"search_seconds": search, "seconds": time.perf_counter() - t_start}))


# ---------------------------------------------------------------------------------------------
# The driver.

def run_child(cmd, env=None):
    """Run a command; return (stdout, wall seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed (rc {p.returncode}): {' '.join(cmd)}\n{out[-3000:]}")
    return out, wall, ru.ru_maxrss / 1024.0


def make_data(d, a):
    import numpy as np
    g = np.random.default_rng(0)

    def unit(n, dim):
        x = np.empty((n, dim), dtype=np.float32)
        for r0 in range(0, n, 50000):  # in slices: no float64 copy of the whole array
            x[r0:r0 + 50000] = g.standard_normal((min(50000, n - r0), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    np.save(os.path.join(d, "ct.npy"), unit(a.n, a.d))
    xr = unit(a.m, a.d)
    np.save(os.path.join(d, "xray.npy"), xr)
    if "fp16" in a.precisions:
        np.save(os.path.join(d, "xray_f16.npy"), xr.astype(np.float16))
    del xr
    np.save(os.path.join(d, "image.npy"), unit(a.m, a.dx))
    for name, ids in [("ct_ids.txt", [f"ct{i:06d}" for i in range(a.n)]),
                      ("xray_ids.txt", [f"xr{i:07d}" for i in range(a.m)]),
                      ("image_ids.txt", [f"xr{i:07d}" for i in range(a.m)])]:
        with open(os.path.join(d, name), "w") as f:
            f.write("\n".join(ids) + "\n")


def mm_tiles(a):
    """The GEMM limit (internal --mm mode, its own process): torch.mm on --mm-tiles
    [query_block, d] x [d, block] tiles after one warm-up; prints seconds per tile."""
    import torch
    torch.set_num_threads(a.threads)
    x, y = torch.randn(a.query_block, a.d), torch.randn(a.block, a.d)
    torch.mm(x, y.T)
    t0 = time.perf_counter()
    for _ in range(a.mm_tiles):
        torch.mm(x, y.T)
    print(json.dumps({"tile_seconds": (time.perf_counter() - t0) / a.mm_tiles}))


def biud_cmd(a, data, out, precision="fp32", xray="xray.npy"):
    return [a.bin, "--quiet", "--threads", str(a.threads), "--top-k", str(a.k), "--block", str(a.block),
            "--query-block", str(a.query_block), "--chunk", str(a.query_block), "--precision", precision,
            "--ct-report-features", f"{data}/ct.npy", "--ct-ids", f"{data}/ct_ids.txt",
            "--xray-report-features", f"{data}/{xray}", "--xray-ids", f"{data}/xray_ids.txt",
            "--xray-image-features", f"{data}/image.npy", "--xray-image-ids", f"{data}/image_ids.txt",
            "--out", out]


def read_biud(out):
    from safetensors.torch import load_file
    t = load_file(os.path.join(out, "teacher_features.safetensors"))
    with open(os.path.join(out, "pairing.csv")) as f:
        rows = list(csv.reader(f))[1:]
    return t, [r[1] for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12000, help="CT report features (queries)")
    ap.add_argument("--m", type=int, default=300000, help="X-ray report features (database)")
    ap.add_argument("--d", type=int, default=384, help="report feature width")
    ap.add_argument("--dx", type=int, default=64, help="X-ray image feature width")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--block", type=int, default=8192, help="database rows per tile (biud --block)")
    ap.add_argument("--query-block", type=int, default=4096, help="queries per tile (biud --query-block, --chunk)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precisions", default="", help="also run biud once in these precisions (e.g. bf16,fp16)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "biud-retrieve"))
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--workdir", default="", help="folder for the data and outputs (default: a temporary one)")
    # peer mode (internal)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--mm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mm-tiles", type=int, default=10, help="tiles per torch.mm measurement (GEMM limit)")
    a = ap.parse_args()
    if a.peer:
        return peer(a)
    if a.mm:
        return mm_tiles(a)

    tmp = None
    if not a.workdir:
        tmp = tempfile.TemporaryDirectory(prefix="bench-retrieval-")
        a.workdir = tmp.name
    data = os.path.join(a.workdir, "data")
    os.makedirs(data, exist_ok=True)
    print(f"data: {a.n} x {a.m}, d={a.d}, d_X={a.dx}, K={a.k}, tiles {a.query_block} x {a.block}, "
          f"{a.threads} threads, {a.repeat} rounds", flush=True)
    make_data(data, a)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    flops = 2.0 * a.n * a.m * a.d
    tile_flops = 2.0 * a.query_block * a.block * a.d
    res = {"biud": [], "peer": [], "mm_tile_seconds": []}
    for r in range(a.repeat):
        for side in (["biud", "peer"] if r % 2 == 0 else ["peer", "biud"]):
            out = os.path.join(a.workdir, side)
            if side == "biud":
                _, wall, rss = run_child(biud_cmd(a, data, out), env)
                with open(os.path.join(out, "retrieve.json")) as f:
                    search = json.load(f)["search_seconds"]
            else:
                o, wall, rss = run_child([sys.executable, os.path.abspath(__file__), "--peer", "--data", data, "--out",
                                          out, "--threads", str(a.threads), "--k", str(a.k), "--block", str(a.block),
                                          "--query-block", str(a.query_block)], env)
                search = json.loads(o.strip().splitlines()[-1])["search_seconds"]
            res[side].append({"search_seconds": search, "wall_seconds": wall, "peak_rss_mib": rss})
            print(f"round {r + 1} {side}: search {search:.2f} s ({flops / search / 1e9:.1f} GFLOP/s), "
                  f"process {wall:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
        o, _, _ = run_child([sys.executable, os.path.abspath(__file__), "--mm", "--threads", str(a.threads), "--d",
                             str(a.d), "--block", str(a.block), "--query-block", str(a.query_block), "--mm-tiles",
                             str(a.mm_tiles)], env)
        res["mm_tile_seconds"].append(json.loads(o.strip().splitlines()[-1])["tile_seconds"])
        print(f"round {r + 1} torch.mm tile: {tile_flops / res['mm_tile_seconds'][-1] / 1e9:.1f} GFLOP/s", flush=True)

    # Identical results?
    import torch
    from safetensors.torch import load_file
    bt, bids = read_biud(os.path.join(a.workdir, "biud"))
    pt = load_file(os.path.join(a.workdir, "peer", "teacher_features.safetensors"))
    with open(os.path.join(a.workdir, "peer", "pairing.csv")) as f:
        pids = [r[1] for r in list(csv.reader(f))[1:]]
    same_idx = bids == pids
    same_scores = torch.equal(bt["scores"], pt["scores"])
    same_feats = torch.equal(bt["h_star"], pt["h_star"])

    med = lambda side, key: statistics.median(x[key] for x in res[side])
    mm_gflops = tile_flops / statistics.median(res["mm_tile_seconds"]) / 1e9
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "shape": {"n": a.n, "m": a.m, "d": a.d, "d_x": a.dx, "k": a.k, "query_block": a.query_block,
                  "block": a.block},
        "threads": a.threads,
        "rounds": a.repeat,
        "runs": res,
        "median": {s: {k: med(s, k) for k in ("search_seconds", "wall_seconds", "peak_rss_mib")}
                   for s in ("biud", "peer")},
        "gflops": {"biud_search": flops / med("biud", "search_seconds") / 1e9,
                   "peer_search": flops / med("peer", "search_seconds") / 1e9,
                   "torch_mm_tile": mm_gflops},
        "identical": {"indices": same_idx, "scores": same_scores, "image_features": same_feats},
    }
    summary["share_of_mm"] = {s: summary["gflops"][f"{s}_search"] / mm_gflops for s in ("biud", "peer")}
    summary["ratio_biud_over_peer"] = {k: med("biud", k) / med("peer", k)
                                       for k in ("search_seconds", "wall_seconds", "peak_rss_mib")}
    # Per round (the machine's load drifts between rounds; a round's three runs are neighbours).
    summary["per_round"] = [{"search_biud_over_peer": b["search_seconds"] / p["search_seconds"],
                             "biud_share_of_mm": mm / (b["search_seconds"] / (a.n * a.m * a.d * 2 / tile_flops)),
                             "peer_share_of_mm": mm / (p["search_seconds"] / (a.n * a.m * a.d * 2 / tile_flops))}
                            for b, p, mm in zip(res["biud"], res["peer"], res["mm_tile_seconds"])]

    if a.precisions:
        fp32_pairs = [bids[i:i + a.k] for i in range(0, len(bids), a.k)]
        summary["precisions"] = {}
        for p in [x for x in a.precisions.split(",") if x]:
            out = os.path.join(a.workdir, "biud_" + p)
            # fp16: from a float16 .npy (held as read); bf16: from the fp32 file (numpy has no bf16)
            _, wall, rss = run_child(biud_cmd(a, data, out, p, "xray_f16.npy" if p == "fp16" else "xray.npy"), env)
            with open(os.path.join(out, "retrieve.json")) as f:
                search = json.load(f)["search_seconds"]
            _, ids = read_biud(out)
            pairs = [ids[i:i + a.k] for i in range(0, len(ids), a.k)]
            top1 = sum(x[0] == y[0] for x, y in zip(pairs, fp32_pairs)) / len(pairs)
            topk = sum(set(x) == set(y) for x, y in zip(pairs, fp32_pairs)) / len(pairs)
            recall = sum(len(set(x) & set(y)) for x, y in zip(pairs, fp32_pairs)) / (len(pairs) * a.k)
            summary["precisions"][p] = {"search_seconds": search, "wall_seconds": wall, "peak_rss_mib": rss,
                                        "top1_same_as_fp32": top1, "topk_set_same_as_fp32": topk,
                                        "recall_at_k_vs_fp32": recall}
            print(f"biud {p}: search {search:.2f} s, peak RSS {rss:.0f} MiB; top-1 as fp32 {100 * top1:.2f}%, "
                  f"top-{a.k} set as fp32 {100 * topk:.2f}%, recall@{a.k} {100 * recall:.2f}%", flush=True)

    m = summary["median"]
    print(f"\nmedians of {a.repeat} alternated rounds ({summary['date']}, {summary['machine']}, {a.threads} threads):")
    print(f"  {'':10}{'search s':>10}{'GFLOP/s':>9}{'% of mm':>9}{'process s':>11}{'peak RSS MiB':>14}")
    for s in ("biud", "peer"):
        print(f"  {s:10}{m[s]['search_seconds']:10.2f}{summary['gflops'][s + '_search']:9.1f}"
              f"{100 * summary['share_of_mm'][s]:8.0f}%{m[s]['wall_seconds']:11.2f}{m[s]['peak_rss_mib']:14.0f}")
    print(f"  torch.mm on one {a.query_block} x {a.d} x {a.block} tile: {mm_gflops:.1f} GFLOP/s")
    r = summary["ratio_biud_over_peer"]
    print(f"  ratio biud / peer: search {r['search_seconds']:.2f}, process {r['wall_seconds']:.2f}, "
          f"peak RSS {r['peak_rss_mib']:.2f}")
    for i, x in enumerate(summary["per_round"]):
        print(f"  round {i + 1}: search biud / peer {x['search_biud_over_peer']:.2f}; share of torch.mm: biud "
              f"{100 * x['biud_share_of_mm']:.0f}%, peer {100 * x['peer_share_of_mm']:.0f}%")
    print(f"  identical: indices {same_idx}, scores {same_scores}, image features {same_feats}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {a.json}")
    if tmp:
        tmp.cleanup()
    return 0 if (same_idx and same_scores) else 1


if __name__ == "__main__":
    sys.exit(main())
