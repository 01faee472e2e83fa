#!/usr/bin/env python3
"""Damaged volume files for tests/image/VolumeFaultTest.cpp (issue 20: volumes are checked before
they are trusted). Every file starts as a real one (nibabel's test data, or written by nibabel,
SimpleITK or pydicom) and is then cut or has header fields rewritten byte by byte.

  volume_faults.py make OUT     writes the files below into OUT and prints a JSON of facts

NIfTI-1 byte offsets used (NIfTI-1 standard, nifti1.h): dim int16[8] at 40, pixdim float32[8] at 76.
(No NIfTI-2 files: ITK 5.2, which biud builds against, does not read them at all.)
"""
import copy
import gzip
import json
import os
import struct
import sys

import numpy as np


def nib_data():
    import nibabel
    return os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def gz(data, mtime=0):
    return gzip.compress(data, compresslevel=6, mtime=mtime)


def patch_nifti1(raw, endian, dims=None, pixdim1=None):
    b = bytearray(raw)
    if dims is not None:
        for i, d in enumerate(dims):
            b[42 + 2 * i:44 + 2 * i] = struct.pack(endian + "h", d)
    if pixdim1 is not None:
        b[80:84] = struct.pack(endian + "f", pixdim1)
    return bytes(b)


def cmd_make(out):
    import nibabel as nib
    import SimpleITK as sitk

    os.makedirs(out, exist_ok=True)
    facts = {}
    rng = np.random.default_rng(20)

    # A real-size-ish volume written by nibabel: 64 x 64 x 40 int16, smooth body plus noise.
    x, y, z = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64), np.linspace(-1, 1, 40), indexing="ij")
    a = np.where(x ** 2 + y ** 2 < 0.8, 40.0, -1000.0) + rng.normal(0, 30, x.shape)
    a = np.round(a).astype(np.int16)
    img = nib.Nifti1Image(a, np.diag([0.7, 0.7, 2.5, 1.0]))
    img.header.set_data_dtype(np.int16)
    nib.save(img, os.path.join(out, "big.nii.gz"))
    nib.save(img, os.path.join(out, "big.nii"))
    whole_gz = open(os.path.join(out, "big.nii.gz"), "rb").read()
    raw = gzip.decompress(whole_gz)
    facts["big_raw_bytes"] = len(raw)
    # The first 4 KiB of it, its last 4 bytes (where a gzip trailer's ISIZE sits) claiming ~4 GiB.
    write(os.path.join(out, "trunc4k.nii.gz"), whole_gz[:4092] + struct.pack("<I", 0xFFFFFFF0))
    # Two gzip members (as bgzip writes): the last trailer's ISIZE is only the second half.
    half = len(raw) // 2
    write(os.path.join(out, "multi.nii.gz"), gz(raw[:half]) + gz(raw[half:]))
    # 4 KiB of bytes after the voxels: more inflated data than the header needs.
    write(os.path.join(out, "trailing.nii.gz"), gz(raw + bytes(range(256)) * 16))

    # int16 stored with scl_slope 2 / scl_inter -1024 (ITK reports such a file as float: 4 bytes a
    # voxel, though 2 are stored), plain, gzip, and cut by 1000 bytes.
    sc = nib.Nifti1Image(a[:30, :20, :10].copy(), np.diag([0.7, 0.7, 2.5, 1.0]))
    sc.header.set_data_dtype(np.int16)
    sc.header.set_slope_inter(2.0, -1024.0)
    nib.save(sc, os.path.join(out, "scaled.nii"))
    nib.save(sc, os.path.join(out, "scaled.nii.gz"))
    scraw = open(os.path.join(out, "scaled.nii"), "rb").read()
    facts["scaled_bytes"] = len(scraw)
    write(os.path.join(out, "scaled_cut.nii"), scraw[:-1000])

    # nibabel's anatomical.nii: big-endian int16 33 x 41 x 25, 2 mm, vox_offset 0 (data at 352).
    anat = open(os.path.join(nib_data(), "anatomical.nii"), "rb").read()
    facts["anat_bytes"] = len(anat)
    big = patch_nifti1(anat, ">", dims=(1000, 1000, 1000))
    write(os.path.join(out, "dims1000.nii"), big)
    # Compressed, and its trailer claiming exactly what the header needs (352 + 2e9 bytes).
    write(os.path.join(out, "dims1000.nii.gz"), gz(big)[:-4] + struct.pack("<I", (352 + 2 * 1000 ** 3) % 2 ** 32))
    write(os.path.join(out, "trunc.nii"), anat[:40000])
    write(os.path.join(out, "trunc.nii.gz"), gz(anat[:40000]))
    write(os.path.join(out, "negdim.nii"), patch_nifti1(anat, ">", dims=(33, -41, 25)))
    for name, val in (("zero", 0.0), ("nan", float("nan")), ("tiny", 0.01), ("huge", 50.0), ("inf", float("inf"))):
        d = patch_nifti1(anat, ">", pixdim1=val)
        write(os.path.join(out, f"sp_{name}.nii"), d)
        write(os.path.join(out, f"sp_{name}.nii.gz"), gz(d))

    # MetaImage and NRRD written by SimpleITK: 20 x 30 x 40 int16, spacing 0.7 x 0.8 x 2.5.
    m = sitk.GetImageFromArray((np.arange(20 * 30 * 40) % 1000).astype(np.int16).reshape(40, 30, 20))
    m.SetSpacing((0.7, 0.8, 2.5))
    for ext in ("mha", "nrrd", "mhd"):
        for comp in (False, True):
            if ext == "mhd" and comp:
                continue
            name = f"{'gz' if comp else 'raw'}.{ext}"
            sitk.WriteImage(m, os.path.join(out, name), useCompression=comp)
    for name, key, new in (("raw.mha", b"DimSize = 20 30 40", b"DimSize = 1000 1000 1000"),
                           ("gz.mha", b"DimSize = 20 30 40", b"DimSize = 1000 1000 1000"),
                           ("raw.nrrd", b"sizes: 20 30 40", b"sizes: 1000 1000 1000"),
                           ("gz.nrrd", b"sizes: 20 30 40", b"sizes: 1000 1000 1000")):
        d = open(os.path.join(out, name), "rb").read()
        assert key in d, (name, key)
        write(os.path.join(out, "dims_" + name), d.replace(key, new, 1))
        facts["size_" + name] = len(d)
        if name.startswith("raw"):
            facts["header_" + name] = len(d) - 20 * 30 * 40 * 2
    for name in ("raw.mha", "raw.nrrd"):
        d = open(os.path.join(out, name), "rb").read()
        write(os.path.join(out, "trunc_" + name), d[:len(d) - 10000])
    # Detached MetaImage: header raw.mhd names raw.raw; a copy whose data file lost 10000 bytes.
    mhd = open(os.path.join(out, "raw.mhd"), "rb").read()
    facts["mhd_data_file"] = mhd.split(b"ElementDataFile = ")[1].strip().decode()
    data = open(os.path.join(out, facts["mhd_data_file"]), "rb").read()
    write(os.path.join(out, "cut.raw"), data[:len(data) - 10000])
    write(os.path.join(out, "trunc_raw.mhd"), mhd.replace(facts["mhd_data_file"].encode(), b"cut.raw"))
    mha = open(os.path.join(out, "raw.mha"), "rb").read()
    nrrd = open(os.path.join(out, "raw.nrrd"), "rb").read()
    assert b"ElementSpacing = 0.69999999999999996 " in mha and b"(0.69999999999999996,0,0)" in nrrd
    write(os.path.join(out, "sp_tiny.mha"), mha.replace(b"ElementSpacing = 0.69999999999999996 ", b"ElementSpacing = 0.01 "))
    write(os.path.join(out, "sp_zero.mha"), mha.replace(b"ElementSpacing = 0.69999999999999996 ", b"ElementSpacing = 0 "))
    write(os.path.join(out, "sp_huge.nrrd"), nrrd.replace(b"(0.69999999999999996,0,0)", b"(50,0,0)"))

    # DICOM series of 3 slices 2.5 mm apart from pydicom's CT_small.dcm, pixel spacing rewritten.
    import pydicom
    base = pydicom.dcmread(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "CT_small.dcm"))
    for name, ps in (("dcm_ok", [0.7, 0.7]), ("dcm_tiny", [0.01, 0.01]), ("dcm_zero", [0.0, 0.0])):
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        for k in range(3):
            d = copy.deepcopy(base)
            d.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.20"
            d.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.20.{k + 1}"
            d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
            d.InstanceNumber = k + 1
            pos = [float(v) for v in d.ImagePositionPatient]
            pos[2] += 2.5 * k
            d.ImagePositionPatient = pos
            d.SliceLocation = pos[2]
            d.PixelSpacing = ps
            d.save_as(os.path.join(folder, f"s{k}.dcm"))
    print(json.dumps(facts))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    globals()["cmd_" + cmd](*args)
