#!/usr/bin/env python3
"""Benchmark: biud-preprocess vs the equivalent MONAI pipeline, and cache reads vs decoding.

Makes N synthetic CT volumes (.nii.gz, int16 HU, RAS affine as scanners export them), then
  1. preprocessing, same volumes, same parameters:
       build/bin/biud-preprocess (threads = 1 and all cores)
       MONAI: LoadImage -> Orientation(LPS) -> Spacing(bilinear) -> ScaleIntensityRange(clip)
              -> ResizeWithPadOrCrop (one process, and a thread pool of all cores)
  2. reading a training item: the biud cache (numpy memmap of the int16 record, / quant)
       vs nibabel .nii.gz decode + MONAI Spacing resample (what a loader without a cache does).
Not a test: prints a table and writes JSON (--json).

  bench_preprocess.py [--n 8] [--size 320 320 160] [--spacing 0.8 0.8 2.0] [--json out.json]
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def biud_startup():
    """Process start of biud-preprocess (it links LibTorch today): the best of 3 `--version` runs."""
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
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)  # MONAI per item on one thread; parallelism comes from the pool
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_volumes(tmp, a.n, a.size, a.spacing)
        manifest = os.path.join(tmp, "m.csv")
        with open(manifest, "w") as f:
            f.write("id,image\n" + "".join(f"ct{i:03d},{p}\n" for i, p in enumerate(paths)))
        res = {"volumes": a.n, "raw_size": a.size, "raw_spacing": a.spacing, "target_spacing": TARGET_SPACING,
               "target_size": TARGET_SIZE, "threads": a.threads}
        run_monai(paths[:1], 1)  # warm up imports
        res["biud_startup_s"] = biud_startup()
        res["biud_1t_s"] = run_biud(manifest, os.path.join(tmp, "c1"), 1)
        res["monai_1t_s"] = run_monai(paths, 1)
        res["biud_nt_s"] = run_biud(manifest, os.path.join(tmp, "cn"), a.threads)
        res["monai_nt_s"] = run_monai(paths, a.threads)
        cache_s, n = read_cache(os.path.join(tmp, "cn"))
        read_cache(os.path.join(tmp, "cn"))
        cache_s, n = read_cache(os.path.join(tmp, "cn"))  # warm page cache, as in training epochs >= 2
        res["cache_read_s_per_item"] = cache_s / n
        res["nibabel_resample_s_per_item"] = read_nibabel_resample(paths) / len(paths)
    res["speedup_preprocess_1t"] = res["monai_1t_s"] / res["biud_1t_s"]
    res["speedup_preprocess_nt"] = res["monai_nt_s"] / res["biud_nt_s"]
    st = res["biud_startup_s"]
    res["speedup_preprocess_1t_excl_startup"] = res["monai_1t_s"] / max(1e-9, res["biud_1t_s"] - st)
    res["speedup_preprocess_nt_excl_startup"] = res["monai_nt_s"] / max(1e-9, res["biud_nt_s"] - st)
    res["speedup_read"] = res["nibabel_resample_s_per_item"] / res["cache_read_s_per_item"]
    print(f"{a.n} volumes {a.size} @ {a.spacing} mm -> {TARGET_SIZE} @ {TARGET_SPACING} mm")
    print(f"preprocess, 1 thread : biud {res['biud_1t_s']:.2f} s   MONAI {res['monai_1t_s']:.2f} s   "
          f"x{res['speedup_preprocess_1t']:.1f}")
    print(f"preprocess, {a.threads} threads: biud {res['biud_nt_s']:.2f} s   MONAI {res['monai_nt_s']:.2f} s   "
          f"x{res['speedup_preprocess_nt']:.1f}")
    print(f"  (biud process start {st:.2f} s; without it x{res['speedup_preprocess_1t_excl_startup']:.1f} / "
          f"x{res['speedup_preprocess_nt_excl_startup']:.1f})")
    print(f"read one item: cache {res['cache_read_s_per_item'] * 1e3:.2f} ms   nibabel+resample "
          f"{res['nibabel_resample_s_per_item'] * 1e3:.1f} ms   x{res['speedup_read']:.0f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
