#!/usr/bin/env python3
"""Benchmark: biud-preprocess vs the equivalent MONAI pipeline, and cache reads vs decoding.

Makes N synthetic CT volumes (.nii.gz, int16 HU, RAS affine as scanners export them), then
  1. preprocessing, same volumes, same parameters:
       build/bin/biud-preprocess (threads = 1 and all cores)
       MONAI: LoadImage -> Orientation(LPS) -> Spacing(bilinear) -> ScaleIntensityRange(clip)
              -> ResizeWithPadOrCrop (one process, and a thread pool of all cores)
  2. reading a training item: the biud cache (numpy memmap of the int16 record, / quant)
       vs a plain .npy cache (np.load of the float32 volume per item: what a Python user
       would keep) and vs nibabel .nii.gz decode + MONAI Spacing resample (no cache at all).
biud and MONAI alternate (biud, MONAI, MONAI, biud, ...) over --repeats rounds; medians.
Not a test: prints a table and writes JSON (--json, scripts/bench/common.py's format).

  bench_preprocess.py [--n 8] [--size 320 320 160] [--spacing 0.8 0.8 2.0] [--repeats 3] [--quick] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROOT = common.ROOT
TARGET_SPACING = (1.5, 1.5, 3.0)
TARGET_SIZE = (96, 96, 48)


def make_volumes(folder, n, size, spacing):
    import nibabel as nib
    rng = np.random.default_rng(0)
    paths = []
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in size], indexing="ij")
    body = (x ** 2 / 0.8 ** 2 + y ** 2 / 0.6 ** 2) < 1
    lungs = (((x - 0.35) ** 2 + y ** 2 / 1.5) < 0.08) | (((x + 0.35) ** 2 + y ** 2 / 1.5) < 0.08)
    base = np.where(body, 40, -1000) + np.where(lungs & body, -860, 0)
    for i in range(n):
        vol = (base + rng.normal(0, 20, size)).astype(np.int16)
        aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # RAS affine of an LPS-stored scan
        aff[:3, 3] = [100.0, 120.0, -50.0 - i]
        p = os.path.join(folder, f"ct{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(vol, aff), p)
        paths.append(p)
    return paths


def run_biud(manifest, out, threads):
    exe = os.path.join(ROOT, "build", "bin", "biud-preprocess")
    cmd = [exe, "--manifest", manifest, "--out", out, "--threads", str(threads), "--quiet",
           "--set", f"data.ct.spacing=[{TARGET_SPACING[0]},{TARGET_SPACING[1]},{TARGET_SPACING[2]}]",
           "--set", f"data.ct.size=[{TARGET_SIZE[0]},{TARGET_SIZE[1]},{TARGET_SIZE[2]}]"]
    t = time.perf_counter()
    common.retry(lambda: subprocess.run(cmd, check=True))
    return time.perf_counter() - t


def biud_startup():
    """Process start of biud-preprocess (no LibTorch): the best of 3 `--version` runs."""
    exe = os.path.join(ROOT, "build", "bin", "biud-preprocess")
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([exe, "--version"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def monai_pipeline():
    from monai.transforms import (Compose, LoadImage, Orientation, ResizeWithPadOrCrop, ScaleIntensityRange,
                                  Spacing)
    return Compose([
        LoadImage(image_only=True, ensure_channel_first=True),
        Orientation(axcodes="LPS"),
        Spacing(pixdim=TARGET_SPACING, mode="bilinear"),
        ScaleIntensityRange(a_min=-1000, a_max=1000, b_min=-1, b_max=1, clip=True),
        ResizeWithPadOrCrop(spatial_size=TARGET_SIZE, constant_values=-1),
    ])


def run_monai(paths, threads):
    pipe = monai_pipeline()
    t = time.perf_counter()
    if threads == 1:
        out = [pipe(p) for p in paths]
    else:
        with ThreadPoolExecutor(threads) as ex:
            out = list(ex.map(pipe, paths))
    dt = time.perf_counter() - t
    assert tuple(out[0].shape[1:]) == TARGET_SIZE, out[0].shape
    return dt


def read_cache(cache):
    with open(os.path.join(cache, "index.json")) as f:
        idx = json.load(f)
    maps = {}
    t = time.perf_counter()
    total = 0.0
    for it in idx["items"]:
        if it["shard"] not in maps:
            maps[it["shard"]] = np.memmap(os.path.join(cache, it["shard"]), dtype=np.uint8, mode="r")
        raw = maps[it["shard"]][it["offset"]:it["offset"] + it["bytes"]].view(np.int16)
        vol = raw.astype(np.float32) * (1.0 / it["quant"])
        total += float(vol[0])
    return time.perf_counter() - t, len(idx["items"])


def write_npy_cache(cache, folder):
    """The plain .npy cache a Python user would keep: one float32 volume per item."""
    with open(os.path.join(cache, "index.json")) as f:
        idx = json.load(f)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for it in idx["items"]:
        raw = np.fromfile(os.path.join(cache, it["shard"]), dtype=np.int16, count=it["bytes"] // 2, offset=it["offset"])
        p = os.path.join(folder, it["id"] + ".npy")
        np.save(p, (raw.astype(np.float32) / it["quant"]).reshape(it["shape"][::-1]))
        paths.append(p)
    return paths


def read_npy(paths):
    t = time.perf_counter()
    total = 0.0
    for p in paths:
        total += float(np.load(p).flat[0])
    return (time.perf_counter() - t) / len(paths)


def read_nibabel_resample(paths):
    import nibabel as nib
    from monai.transforms import Spacing
    sp = Spacing(pixdim=TARGET_SPACING, mode="bilinear")
    t = time.perf_counter()
    for p in paths:
        img = nib.load(p)
        arr = np.asarray(img.dataobj, dtype=np.float32)[None]
        import torch
        from monai.data import MetaTensor
        out = sp(MetaTensor(torch.from_numpy(arr), affine=torch.as_tensor(img.affine)))
        _ = float(out.flatten()[0])
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="number of volumes")
    ap.add_argument("--size", type=int, nargs=3, default=[320, 320, 160], help="raw volume size (voxels)")
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 2.0], help="raw spacing (mm)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for the parallel runs")
    ap.add_argument("--repeats", type=int, default=3, help="alternated rounds; medians")
    ap.add_argument("--quick", action="store_true", help="3 volumes of 160 x 160 x 80: a smoke run")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args()
    if a.quick:
        a.n, a.size = 3, [160, 160, 80]
    import torch
    torch.set_num_threads(1)  # MONAI per item on one thread; parallelism comes from the pool
    res = common.Result("preprocess", a.threads, a)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_volumes(tmp, a.n, a.size, a.spacing)
        manifest = os.path.join(tmp, "m.csv")
        with open(manifest, "w") as f:
            f.write("id,image\n" + "".join(f"ct{i:03d},{p}\n" for i, p in enumerate(paths)))
        case = f"{a.n} CTs {'x'.join(map(str, a.size))} @ {'x'.join(map(str, a.spacing))} mm -> " \
               f"{'x'.join(map(str, TARGET_SIZE))} @ {'x'.join(map(str, TARGET_SPACING))} mm"
        run_monai(paths[:1], 1)  # warm up imports
        startup = biud_startup()
        k = [0]

        def biud(threads):
            k[0] += 1
            return run_biud(manifest, os.path.join(tmp, f"c{k[0]}"), threads)

        for threads in sorted({1, a.threads}):
            runs = common.alternate({"biud": lambda: biud(threads), "peer": lambda: run_monai(paths, threads)},
                                    a.repeats)
            res.add(common.row(f"preprocess, {threads} thread{'s' if threads > 1 else ''}", case, "s", runs["biud"],
                               runs["peer"], "MONAI (LoadImage, Orientation, Spacing, ScaleIntensityRange, "
                               "ResizeWithPadOrCrop)" + (", thread pool" if threads > 1 else ""),
                               biud_process_start_s=startup, threads=threads))
        cache = os.path.join(tmp, f"c{k[0]}")
        npys = write_npy_cache(cache, os.path.join(tmp, "npy"))
        for _ in range(2):  # warm page cache, as in training epochs >= 2
            read_cache(cache)
            read_npy(npys)
        runs = common.alternate({"biud": lambda: read_cache(cache)[0] / a.n, "peer": lambda: read_npy(npys)},
                                max(a.repeats, 5))
        nib = [read_nibabel_resample(paths) / len(paths) for _ in range(a.repeats)]
        res.add(common.row("read one training item", f"{'x'.join(map(str, TARGET_SIZE))} from the page cache", "ms",
                           [v * 1e3 for v in runs["biud"]], [v * 1e3 for v in runs["peer"]],
                           "plain .npy cache (np.load of float32)", biud_side="biud cache via numpy memmap (int16 / quant)",
                           nibabel_resample_ms=common.median(nib) * 1e3,
                           ratio_vs_nibabel_resample=common.median(runs["biud"]) / common.median(nib)))
        print(f"    no cache (nibabel decode + MONAI Spacing): {common.median(nib) * 1e3:.1f} ms per item "
              f"(biud/this {common.median(runs['biud']) / common.median(nib):.2g})")
    res.write(a.json)


if __name__ == "__main__":
    sys.exit(main())
