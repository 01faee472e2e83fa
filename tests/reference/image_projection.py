#!/usr/bin/env python3
"""SimpleITK + NumPy reference for biud::image::simulateXray (biud-drr, X2CT-CLIP).

  image_projection.py IN PROJECTOR SPACING HU_MIN HU_MAX MU_WATER OUT
      Read IN (SimpleITK, LPS), resample to SPACING mm isotropic on biud's grid (same origin and
      direction, size = max(1, round(n * old / new)), linear, -1000 outside), clip HU to
      [HU_MIN, HU_MAX], project along the anterior-posterior axis (numpy axis 1 of the [z, y, x]
      array): PROJECTOR `mean` = mean HU, `drr` = sum of mu_water * max(0, 1 + HU/1000) * dy.
      Rows flipped so that row 0 is the most superior slice; min-max to [0, 1].
      Writes OUT.raw (float32, row-major [h, w]) and prints {"w": .., "h": ..}.
"""
import json
import sys

import numpy as np
import SimpleITK as sitk


def main(path, projector, spacing, hu_min, hu_max, mu_water, out):
    img = sitk.ReadImage(path, sitk.sitkFloat32)
    sp = [float(spacing)] * 3
    size = [max(1, int(round(n * o / s))) for n, o, s in zip(img.GetSize(), img.GetSpacing(), sp)]
    res = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), sp, img.GetDirection(),
                        -1000.0, sitk.sitkFloat32)
    a = sitk.GetArrayFromImage(res).astype(np.float64)  # [z, y, x]
    a = np.clip(a, float(hu_min), float(hu_max))
    if projector == "mean":
        p = a.mean(axis=1)
    elif projector == "drr":
        mu = float(mu_water) * np.maximum(0.0, 1.0 + a / 1000.0)
        p = mu.sum(axis=1) * res.GetSpacing()[1]
    else:
        raise SystemExit(f"unknown projector {projector}")
    p = p[::-1, :]  # superior at the top; x (patient right -> left) already runs left to right
    p = (p - p.min()) / (p.max() - p.min())
    p.astype(np.float32).tofile(out + ".raw")
    print(json.dumps({"w": int(p.shape[1]), "h": int(p.shape[0])}))


if __name__ == "__main__":
    main(*sys.argv[1:])
