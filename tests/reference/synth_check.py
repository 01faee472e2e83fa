"""Independent check of a biud-synth data set (run by tests/synth/SynthTest.cpp).

Reads the files only (csv module, nibabel, Pillow) and verifies that
  1. the manifests parse as RFC 4180 CSV with the documented columns, paths relative to the
     manifest, labels equal to labels.csv;
  2. the images carry the labels: for six findings a simple, non-learned regional HU statistic
     (regions from the anatomical landmarks in ct/meta.jsonl, never from finding geometry)
     separates positives from negatives with scikit-learn AUROC > threshold; three more
     statistics are reported but not asserted (docs/synth.md has their AUROC per seed): the largest
     opacity inside a lung envelope segmented from the image (a lung mass or consolidation, 0.82-0.86
     on seeds 3-5), the dense (+50..100 HU) volume in the posterior lung bases (atelectasis,
     0.75-0.82) and the larger hemidiaphragm elevation of the two sides against the set's median
     (atelectasis volume loss, 0.61-0.70);
  3. the reports carry the labels: a keyword + negation rule set written here, independently of
     the generator's templates, recovers the labels with F1 > threshold (CT and X-ray).
Prints one JSON object; exits 1 when a check fails.

usage: synth_check.py DATASET_DIR [--min-auroc 0.9] [--min-f1 0.95]
"""
import argparse
import csv
import json
import os
import re
import sys

import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull
from sklearn.metrics import f1_score, roc_auc_score

FINDINGS = ["lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax", "consolidation", "emphysema",
            "cardiomegaly", "pericardial_effusion", "atelectasis", "arterial_calcification"]

# Keyword patterns per finding (a radiologist's vocabulary, not the generator's template list).
KEYWORDS = {
    "lung_nodule": r"\bnodul(?:e|es|ar)\b",
    "lung_mass": r"\bmass(?:es)?\b",
    "pleural_effusion": r"\bpleural (?:effusions?|fluid)\b",
    "pneumothorax": r"\bpneumothorax\b",
    "consolidation": r"\bconsolidat\w*|\bairspace disease\b",
    "emphysema": r"\bemphysema\w*",
    "cardiomegaly": r"\bcardiomegaly\b|\benlarged heart\b|\bcardiac enlargement\b|\bheart is (?:\w+ )?enlarged\b|"
                    r"\bcardiac silhouette is (?:\w+ )?enlarged\b|\benlarged cardiac silhouette\b",
    "pericardial_effusion": r"\bpericardial (?:effusion|fluid)\b",
    "atelectasis": r"\batelecta\w*",
    "arterial_calcification": r"\bcalcifi\w*|\batherosclero\w*|\bcalcified\b",
}
# Findings whose regional statistic must pass --min-auroc.
ASSERTED = ["pleural_effusion", "pneumothorax", "emphysema", "cardiomegaly", "pericardial_effusion",
            "arterial_calcification"]
# Statistics whose positives are studies with any of several findings ("a|b": a or b), or named
# otherwise than their finding. Reported only, none is reliably above 0.9 (docs/synth.md).
UNIONS = {"lung_mass|consolidation": ("lung_mass", "consolidation"),
          "atelectasis (hemidiaphragm elevation)": ("atelectasis",)}
PRE_NEG = re.compile(r"\b(?:no|without|negative for|free of|absence of|not)\b")
POST_NEG = re.compile(r"^[^.;]*?\b(?:is|are) (?:not seen|not identified|absent)\b")


def mentions(text, finding):
    """1 when `finding` is mentioned positively (including hedged) in any sentence."""
    for sent in re.split(r"(?<=[.;:])\s+", text.lower()):
        for m in re.finditer(KEYWORDS[finding], sent):
            before = sent[:m.end()]
            if PRE_NEG.search(before):
                continue
            if POST_NEG.search(sent[m.end():]):
                continue
            return 1
    return 0


