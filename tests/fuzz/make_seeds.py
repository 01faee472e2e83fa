#!/usr/bin/env python3
"""Seed inputs for the libFuzzer harnesses of tests/fuzz (run once; scripts/fuzz.sh merges what
the fuzzers find on top). Usage: make_seeds.py OUT_DIR  (writes OUT_DIR/<target>/<name>).
Needs the reference venv (numpy, safetensors, nibabel, SimpleITK, pydicom)."""
import glob
import gzip
import io
import json
import os
import struct
import sys
import zlib

import numpy as np

out = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- config: the small recipes of configs/, an include pair and --set overrides ----------------
qs = open(os.path.join(root, "configs", "quickstart.yaml")).read()
put("config", "quickstart.yaml", qs)
for p in ["quickstart-biud.yaml", "finetune.yaml", "report.yaml", "x2ct.yaml"]:
    top = open(os.path.join(root, "configs", p)).read().replace("include: quickstart.yaml", "include: inc.yaml")
    put("config", p, "#include\n" + top + "\n%%file\n" + qs)
put("config", "sets.yaml", "task: clip2d\noptimizer:\n  lr: 0.001\n%%set\noptimizer.lr=3e-4\ndata.ct.size=[64,64,32]\n"
    "synth.split=[0.5, 0.25, 0.25]\ntext.lowercase=false\nname=x\n")
put("config", "include.yaml", "#include\ninclude: [inc.yaml]\nseed: 3\n%%file\ntask: report\nseed: 1\n")
put("config", "flow.yaml", "{task: x2ct, seed: 7, data: {ct: {size: [32, 32, 16]}}}\n")

# --- manifests ------------------------------------------------------------------------------------
csv = ("id,image,report,findings,impression,split,patient,spacing_x,spacing_y,spacing_z,rescale_slope,"
       "rescale_intercept,orientation,origin,Effusion,Nodule\n"
       "a,a.nii.gz,\"FINDINGS: small, \"\"left\"\" effusion.\nIMPRESSION: effusion.\",,,train,p1,0.7,0.7,1.5,1,-1024,"
       "\"[1,0,0,0,1,0]\",\"(-170.5, -180, 55)\",1,0\n"
       "b,b1.nii.gz;b2.nii.gz,,no nodule,clear,val,p1,,,,,,,,,-1\n")
put("manifest_csv", "full.csv", csv)
put("manifest_csv", "min.csv", "id,image\nx,/data/x.nii\n")
put("manifest_csv", "full.csv.gz", gzip.compress(csv.encode(), mtime=0))
put("manifest_csv", "tsvlike.csv", "id,image,split,Label\n1,1.mha,test,true\n2,2.mha,test,NaN\n")
rows = [{"id": "a", "image": ["a.nii.gz", "a2.nii.gz"], "report": "FINDINGS: x. IMPRESSION: y.", "split": "train",
         "patient": "p", "spacing_x": 0.5, "spacing_y": 0.5, "spacing_z": 2, "Effusion": 1, "Nodule": None},
        {"id": "b", "image": "b.nii.gz", "findings": "no nodule", "Effusion": False, "Nodule": 0.0}]
jl = "\n".join(json.dumps(r) for r in rows) + "\n"
put("manifest_jsonl", "full.jsonl", jl)
put("manifest_jsonl", "min.jsonl", '{"id": 1, "image": "x.nii"}\n')
put("manifest_jsonl", "full.jsonl.gz", gzip.compress(jl.encode(), mtime=0))

# --- safetensors ------------------------------------------------------------------------------------
from safetensors.numpy import save

