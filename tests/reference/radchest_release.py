#!/usr/bin/env python3
"""A small folder laid out like the RAD-ChestCT release (Zenodo record 6406114), built from real CT
files, and a numpy/torch reference to compare biud's reading and cache with.

  radchest_release.py make ROOT
      ROOT/<NoteAcc_DEID>.npz written the way the release's preprocessing writes them
      (rachellea/ct-volume-preprocessing, preprocess_volumes.py): slices stacked as
      [column, row, slice] in HU (slope * stored + intercept), slices sorted by DESCENDING position
      along the slice normal (dicom_numpy/combine_slices.py, sorted(..., reverse=True)), resampled to
      0.8 x 0.8 x 0.8 mm, clipped to [-1000, 1000], transposed [2, 1, 0] to [slice, row, column],
      rounded to int16 and saved with np.savez_compressed(path, ct=volume). The real CT data is
      pydicom's test data: CT_small.dcm (128 x 128, 0.661468 mm, slices made 5 mm apart) and the
      CT5N series (16 x 16 x 5, 0.488281 mm, 2.5 mm). The release resamples with SimpleITK's
      B-spline; here torch's trilinear interpolation is used (the values only need to be real CT
      values in the release's layout; the comparisons below read the files written here).
      Label tables img{train,valid,test}_Abnormality_and_Location_Labels.csv: `NoteAcc_DEID` and
      one column per `<abnormality>*<location>`; the abnormality names are the 83 of the release's
      code (rachellea/ct-net-models, load_dataset/fakedata/.../imgtrain_BinaryLabels.csv); the
      location names here are illustrative (the real 52 were not verifiable from public code).
      trn00002 has a label row but no volume file.

  radchest_release.py dump NPZ OUT     np.load(NPZ)[key] ('ct', else the only array) as float32,
      C order, axes as stored -> OUT.raw, shape and dtype -> OUT.json
  radchest_release.py extra DIR        .npz variants: stored (np.savez, two arrays), Fortran order
      float32, big-endian int16, and a truncated copy
  radchest_release.py reference ROOT CACHE SX SY SZ NX NY NZ
      For every item in CACHE/index.json: CT-CLIP's steps (scripts/data.py nii_img_to_tensor, as in
      ctrate_release.py) applied to np.load(...)['ct'] read as [i, j, k] = ct[k, j, i] with spacing
      0.8 mm and no rescale: F.interpolate(trilinear, align_corners=False), clip [-1000, 1000],
      / 1000, centre crop / pad (-1); compared with the cached voxels. Prints {id: max |diff|}.
"""
import csv
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctrate_release import ct_clip_steps  # noqa: E402  (the one statement of CT-CLIP's steps)

ABNORMALITIES = [
    "bandlike_or_linear", "bronchial_wall_thickening", "groundglass", "honeycombing", "reticulation", "tree_in_bud",
    "airspace_disease", "air_trapping", "aspiration", "atelectasis", "bronchiectasis", "bronchiolectasis",
    "bronchiolitis", "bronchitis", "emphysema", "hemothorax", "interstitial_lung_disease", "lung_resection",
    "mucous_plugging", "pleural_effusion", "pleural_thickening", "pneumonia", "pneumonitis", "pneumothorax",
    "pulmonary_edema", "septal_thickening", "tuberculosis", "cabg", "cardiomegaly", "coronary_artery_disease",
    "heart_failure", "heart_valve_replacement", "pacemaker_or_defib", "pericardial_effusion",
    "pericardial_thickening", "sternotomy", "arthritis", "atherosclerosis", "aneurysm", "breast_implant",
    "breast_surgery", "calcification", "cancer", "catheter_or_port", "cavitation", "clip", "congestion",
    "consolidation", "cyst", "debris", "deformity", "density", "dilation_or_ectasia", "distention", "fibrosis",
    "fracture", "granuloma", "hardware", "hernia", "infection", "infiltrate", "inflammation", "lesion", "lucency",
    "lymphadenopathy", "mass", "nodule", "nodulegr1cm", "opacity", "plaque", "postsurgical", "scarring",
    "scattered_calc", "scattered_nod", "secretion", "soft_tissue", "staple", "stent", "suture", "transplant",
    "chest_tube", "tracheal_tube", "gi_tube"]
TWO_SIDES = {"nodule", "opacity", "atelectasis", "pleural_effusion", "groundglass", "emphysema"}


def columns():
    cols = []
    for a in ABNORMALITIES:
        locs = ["right_lung", "left_lung"] if a in TWO_SIDES else ["other_location"]
        cols += [f"{a}*{l}" for l in locs]
    return cols


# Hand-written labels: NoteAcc_DEID -> {column: value}; every other column 0. "" = empty cell.
LABELS = {
    "train": {"trn00001": {"nodule*left_lung": 1, "atherosclerosis*other_location": 1, "hernia*other_location": 1,
                           "air_trapping*other_location": 1},
              "trn00002": {"cardiomegaly*other_location": 1}},
    "valid": {"val00001": {"pleural_effusion*right_lung": 1, "catheter_or_port*other_location": 1}},
    "test": {"tst00001": {"groundglass*right_lung": 1, "emphysema*left_lung": ""}},
}


def pydicom_dir():
    import pydicom
    return os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