def read_manifest(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    expected = ["id", "image", "patient", "split", "findings", "impression"] + FINDINGS
    if header != expected:
        raise SystemExit(f"{path}: columns {header} != {expected}")
    return rows


def lps_axes(img):
    a = img.affine
    if np.abs(a[:3, :3] - np.diag(np.diag(a[:3, :3]))).max() > 1e-4:
        raise SystemExit("expected an axis-aligned affine")
    n = img.shape
    # RAS world -> LPS: negate x and y.
    xs = -(a[0, 0] * np.arange(n[0]) + a[0, 3])
    ys = -(a[1, 1] * np.arange(n[1]) + a[1, 3])
    zs = a[2, 2] * np.arange(n[2]) + a[2, 3]
    return xs, ys, zs


def hull_fill(mask2d):
    """The filled convex hull of the true pixels of a 2D mask (the pixels themselves if degenerate)."""
    pts = np.argwhere(mask2d)
    out = np.zeros_like(mask2d)
    out[tuple(pts.T)] = True
    if len(pts) < 4:
        return out
    try:
        hull = ConvexHull(pts)
    except Exception:  # collinear pixels: QhullError
        return out
    lo, hi = pts.min(0), pts.max(0) + 1
    gi, gj = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]]
    q = np.stack([gi.ravel(), gj.ravel()], 1)
    inside = np.all(q @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-6, axis=1)
    out[lo[0]:hi[0], lo[1]:hi[1]] |= inside.reshape(gi.shape)
    return out


def lung_envelope(vol, spacing, X, Y, cx, cy, ca, cb):
    """Lungs segmented from the image the way a simple lung tool does, dense lesions included.

    Lung air: HU < -500 (after a 2 mm Gaussian smoothing), not connected to the volume border
    (outside air), components of at least 10 % of the largest (drops gastric and bowel gas). The
    envelope is, per axial slice and per side of the body centre, the convex hull of the lung air
    (so opacities inside the lung or against the chest wall and mediastinum are inside), within the
    landmark cavity ellipse shrunk by one voxel, and not below the lowest lung-air voxel of its
    (x, y) column (the heart and the liver lie under the lungs).
    """
    s = ndimage.gaussian_filter(vol, [2.0 / v for v in spacing])
    air = s < -500
    lab, n = ndimage.label(air)
    border = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel()]))
    inside = air & ~np.isin(lab, border)
    lab, n = ndimage.label(inside)
    if n == 0:
        return np.zeros_like(air), np.zeros_like(air)
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.concatenate([[False], sizes >= 0.1 * sizes.max()])
    lung = keep[lab]
    seeds = lung & (np.abs(X - cx) > 0.08 * ca)  # without the trachea in the midline
    env = np.zeros_like(lung)
    for k in range(lung.shape[2]):
        for side in (X[:, :, k] < cx, X[:, :, k] >= cx):
            m = seeds[:, :, k] & side
            if m.sum() >= 4:
                env[:, :, k] |= hull_fill(m) & side
    has = lung.any(axis=2)
    lowest = np.where(has, lung.argmax(axis=2), lung.shape[2])
    env &= np.arange(lung.shape[2])[None, None, :] >= lowest[:, :, None]
    env &= ((X - cx) / (ca - spacing[0])) ** 2 + ((Y - cy) / (cb - spacing[1])) ** 2 <= 1.0
    return env, lung


