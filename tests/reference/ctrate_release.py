#!/usr/bin/env python3
"""A small folder laid out exactly like the CT-RATE release, built from real CT files, and the
reference preprocessing of CT-CLIP's data loaders to compare biud's cache with.

  ctrate_release.py make ROOT [EXTRA]
      ROOT/dataset/{train,valid}/<split>_<p>/<split>_<p>_<scan>/<name>.nii.gz: volumes made from
      pydicom's real CT test data (CT_small.dcm: a 128 x 128 chest/abdomen slice, 0.661468 mm,
      5 mm slices, intercept -1024; the CT5N series: 16 x 16 x 5, 0.488281 mm, 2.5 mm), stored as
      the release stores them: raw values (HU - intercept), no scl_slope/scl_inter and — like the
      release — no geometry in the header (qform/sform code 0: pixdim 1 x 1 x 1 mm); one volume
      has a header that claims 1 x 1 x 1 mm with an affine (the disagreement the importer must
      resolve in favour of the metadata). Arrays are [i, j, k] with i along the image rows'
      direction (ImageOrientationPatient's first vector), as the release's fix_metadata.py reads
      them. The CSV tables have the release's names and columns: radiology_text_reports/
      {train,validation}_reports.csv, multi_abnormality_labels/{train,valid}_predicted_labels.csv
      (gzip-compressed here, as a mirror may ship them), metadata/{train,validation}_metadata.csv
      (XYSpacing written as "[x, y]"). One reports row has no volume file.

  ctrate_release.py cat_gz FILE      the inflated text of a gzip file (Python's gzip module)

  ctrate_release.py reference ROOT CACHE SX SY SZ NX NY NZ
      For every item in CACHE/index.json: the CT-CLIP convention, step by step as in
      CT-CLIP's scripts/data.py (CTReportDataset.nii_img_to_tensor): nibabel get_fdata();
      slope * v + intercept from the metadata CSV; spacing (ZSpacing, XYSpacing[0], XYSpacing[0]);
      F.interpolate(trilinear, align_corners=False) to int(n * current / target); clip
      [-1000, 1000]; / 1000; centre crop / pad (value -1) to (NX, NY, NZ) — then compared with the
      cached voxels decoded with numpy (docs/data.md). Prints JSON {id: max |difference|}.
"""
import csv
import gzip
import json
import os
import sys

import numpy as np

LABELS = ["Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
          "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
          "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
          "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
          "Interlobular septal thickening"]
META_COLS = ["VolumeName", "Manufacturer", "SeriesDescription", "PatientSex", "PatientAge", "XYSpacing", "ZSpacing",
             "RescaleIntercept", "RescaleSlope", "RescaleType", "NumberofSlices", "ImagePositionPatient",
             "ImageOrientationPatient", "Rows", "Columns"]


def pydicom_dir():
    import pydicom
    return os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


def ct_small_volume(nslices, pad):
    """Raw stored values [i, j, k] of slices made from CT_small.dcm, in an air frame (raw 24 = -1000 HU)."""
    import pydicom
    ds = pydicom.dcmread(os.path.join(pydicom_dir(), "CT_small.dcm"))
    pix = ds.pixel_array.astype(np.int16)  # [row, col], raw
    n = pix.shape[0] + 2 * pad
    vol = np.full((n, n, nslices), 24, np.int16)
    for k in range(nslices):
        sl = np.roll(pix, 3 * k, axis=0)  # a different real slice content per k
        vol[pad:pad + pix.shape[1], pad:pad + pix.shape[0], k] = sl.T  # [i=col, j=row]
    meta = dict(xy=float(ds.PixelSpacing[0]), z=float(ds.SliceThickness), slope=float(ds.RescaleSlope),
                intercept=float(ds.RescaleIntercept), iop=[float(x) for x in ds.ImageOrientationPatient],
                ipp=[float(x) for x in ds.ImagePositionPatient], rows=n, cols=n, n=nslices)
    return vol, meta


def ct5n_volume(pad):
    import pydicom
    folder = os.path.join(pydicom_dir(), "dicomdirtests", "98892001", "CT5N")
    dss = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    pix = np.stack([d.pixel_array.astype(np.int16).T for d in dss], axis=-1)  # [i=col, j=row, k]
    n = pix.shape[0] + 2 * pad
    vol = np.full((n, n, pix.shape[2]), 24, np.int16)
    vol[pad:pad + pix.shape[0], pad:pad + pix.shape[1], :] = pix
    d = dss[0]
    z = float(dss[1].ImagePositionPatient[2]) - float(dss[0].ImagePositionPatient[2])
    meta = dict(xy=float(d.PixelSpacing[0]), z=z, slope=float(d.RescaleSlope), intercept=float(d.RescaleIntercept),
                iop=[float(x) for x in d.ImageOrientationPatient], ipp=[float(x) for x in d.ImagePositionPatient],
                rows=n, cols=n, n=pix.shape[2])
    return vol, meta