put("safetensors", "f32.safetensors", save({"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                             "b": np.array([1, 2], dtype=np.int64)}, metadata={"format": "pt"}))
put("safetensors", "mixed.safetensors", save({"a": np.zeros((0, 3), np.float16), "m": np.array([True, False]),
                                               "i": np.array([[1]], np.int8), "u": np.array([7], np.uint8),
                                               "d": np.array([0.5], np.float64), "s": np.array(3, np.int32),
                                               "h": np.array([1, -1], np.int16)}))
put("safetensors", "empty.safetensors", save({}))

# --- npy ----------------------------------------------------------------------------------------------
def npy(a, **kw):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, **kw)
    return b.getvalue()


for dt in ["<f4", "<f8", "<f2", "<i2", "<i4", "<i8", "|u1", "|i1", "|b1", ">i2", "<u2"]:
    put("npy", dt.replace("<", "le").replace(">", "be").replace("|", "") + ".npy", npy(np.arange(6).astype(dt).reshape(2, 3)))
put("npy", "fortran.npy", npy(np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))))
put("npy", "v2.npy", npy(np.arange(4, dtype=np.float32), version=(2, 0)))
put("npy", "v3.npy", npy(np.arange(3, dtype=np.int32), version=(3, 0)))
put("npy", "scalar.npy", npy(np.array(5, np.float32)))
put("npy", "empty.npy", npy(np.zeros((0, 4), np.int16)))

# --- npz ----------------------------------------------------------------------------------------------
for name, comp in [("stored.npz", np.savez), ("deflate.npz", np.savez_compressed)]:
    b = io.BytesIO()
    comp(b, ct=np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 1000)
    put("npz", name, b.getvalue())
b = io.BytesIO()
np.savez_compressed(b, a=np.arange(3, dtype=np.float32), b=np.asfortranarray(np.ones((2, 2, 2), np.uint8)))
put("npz", "two.npz", b.getvalue())

# --- CT cache (layout of include/biud/image/CtCache.h) ---------------------------------------------
def record(rid, shape, dtype=1, quant=4.0, h=b"0123456789abcdef"):
    n = shape[0] * shape[1] * shape[2]
    vox = (np.arange(n, dtype=np.int16) - 5).tobytes() if dtype == 1 else np.arange(n, dtype=np.float16).tobytes()
    rid = rid.encode()
    off = (256 + len(rid) + 63) // 64 * 64
    head = struct.pack("<8sIIB3s3i3d3d9dfI16sIIQQ", b"BIUDCT\0\1", 1, 256, dtype, b"LPS", *shape, 0.7, 0.7, 1.5,
                       -10.0, 0.0, 5.0, 1, 0, 0, 0, 1, 0, 0, 0, 1, quant, zlib.crc32(vox), h, len(rid), 0, off, len(vox))
    head += b"\0" * (256 - len(head))
    return head + rid + b"\0" * (off - 256 - len(rid)) + vox, off, len(vox), zlib.crc32(vox)


r1, o1, n1, c1 = record("ct-1", (2, 3, 2))
r2, o2, n2, c2 = record("ct-2", (1, 2, 2), dtype=2, quant=1.0)
shard = r1 + r2
put("ctcache", "shard.bin", shard)
put("ctcache", "shard-partial.bin", shard[:-3])
items = [{"id": "ct-1", "shard": "shard-0000-00-000.bin", "offset": o1, "bytes": n1, "shape": [2, 3, 2],
          "spacing": [0.7, 0.7, 1.5], "origin": [-10, 0, 5], "dtype": "int16", "quant": 4.0, "crc32": c1},
         {"id": "ct-2", "shard": "shard-0000-00-000.bin", "offset": len(r1) + o2, "bytes": n2, "shape": [1, 2, 2],
          "spacing": [0.7, 0.7, 1.5], "origin": [-10, 0, 5], "dtype": "float16", "quant": 1.0, "crc32": c2}]
index = json.dumps({"format": "biud-ct-cache", "version": 1, "hash": "0123456789abcdef", "preprocess": "fuzz",
                    "orientation": "LPS", "items": items}, indent=1)
put("ctcache", "folder.txt", index.encode() + b"\n%%shard\n" + shard + b"\n%%failures\n" +
    b'{"id": "ct-3", "error": "unreadable"}\nnot json\n')

