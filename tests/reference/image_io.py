#!/usr/bin/env python3
"""Independent readers for tests/image: nibabel, pydicom, SimpleITK, Pillow.

Each `read_*` command writes OUT.raw (float32, x fastest, i.e. array[i, j, k] in Fortran order)
and OUT.json (size, spacing, origin, direction) of the image in canonical LPS+ orientation,
so the C++ test compares voxel for voxel.

  image_io.py paths                         -> JSON with the test data folders of nibabel/pydicom
  image_io.py nibabel FILE OUT              nib.as_closest_canonical (RAS+) then flip x, y -> LPS+
  image_io.py sitk FILE OUT                 SimpleITK ReadImage + DICOMOrient('LPS')
  image_io.py pydicom_series DIR OUT        pydicom: slices sorted along the normal, rescaled to HU
  image_io.py pydicom_2d FILE OUT           pydicom pixel_array (rescaled), min-max, MONOCHROME1 inverted
  image_io.py pillow FILE OUT               Pillow grey, /255 or /65535
  image_io.py make_sitk OUT.ext             a small oblique-free test volume with a flipped/permuted direction
  image_io.py make_series SRC DIR N UID     a DICOM series of N slices made from SRC (pydicom)
"""
import copy
import json
import os
import sys

import numpy as np


def save(out, arr, spacing, origin, direction):
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr.flatten(order="F").tofile(out + ".raw")
    with open(out + ".json", "w") as f:
        json.dump({"size": list(arr.shape), "spacing": [float(s) for s in spacing],
                   "origin": [float(o) for o in origin],
                   "direction": [float(d) for d in np.asarray(direction).reshape(-1)]}, f)


def cmd_paths():
    import nibabel
    import pydicom
    print(json.dumps({"nibabel": os.path.join(os.path.dirname(nibabel.__file__), "tests", "data"),
                      "pydicom": os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")}))


def cmd_nibabel(path, out):
    import nibabel as nib
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    assert data.ndim == 3, data.shape
    aff = img.affine
    # RAS+ -> LPS+: flip the first two voxel axes and negate x, y of world coordinates.
    data = data[::-1, ::-1, :]
    n = data.shape
    o_ras = aff @ np.array([n[0] - 1, n[1] - 1, 0, 1.0])
    origin = [-o_ras[0], -o_ras[1], o_ras[2]]
    m = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    m = np.diag([-1, -1, 1]) @ m @ np.diag([-1, -1, 1])
    save(out, data, img.header.get_zooms()[:3], origin, m)


def cmd_sitk(path, out):
    import SimpleITK as sitk
    img = sitk.DICOMOrient(sitk.ReadImage(path, sitk.sitkFloat32), "LPS")
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    save(out, arr, img.GetSpacing(), img.GetOrigin(), img.GetDirection())


def cmd_pydicom_series(folder, out):
    import pydicom
    ds = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    iop = np.array(ds[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    ds.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    vol = np.stack([d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1))
                    + float(getattr(d, "RescaleIntercept", 0)) for d in ds], axis=-1)  # (rows, cols, z)
    vol = vol.transpose(1, 0, 2)  # (x = column, y = row, z)
    p0 = np.array(ds[0].ImagePositionPatient, dtype=float)
    p1 = np.array(ds[1].ImagePositionPatient, dtype=float)
    dz = float(np.linalg.norm(p1 - p0))
    ps = [float(x) for x in ds[0].PixelSpacing]  # row spacing, column spacing
    spacing = [ps[1], ps[0], dz]
    direction = np.stack([row, col, normal], axis=1)
    # Canonical LPS+ for the axis-aligned case: flip axes whose direction is negative.
    for a in range(3):
        if direction[a, a] < 0:
            p0 = p0 + direction[:, a] * spacing[a] * (vol.shape[a] - 1)
            direction[:, a] *= -1
            vol = np.flip(vol, axis=a)
    save(out, vol, spacing, p0, direction)


def cmd_pydicom_2d(path, out):
    import pydicom
    d = pydicom.dcmread(path)
    a = d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1) or 1) + float(getattr(d, "RescaleIntercept", 0) or 0)
    lo, hi = a.min(), a.max()
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if str(d.PhotometricInterpretation).strip() == "MONOCHROME1":
        a = 1.0 - a
    save(out, a.T, [1, 1, 1], [0, 0, 0], np.eye(3))


def cmd_pillow(path, out):
    from PIL import Image
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        a = np.asarray(im, dtype=np.float64) / 65535.0
    else:
        a = np.asarray(im.convert("L") if im.mode not in ("L",) else im, dtype=np.float64) / 255.0
    save(out, a.T, [1, 1, 1], [0, 0, 0], np.eye(3))


def cmd_make_sitk(out):
    import SimpleITK as sitk
    rng = np.random.default_rng(7)
    arr = rng.integers(-1000, 1500, size=(5, 6, 7)).astype(np.float32) + 0.25  # (z, y, x)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))
    img.SetOrigin((10.0, -20.0, 30.0))
    # axis 0 along -y (anterior), axis 1 along +x (left)... a permuted, flipped RAS-like frame.
    img.SetDirection((0, -1, 0, -1, 0, 0, 0, 0, 1))
    sitk.WriteImage(img, out)


def cmd_make_jpeg(out):
    """An 8-bit grey JPEG (smooth content, so decoders agree closely)."""
    from PIL import Image
    x, y = np.meshgrid(np.arange(40), np.arange(24))
    a = (127 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)).astype(np.uint8)
    Image.fromarray(a, mode="L").save(out, quality=95)


def cmd_make_nifti(out):
    """int16 NIfTI with scl_slope 2, scl_inter -1024 and a permuted, flipped affine."""
    import nibabel as nib
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 1500, size=(6, 5, 7)).astype(np.int16)
    aff = np.array([[0, 0, -2.5, 40.0], [0.9, 0, 0, -30.0], [0, -0.8, 0, 12.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(arr, aff)
    img.header.set_slope_inter(2.0, -1024.0)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    nib.save(img, out)


def cmd_make_series(src, folder, n, uid):
    import pydicom
    n = int(n)
    os.makedirs(folder, exist_ok=True)
    base = pydicom.dcmread(src)
    rng = np.random.default_rng(abs(hash(uid)) % (2**32))
    for k in range(n):
        d = copy.deepcopy(base)
        arr = rng.integers(0, 3000, size=(d.Rows, d.Columns)).astype(np.uint16)
        d.PixelData = arr.tobytes()
        d.PixelRepresentation = 0
        d.BitsAllocated = 16
        d.BitsStored = 16
        d.HighBit = 15
        d.RescaleSlope = 1
        d.RescaleIntercept = -1024
        d.SeriesInstanceUID = uid
        d.SOPInstanceUID = f"{uid}.{k + 1}"
        d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
        d.InstanceNumber = k + 1
        pos = [float(x) for x in d.ImagePositionPatient]
        # Written in reverse order of position so that the reader must sort.
        pos[2] = pos[2] + 2.5 * (n - 1 - k)
        d.ImagePositionPatient = pos
        d.SliceLocation = pos[2]
        d.save_as(os.path.join(folder, f"{uid.split('.')[-1]}_{k:03d}.dcm"))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    globals()["cmd_" + cmd](*args)