def write_csv(path, header, rows, compress=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if compress:
        f = gzip.open(path + ".gz", "wt", newline="")
    else:
        f = open(path, "w", newline="")
    with f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


FINDINGS = {  # label -> a report sentence (for the larger fixture's extra patients)
    "Arterial wall calcification": "Calcific atheroma plaques are observed in the thoracic aorta.",
    "Pleural effusion": "Pleural effusion is present on the right.",
    "Emphysema": "Centrilobular emphysema is seen in both upper lobes.",
    "Lung nodule": "A 6 mm nodule is seen in the right lower lobe.",
    "Cardiomegaly": "The heart size is increased.",
}


def cmd_make(root, extra="0"):
    """`extra` > 0 adds that many train and half as many valid patients (one volume each, from
    CT_small.dcm with other slice content), with reports and labels that agree."""
    import nibabel as nib
    ds = os.path.join(root, "dataset")
    vols = {}
    extra = int(extra)
    texts = {}
    for e in range(extra + extra // 2):
        split = "train" if e < extra else "valid"
        p = 3 + e if split == "train" else 2 + e - extra
        v, m = ct_small_volume(6, 16)
        v = np.roll(v, 7 * (e + 1), axis=1)
        name = f"{split}_{p}_a_1"
        vols[name] = (v, m, "blank")
        on = [l for i, l in enumerate(FINDINGS) if (e >> i) & 1]
        texts[name] = on
    a, ma = ct_small_volume(6, 16)
    vols["train_1_a_1"] = (a.astype(np.float32), ma, "blank")   # float32 raw values, blank header
    b, mb = ct5n_volume(12)
    vols["train_1_a_2"] = (b, mb, "blank")                      # int16 raw, second reconstruction
    c, mc = ct_small_volume(4, 8)
    vols["valid_1_a_1"] = (c, mc, "affine")                     # header claims 1 x 1 x 1 mm
    for name, (arr, meta, kind) in vols.items():
        split, p, scan, rec = name.split("_")
        folder = os.path.join(ds, split, f"{split}_{p}", f"{split}_{p}_{scan}")
        os.makedirs(folder, exist_ok=True)
        img = nib.Nifti1Image(arr, None if kind == "blank" else np.eye(4))
        if kind == "blank":
            img.header.set_qform(None, code=0)
            img.header.set_sform(None, code=0)
        nib.save(img, os.path.join(folder, name + ".nii.gz"))
    # Metadata: also a row for the volume whose file is missing.
    missing = dict(ma)
    meta_rows = {"train": [], "valid": []}
    for name, meta in [(n, v[1]) for n, v in vols.items()] + [("train_2_a_1", missing)]:
        split = name.split("_")[0]
        meta_rows[split].append([name + ".nii.gz", "PHILIPS", "CHEST", "M", "060Y",
                                 f"[{meta['xy']}, {meta['xy']}]", meta["z"], meta["intercept"], meta["slope"], "HU",
                                 meta["n"], str(meta["ipp"]), str(meta["iop"]), meta["rows"], meta["cols"]])
    write_csv(os.path.join(ds, "metadata", "train_metadata.csv"), META_COLS, meta_rows["train"])
    write_csv(os.path.join(ds, "metadata", "validation_metadata.csv"), META_COLS, meta_rows["valid"])
    rep_cols = ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"]
    f1 = "Trachea and both main bronchi are open. Calcific atheroma plaques are observed in the aorta, \"mild\"."
    extra_rows = lambda split: [[n + ".nii.gz", "Not given.", "Non-contrast.",
                                 " ".join(FINDINGS[l] for l in on) or "No abnormal finding.",
                                 ", ".join(on) + "." if on else "Normal study."]
                                for n, on in texts.items() if n.startswith(split)]
    write_csv(os.path.join(ds, "radiology_text_reports", "train_reports.csv"), rep_cols, [
        ["train_1_a_1.nii.gz", "Cough.", "Non-contrast, 1 mm slices.", f1, "Aortic atherosclerosis."],
        ["train_1_a_2.nii.gz", "Cough.", "Non-contrast, 1 mm slices.", f1, "Aortic atherosclerosis."],
        ["train_2_a_1.nii.gz", "Not given.", "Non-contrast.", "Normal study.", "Not given."],
    ] + extra_rows("train"))
    write_csv(os.path.join(ds, "radiology_text_reports", "validation_reports.csv"), rep_cols, [
        ["valid_1_a_1.nii.gz", "Not given.", "Non-contrast.", "Pleural effusion on the right, 2 cm.",
         "Not given."]] + extra_rows("valid"))
    lab = lambda on: [1 if l in on else 0 for l in LABELS]
    extra_labels = lambda split: [[n + ".nii.gz"] + lab(set(on)) for n, on in texts.items() if n.startswith(split)]
    write_csv(os.path.join(ds, "multi_abnormality_labels", "train_predicted_labels.csv"), ["VolumeName"] + LABELS, [
        ["train_1_a_1.nii.gz"] + lab({"Arterial wall calcification"}),
        ["train_1_a_2.nii.gz"] + lab({"Arterial wall calcification"}),
        ["train_2_a_1.nii.gz"] + lab(set())] + extra_labels("train"), compress=True)
    write_csv(os.path.join(ds, "multi_abnormality_labels", "valid_predicted_labels.csv"), ["VolumeName"] + LABELS, [
        ["valid_1_a_1.nii.gz"] + lab({"Pleural effusion"})] + extra_labels("valid"), compress=True)


def ct_clip_steps(img, spacing, target_spacing, target_shape):
    """The steps of CT-CLIP's nii_img_to_tensor (scripts/data.py) after the rescale, on an [i, j, k]
    HU array with spacing (x, y, z): F.interpolate(trilinear, align_corners=False) to
    int(n * current / target), clip [-1000, 1000], / 1000, centre crop/pad (-1) to target_shape
    (x, y, z). Returns [k, i, j] as CT-CLIP does. Shared with radchest_release.py."""
    import torch
    import torch.nn.functional as F
    current = (spacing[2], spacing[0], spacing[1])
    target = (target_spacing[2], target_spacing[0], target_spacing[1])
    img = img.transpose(2, 0, 1)
    t = torch.tensor(img).unsqueeze(0).unsqueeze(0)
    shape = t.shape[2:]
    new = [int(shape[i] * (current[i] / target[i])) for i in range(3)]
    img = F.interpolate(t, size=new, mode="trilinear", align_corners=False).cpu().numpy()[0][0]
    img = np.transpose(img, (1, 2, 0))
    img = np.clip(img, -1000, 1000)
    img = (img / 1000).astype(np.float32)
    t = torch.tensor(img)
    h, w, d = t.shape
    dh, dw, dd = target_shape
    hs, ws, ds = max((h - dh) // 2, 0), max((w - dw) // 2, 0), max((d - dd) // 2, 0)
    t = t[hs:min(hs + dh, h), ws:min(ws + dw, w), ds:min(ds + dd, d)]
    ph, pw, pd = (dh - t.size(0)) // 2, (dw - t.size(1)) // 2, (dd - t.size(2)) // 2
    t = F.pad(t, (pd, dd - t.size(2) - pd, pw, dw - t.size(1) - pw, ph, dh - t.size(0) - ph), value=-1)
    return t.permute(2, 0, 1).numpy()  # [k, i, j]


def ct_clip_preprocess(path, row, target_spacing, target_shape):
    """CT-CLIP's nii_img_to_tensor: nibabel get_fdata(), the metadata row's slope/intercept and
    spacing (XYSpacing parsed as CT-CLIP does: the first number for x and y), then ct_clip_steps."""
    import nibabel as nib
    img = nib.load(path).get_fdata()
    slope = float(row["RescaleSlope"])
    intercept = float(row["RescaleIntercept"])
    xy = float(row["XYSpacing"][1:][:-2].split(",")[0])
    z = float(row["ZSpacing"])
    return ct_clip_steps(slope * img + intercept, (xy, xy, z), target_spacing, target_shape)


def read_meta(root):
    rows = {}
    for f in ("train_metadata.csv", "validation_metadata.csv"):
        p = os.path.join(root, "dataset", "metadata", f)
        with open(p, newline="") as fh:
            for r in csv.DictReader(fh):
                rows[r["VolumeName"].replace(".nii.gz", "")] = r
    return rows


def cmd_reference(root, cache, sx, sy, sz, nx, ny, nz):
    meta = read_meta(root)
    idx = json.load(open(os.path.join(cache, "index.json")))
    out = {}
    for it in idx["items"]:
        name = it["id"]
        split, p, scan, rec = name.split("_")
        path = os.path.join(root, "dataset", split, f"{split}_{p}", f"{split}_{p}_{scan}", name + ".nii.gz")
        want = ct_clip_preprocess(path, meta[name], (float(sx), float(sy), float(sz)), (int(nx), int(ny), int(nz)))
        raw = np.memmap(os.path.join(cache, it["shard"]), np.uint8, "r")[it["offset"]:it["offset"] + it["bytes"]]
        got = raw.view(np.int16).astype(np.float32).reshape(it["shape"][::-1]) / it["quant"]  # [z, y, x]
        # biud's cache is [k, j, i] (x fastest, LPS; identity orientation here); CT-CLIP's is [k, i, j].
        want = want.transpose(0, 2, 1)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        out[name] = float(np.abs(got - want).max())
    print(json.dumps(out))


def cmd_cat_gz(path):
    sys.stdout.write(gzip.open(path, "rb").read().decode("utf-8"))


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"make": cmd_make, "reference": cmd_reference, "cat_gz": cmd_cat_gz}[cmd](*sys.argv[2:])