# --- volumes: 1 kind byte (volume: 0 .nii, 1 .nii.gz, 2 .mha, 3 .nrrd; dicom: 4 folder, 5 file) ------
import nibabel as nib
import SimpleITK as sitk

tmp = os.path.join(out, ".tmp")
os.makedirs(tmp, exist_ok=True)
vol = (np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) - 1000)
for kind, ext in [(0, ".nii"), (1, ".nii.gz")]:
    img = nib.Nifti1Image(vol, np.diag([0.7, 0.7, 1.5, 1]))
    img.header["scl_slope"], img.header["scl_inter"] = 1, 0
    p = os.path.join(tmp, "v" + ext)
    nib.save(img, p)
    put("volume", f"nifti1{ext}", bytes([kind]) + open(p, "rb").read())
p = os.path.join(tmp, "v2.nii")
nib.save(nib.Nifti2Image(vol.astype(np.float32), np.eye(4)), p)
put("volume", "nifti2.nii", bytes([0]) + open(p, "rb").read())
nd = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
put("volume", "standard.nii.gz", bytes([1]) + open(os.path.join(nd, "standard.nii.gz"), "rb").read())
im = sitk.GetImageFromArray(vol)
im.SetSpacing((0.7, 0.7, 1.5))
for kind, ext, comp in [(2, ".mha", False), (2, ".mha", True), (3, ".nrrd", False), (3, ".nrrd", True)]:
    p = os.path.join(tmp, "v" + ext)
    sitk.WriteImage(im, p, comp)
    put("volume", f"{'gz' if comp else 'raw'}{ext}", bytes([kind]) + open(p, "rb").read())
import pydicom

dd = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
for name in ["MR_small.dcm", "CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"]:
    ds = pydicom.dcmread(os.path.join(dd, name))
    try:
        a = ds.pixel_array[:4, :4].copy()
        ds.Rows, ds.Columns = 4, 4
        ds.PixelData = a.astype(a.dtype.newbyteorder("<" if ds.is_little_endian else ">")).tobytes()
    except Exception:
        pass
    slices = []
    for z in range(2):
        ds.ImagePositionPatient = [0, 0, 2.5 * z]
        ds.InstanceNumber = z + 1
        ds.SliceLocation = 2.5 * z
        b = io.BytesIO()
        ds.save_as(b)
        slices.append(b.getvalue())
    put("dicom", "folder-" + name, bytes([4]) + b"\n%%slice\n".join(slices))
    if "PixelData" in ds and ds.Rows == 4:
        ds.NumberOfFrames = 2
        ds.PixelData = ds.PixelData * 2
    b = io.BytesIO()
    ds.save_as(b)
    put("dicom", "file-" + name, bytes([5]) + b.getvalue())
for f in glob.glob(os.path.join(tmp, "*")):
    os.remove(f)
os.rmdir(tmp)

# --- text ---------------------------------------------------------------------------------------------
reports = [
    "FINDINGS: No pleural effusion. The lungs are clear.\nIMPRESSION: Normal chest CT.",
    "History: cough.\n\nTechnique: CT chest without contrast.\nFindings:\n1. A 5 mm nodule (RUL), possibly "
    "granuloma; no lymphadenopathy.\n2) Mild ground-glass opacities, e.g. infection vs. edema.\nConclusion: "
    "Pneumonia cannot be excluded. No change.",
    "Befund: Kein Pleuraerguss. Lunge frei. 中文 résumé ÉTÉ ß [MASK] [CLS]\t\u00a0\u200b\ufffd",
    "no evidence of effusion but small nodule is likely; suspicious for mass which is not seen.",
]
for i, r in enumerate(reports):
    put("report", f"r{i}.txt", r)
    put("wordpiece", f"u{i}.txt", bytes([1 | (32 << 1)]) + r.encode())
    put("wordpiece", f"c{i}.txt", bytes([0]) + r.encode())
put("wordpiece", "bad-utf8.txt", b"\x01\xff\xfe pl\xc3 \xe4\xb8 effusion\x80\x00 [SEP]")
