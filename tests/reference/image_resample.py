#!/usr/bin/env python3
"""SimpleITK reference for biud::image::resampleLinear / preprocessCt.

  image_resample.py IN SX SY SZ OUTSIDE OUT
      Resample IN onto the grid biud uses: same origin and direction, spacing (SX, SY, SZ),
      size = max(1, round(n * old / new)), linear interpolation, OUTSIDE outside the input.
      Writes OUT.raw/OUT.json like image_io.py.
"""
import sys

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from image_io import save  # noqa: E402


def main(path, sx, sy, sz, outside, out):
    img = sitk.ReadImage(path, sitk.sitkFloat32)
    new_sp = [float(sx), float(sy), float(sz)]
    size = [max(1, int(round(n * o / s))) for n, o, s in zip(img.GetSize(), img.GetSpacing(), new_sp)]
    res = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), new_sp,
                        img.GetDirection(), float(outside), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(res).transpose(2, 1, 0)
    save(out, arr, res.GetSpacing(), res.GetOrigin(), res.GetDirection())


if __name__ == "__main__":
    main(*sys.argv[1:])