def ct_small_slices(n):
    """n datasets from CT_small.dcm with different content and positions 5 mm apart."""
    import pydicom
    out = []
    for k in range(n):
        ds = pydicom.dcmread(os.path.join(pydicom_dir(), "CT_small.dcm"))
        ds.PixelData = np.roll(ds.pixel_array, 3 * k, axis=0).astype(ds.pixel_array.dtype).tobytes()
        ipp = [float(x) for x in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], ipp[2] + 5.0 * k]
        out.append(ds)
    return out, 5.0


def ct5n_slices():
    import pydicom
    folder = os.path.join(pydicom_dir(), "dicomdirtests", "98892001", "CT5N")
    dss = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    z = sorted(float(d.ImagePositionPatient[2]) for d in dss)
    return dss, z[1] - z[0]


def release_volume(dss, zspacing, pad):
    """The release's preprocessing, step by step (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    iop = [float(x) for x in dss[0].ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    pos = [float(np.dot(normal, [float(x) for x in d.ImagePositionPatient])) for d in dss]
    order = sorted(zip(pos, range(len(dss))), reverse=True)  # descending position along the normal
    rows, cols = dss[0].Rows, dss[0].Columns
    vol = np.full((cols + 2 * pad, rows + 2 * pad, len(dss)), -1000.0, np.float32)  # an air frame
    for k, (_, idx) in enumerate(order):
        d = dss[idx]
        hu = d.pixel_array.T.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        vol[pad:pad + cols, pad:pad + rows, k] = hu
    xy = float(dss[0].PixelSpacing[0])
    spacing = (xy, xy, zspacing)  # along [column, row, slice]
    size = [int(np.round(vol.shape[d] * spacing[d] / 0.8)) for d in range(3)]
    t = torch.tensor(vol)[None, None]
    vol = F.interpolate(t, size=size, mode="trilinear", align_corners=False)[0, 0].numpy()
    vol = np.clip(vol, -1000, 1000)
    vol = np.transpose(vol, axes=[2, 1, 0])  # [slice, row, column]
    return np.rint(vol).astype(np.int16)


def cmd_make(root):
    os.makedirs(root, exist_ok=True)
    vols = {"trn00001": release_volume(*ct_small_slices(4), pad=8),
            "val00001": release_volume(*ct5n_slices(), pad=4),
            "tst00001": release_volume(*ct_small_slices(3), pad=4)}
    for name, v in vols.items():
        np.savez_compressed(os.path.join(root, name + ".npz"), ct=v)
    cols = columns()
    for split, rows in LABELS.items():
        with open(os.path.join(root, f"img{split}_Abnormality_and_Location_Labels.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["NoteAcc_DEID"] + cols)
            for acc, on in rows.items():
                w.writerow([acc] + [on.get(c, 0) for c in cols])


def load_ct(path):
    z = np.load(path)
    key = "ct" if "ct" in z.files else z.files[0]
    return z[key]


def cmd_dump(path, out):
    a = load_ct(path)
    np.ascontiguousarray(a.astype(np.float32)).tofile(out + ".raw")
    json.dump({"shape": list(a.shape), "dtype": a.dtype.str}, open(out + ".json", "w"))


def cmd_extra(d):
    os.makedirs(d, exist_ok=True)
    base = release_volume(*ct5n_slices(), pad=2)
    np.savez(os.path.join(d, "stored.npz"), ct=base, spacing=np.array([0.8, 0.8, 0.8]))
    np.savez_compressed(os.path.join(d, "fortran.npz"), ct=np.asfortranarray(base.astype(np.float32) + 0.25))
    np.savez_compressed(os.path.join(d, "bigendian.npz"), volume=base.astype(">i2"))
    np.savez_compressed(os.path.join(d, "two.npz"), a=base, b=base)
    whole = open(os.path.join(d, "stored.npz"), "rb").read()
    open(os.path.join(d, "cut.npz"), "wb").write(whole[: len(whole) // 2])


def cmd_reference(root, cache, sx, sy, sz, nx, ny, nz):
    idx = json.load(open(os.path.join(cache, "index.json")))
    out = {}
    for it in idx["items"]:
        ct = load_ct(os.path.join(root, it["id"] + ".npz")).astype(np.float64)
        # [i, j, k] = ct[k, j, i]; the release stores slices head first, so k is reversed to run
        # feet -> head (LPS+, as biud's importer states with a 9-number orientation override).
        img = np.ascontiguousarray(ct.transpose(2, 1, 0)[:, :, ::-1])
        want = ct_clip_steps(img, (0.8, 0.8, 0.8), (float(sx), float(sy), float(sz)), (int(nx), int(ny), int(nz)))
        raw = np.memmap(os.path.join(cache, it["shard"]), np.uint8, "r")[it["offset"]:it["offset"] + it["bytes"]]
        got = raw.view(np.int16).astype(np.float32).reshape(it["shape"][::-1]) / it["quant"]  # [k, j, i]
        want = want.transpose(0, 2, 1)
        assert got.shape == want.shape, (it["id"], got.shape, want.shape)
        out[it["id"]] = float(np.abs(got - want).max())
    print(json.dumps(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"make": cmd_make, "dump": cmd_dump, "extra": cmd_extra, "reference": cmd_reference}[cmd](*sys.argv[2:])
