"""Render the pictures of docs/synth.md from a biud-synth data set.

usage: synth_figures.py DATASET_DIR OUT_DIR
Writes synth_ct_normal.png (axial slices + coronal of a healthy study), synth_ct_findings.png
(one axial slice through each finding, from ct/meta.jsonl; a coronal one for an atelectasis
with a raised hemidiaphragm; the consolidation shown has air bronchograms) and synth_cxr.png (X-rays).
Display convention: patient right on the image left; anterior up (axial), head up (coronal).
"""
import csv
import json
import os
import sys

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw

FINDINGS = ["lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax", "consolidation", "emphysema",
            "cardiomegaly", "pericardial_effusion", "atelectasis", "arterial_calcification"]
# Window per finding: lung findings in a lung window, the others in a soft-tissue window.
LUNG = (-1050.0, -650.0)
SOFT = (-250.0, 250.0)
WIDE = (-1000.0, 400.0)
WINDOW = {"lung_nodule": WIDE, "lung_mass": WIDE, "pleural_effusion": SOFT, "pneumothorax": LUNG,
          "consolidation": WIDE, "emphysema": LUNG, "cardiomegaly": WIDE, "pericardial_effusion": SOFT,
          "atelectasis": WIDE, "arterial_calcification": (-300.0, 700.0)}


def win(a, lo_hi):
    lo, hi = lo_hi
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def load(d, row):
    img = nib.load(os.path.join(d, "ct", row["image"]))
    a = np.asarray(img.dataobj, dtype=np.float32)
    aff = img.affine
    # voxel (i, j, k) -> LPS mm: x = -(aff00 i + aff03), y = -(aff11 j + aff13), z = aff22 k + aff23
    return a, aff


def index_of(aff, p):
    i = (-p[0] - aff[0, 3]) / aff[0, 0]
    j = (-p[1] - aff[1, 3]) / aff[1, 1]
    k = (p[2] - aff[2, 3]) / aff[2, 2]
    return int(round(i)), int(round(j)), int(round(k))


def axial(a, k):
    return a[:, :, int(np.clip(k, 0, a.shape[2] - 1))].T  # rows = j (anterior up), cols = i (patient right left)


def coronal(a, j, aff):
    sl = a[:, int(np.clip(j, 0, a.shape[1] - 1)), :].T[::-1, :]  # rows = superior first
    h = int(round(a.shape[2] * aff[2, 2] / abs(aff[0, 0])))
    return np.array(Image.fromarray(sl).resize((a.shape[0], h), Image.BILINEAR))


def label(img, text):
    im = Image.fromarray(img).convert("L")
    dr = ImageDraw.Draw(im)
    dr.rectangle([0, 0, 6 * len(text) + 4, 11], fill=0)
    dr.text((2, 0), text, fill=255)
    return np.array(im)


def main():
    d, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(d, "ct", "manifest.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] != "external"]
    with open(os.path.join(d, "ct", "meta.jsonl")) as f:
        metas = {m["id"]: m for m in map(json.loads, f)}

    healthy = next(r for r in rows if all(r[k] == "0" for k in FINDINGS))
    a, aff = load(d, healthy)
    an = metas[healthy["id"]]["anatomy"]
    zb, za = an["lung_base_z"], an["lung_apex_z"]
    tiles = []
    for frac in (0.2, 0.5, 0.8):
        k = index_of(aff, (0, 0, zb + frac * (za - zb)))[2]
        tiles.append(win(axial(a, k), WIDE))
    cor = coronal(a, index_of(aff, (0, an["heart_center"][1] + 10, 0))[1], aff)
    pad = np.zeros((max(t.shape[0] for t in tiles + [cor]), 1), np.uint8)
    hmax = max(t.shape[0] for t in tiles + [cor])
    tiles = [np.pad(t, ((0, hmax - t.shape[0]), (0, 0))) for t in tiles + [win(cor, WIDE)]]
    Image.fromarray(np.concatenate([x for t in tiles for x in (t, pad)], axis=1)).save(os.path.join(out, "synth_ct_normal.png"), optimize=True)

    # One example per finding: prefer studies with few findings.
    grid = []
    for k in FINDINGS:
        def shows_sign(r):  # consolidation with air bronchograms, atelectasis with a raised dome
            inst = next(f for f in metas[r["id"]]["findings"] if f["finding"] == k)
            return {"consolidation": "air_bronchograms", "atelectasis": "dome_raise_mm"}.get(k, "id") in inst or \
                k not in ("consolidation", "atelectasis")
        cands = sorted((not shows_sign(r), sum(int(r[f]) for f in FINDINGS), r["id"], r) for r in rows if r[k] == "1")
        if not cands:
            continue
        r = cands[0][3]
        a, aff = load(d, r)
        inst = next(f for f in metas[r["id"]]["findings"] if f["finding"] == k)
        i, j, kk = index_of(aff, inst["center_mm"])
        if k == "atelectasis" and "dome_raise_mm" in inst:
            # Coronal through the atelectasis: the dense band and the raised hemidiaphragm.
            sl = coronal(a, j, aff)
            h0, w0 = sl.shape
            sl = sl[h0 // 8: h0 - h0 // 8, w0 // 16: w0 - w0 // 16]
            t = np.array(Image.fromarray(win(sl, WINDOW[k])).resize((sl.shape[1] * 2, sl.shape[0] * 2), Image.BILINEAR))
            grid.append(label(t, k + " (coronal)"))
            continue
        if k == "pleural_effusion":
            kk = index_of(aff, (0, 0, metas[r["id"]]["anatomy"]["lung_base_z"] + 0.1 * (za - zb)))[2]
        if k == "arterial_calcification":
            # Maximum intensity over a 5-slice slab shows several plaques.
            sl = a[:, :, max(0, kk - 2):kk + 3].max(axis=2).T
        else:
            sl = axial(a, kk)
        # Crop to the chest and enlarge 2x.
        h0, w0 = sl.shape
        sl = sl[h0 // 8: h0 - h0 // 8, w0 // 16: w0 - w0 // 16]
        t = np.array(Image.fromarray(win(sl, WINDOW[k])).resize((sl.shape[1] * 2, sl.shape[0] * 2), Image.BILINEAR))
        grid.append(label(t, k))
    rows_img = [np.concatenate(grid[c:c + 5], axis=1) for c in range(0, len(grid), 5)]
    w = max(x.shape[1] for x in rows_img)
    rows_img = [np.pad(x, ((0, 0), (0, w - x.shape[1]))) for x in rows_img]
    Image.fromarray(np.concatenate(rows_img, axis=0)).save(os.path.join(out, "synth_ct_findings.png"), optimize=True)

    with open(os.path.join(d, "cxr", "manifest.csv"), newline="") as f:
        xr = list(csv.DictReader(f))[:4]
    ims = []
    for r in xr:
        im = Image.open(os.path.join(d, "cxr", r["image"])).convert("L").resize((192, 192), Image.BILINEAR)
        names = [k for k in FINDINGS if r[k] == "1"]
        ims.append(label(np.array(im), ", ".join(n.replace("_", " ") for n in names)[:30] or "normal"))
    Image.fromarray(np.concatenate(ims, axis=1)).save(os.path.join(out, "synth_cxr.png"), optimize=True)


if __name__ == "__main__":
    main()