def image_stats(vol, img, meta):
    an = meta["anatomy"]
    cx, cy = an["body_center"]
    ca, cb = an["cavity_half_axes"]
    zb, za = an["lung_base_z"], an["lung_apex_z"]
    h = za - zb
    hc = an["heart_center"]
    xs, ys, zs = lps_axes(img)
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    cav = ((X - cx) / ca) ** 2 + ((Y - cy) / cb) ** 2 <= 1.0
    sm = ndimage.uniform_filter(vol, size=3, mode="nearest")
    g = ndimage.gaussian_filter(vol, sigma=1.0, mode="nearest")
    out = {}
    # Pleural effusion: fluid-range voxels in the posterior (dependent) lung bases, minus the same
    # measure anteriorly (partial volume at the domes is there in both).
    fluid = (g > -10) & (g < 22)
    base = cav & (Z > zb) & (Z < zb + 0.35 * h) & (np.abs(X - cx) > 0.2 * ca)
    post, ant = base & (Y > cy + 0.3 * cb), base & (Y < cy - 0.3 * cb)
    out["pleural_effusion"] = float(fluid[post].mean() - fluid[ant].mean()) if post.any() and ant.any() else 0.0
    # Pneumothorax: air-dense voxels in the anterior upper chest.
    r = cav & (Y < cy) & (Z > zb + 0.2 * h) & (Z < za)
    out["pneumothorax"] = float((sm[r] < -975).mean()) if r.any() else 0.0
    # Emphysema: upper-lung parenchyma darker than the lung bases of the same patient.
    lung = cav & (sm < -650)
    up, lo = lung & (Z > zb + 0.6 * h), lung & (Z > zb) & (Z < zb + 0.25 * h)
    out["emphysema"] = float(np.median(sm[lo]) - np.median(sm[up])) if up.any() and lo.any() else 0.0
    # Heart box: cardiomegaly = myocardium-range volume; pericardial effusion = fluid-range volume.
    box = cav & (np.abs(X - cx) < ca) & (Y < cy + 0.3 * cb) & (np.abs(Z - hc[2]) < 0.2 * h)
    out["cardiomegaly"] = float(((g[box] > 25) & (g[box] < 100)).mean()) if box.any() else 0.0
    out["pericardial_effusion"] = float(((g[box] > -5) & (g[box] < 25)).mean()) if box.any() else 0.0
    # Arterial calcification: calcium-dense voxels in the cavity away from spine and sternum.
    spine = ((X - cx) / (0.22 * ca)) ** 2 + ((Y - (cy + 0.74 * cb)) / (0.2 * ca)) ** 2 <= 1.0
    r = (np.abs(X - cx) < 0.55 * ca) & (Y > cy - 0.8 * cb) & (Y < cy + 0.75 * cb) & ~spine & (Z > zb) & (Z < zb + 0.85 * h)
    out["arterial_calcification"] = float((vol[r] > 300).sum())
    # Lung mass or consolidation: the largest soft-tissue opacity inside the lung envelope (HU -100..150
    # after a 2 mm smoothing, opened in-plane with a ~9 mm square to drop vessels and partial volume
    # at the lung border), in mm^3.
    sp = [float(v) for v in img.header.get_zooms()[:3]]
    env, lung = lung_envelope(vol, sp, X[:, :, :], Y, cx, cy, ca, cb)
    g2 = ndimage.gaussian_filter(vol, [2.0 / v for v in sp])
    dense = (g2 > -100) & (g2 < 150) & env
    rad = [max(1, int(round(3.5 / v))) for v in sp[:2]]
    dense = ndimage.binary_opening(dense, structure=np.ones((2 * rad[0] + 1, 2 * rad[1] + 1, 1), bool))
    lab, n = ndimage.label(dense)
    out["lung_mass|consolidation"] = float(np.bincount(lab.ravel())[1:].max() * np.prod(sp)) if n else 0.0
    # Atelectasis, dense band: voxels of 50..100 HU after a 3 mm smoothing (collapsed lung is
    # painted at +60, denser than muscle, heart and fluid) in the posterior lung bases, in mm^3.
    g3 = ndimage.gaussian_filter(vol, [3.0 / v for v in sp])
    reg = cav & (Y > cy) & (Z > zb - 0.1 * h) & (Z < zb + 0.35 * h) & (np.abs(X - cx) > 0.25 * ca)
    out["atelectasis"] = float(((g3 > 50) & (g3 < 100) & reg).sum() * np.prod(sp))
    # Atelectasis, volume loss: per side, the lower quartile of the lowest lung-air height over the
    # columns 0.25-0.6 cavity half-widths from the midline and -0.45..+0.3 half-depths from the body
    # centre (under the dome, in front of dependent fluid), as a fraction of the lung height above
    # the lung base. main() subtracts each side's median over the set (the normal dome height)
    # and keeps the larger elevation of the two sides.
    has = lung.any(axis=2)
    lowest = np.where(has, zs[lung.argmax(axis=2)], np.nan)
    X2, Y2 = X[:, :, 0], Y[:, :, 0]
    for sg, name in ((-1, "right"), (1, "left")):
        cols = ((sg * (X2 - cx)) > 0.25 * ca) & ((sg * (X2 - cx)) < 0.6 * ca) & (Y2 > cy - 0.45 * cb) & \
            (Y2 < cy + 0.3 * cb) & has
        out["_dome_" + name] = float((np.percentile(lowest[cols], 25) - zb) / h) if cols.any() else 0.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--min-auroc", type=float, default=0.9)
    ap.add_argument("--min-f1", type=float, default=0.95)
    args = ap.parse_args()
    d = args.dir
    res = {"auroc": {}, "f1": {}, "failures": []}

    ct = read_manifest(os.path.join(d, "ct", "manifest.csv"))
    cxr = read_manifest(os.path.join(d, "cxr", "manifest.csv"))
    with open(os.path.join(d, "labels.csv"), newline="") as f:
        lab = {r["id"]: r for r in csv.DictReader(f)}
    for rows, sub in ((ct, "ct"), (cxr, "cxr")):
        for r in rows:
            p = os.path.join(d, sub, r["image"])
            if not os.path.isfile(p):
                res["failures"].append(f"{sub}: image {r['image']} of {r['id']} missing")
            for k in FINDINGS:
                if lab[r["id"]][k] != r[k]:
                    res["failures"].append(f"{r['id']}: {k} differs between manifest and labels.csv")
    res["n_ct"], res["n_cxr"] = len(ct), len(cxr)

    # Images carry the labels (CT, train/val/test; the external set is shifted on purpose).
    with open(os.path.join(d, "ct", "meta.jsonl")) as f:
        metas = {m["id"]: m for m in map(json.loads, f)}
    stats, labels = [], []
    for r in ct:
        if r["split"] == "external":
            continue
        img = nib.load(os.path.join(d, "ct", r["image"]))
        vol = np.asarray(img.dataobj, dtype=np.float32)
        meta = metas[r["id"]]
        stats.append(image_stats(vol, img, meta))
        labels.append({k: int(r[k]) for k in FINDINGS})
    med = {n: float(np.median([st["_dome_" + n] for st in stats])) for n in ("right", "left")}
    for st in stats:
        st["atelectasis (hemidiaphragm elevation)"] = max(st["_dome_right"] - med["right"],
                                                          st["_dome_left"] - med["left"])
    res["auroc_parts"] = {}
    for k in [k for k in stats[0] if not k.startswith("_")]:
        y = [max(l[p] for p in UNIONS.get(k, (k,))) for l in labels]
        s = [st[k] for st in stats]
        if 0 < sum(y) < len(y):
            auc = roc_auc_score(y, s)
            res["auroc"][k] = round(float(auc), 4)
            res["positives"] = res.get("positives", {})
            res["positives"][k] = f"{sum(y)}/{len(y)}"
            if k in ASSERTED and auc <= args.min_auroc:
                res["failures"].append(f"image statistic for {k}: AUROC {auc:.3f} <= {args.min_auroc}")
        else:
            res["failures"].append(f"{k}: need positives and negatives, got {sum(y)}/{len(y)}")
        # Informational: each part alone (all studies), and against studies without the other parts.
        for p in (UNIONS.get(k, ()) if len(UNIONS.get(k, ())) > 1 else ()):
            yp = [l[p] for l in labels]
            rest = [i for i, l in enumerate(labels) if not any(l[o] for o in UNIONS[k] if o != p)]
            if 0 < sum(yp) < len(yp):
                res["auroc_parts"][f"{k} vs {p}"] = round(float(roc_auc_score(yp, s)), 4)
            yr = [yp[i] for i in rest]
            if 0 < sum(yr) < len(yr):
                res["auroc_parts"][f"{k} vs {p}, without the others"] = round(
                    float(roc_auc_score(yr, [s[i] for i in rest])), 4)

    # X-rays are 8-bit grey PNGs of the configured size.
    sizes = {Image.open(os.path.join(d, "cxr", r["image"])).size for r in cxr[:20]}
    res["cxr_sizes"] = sorted(sizes)

    # Reports carry the labels.
    for rows, name in ((ct, "ct"), (cxr, "cxr")):
        for k in FINDINGS:
            y = [int(r[k]) for r in rows]
            p = [mentions(r["findings"] + " " + r["impression"], k) for r in rows]
            if sum(y) == 0:
                continue
            f1 = f1_score(y, p)
            res["f1"][f"{name}/{k}"] = round(float(f1), 4)
            if f1 <= args.min_f1:
                res["failures"].append(f"report keywords for {name}/{k}: F1 {f1:.3f} <= {args.min_f1}")
    print(json.dumps(res, indent=1))
    sys.exit(1 if res["failures"] else 0)


if __name__ == "__main__":
    main()
