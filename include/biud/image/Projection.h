#pragma once
/// \file Projection.h
/// Simulated frontal chest X-rays from CT volumes (X2CT-CLIP, METHOD §6), torch-free.
///
/// Pipeline (simulateXray): resample the canonical (LPS+) HU volume to `x2ct.drr.spacing` mm
/// isotropic (trilinear, air outside) -> clip to [hu_min, hu_max] -> project along the
/// anterior-posterior axis j -> min-max normalise to [0, 1] -> optionally pad to a square and
/// resize. The image is upright: row 0 = the most superior slice, column 0 = patient right
/// (radiological display, as a PA/AP chest film is viewed).
///
/// Projectors:
///  - `mean`: the mean of the windowed HU along j (what the X2CT-CLIP code does);
///  - `drr`: the Beer-Lambert line integral L = sum_j mu * dl with mu = mu_water (1 + HU/1000)
///    (0 for HU <= -1000), i.e. L = -log(I / I0), the log-transformed transmitted intensity;
///    parallel rays along j, or a cone beam from a point source (`beam: cone`).
#include <string>

#include "biud/config/X2ctConfig.h"
#include "biud/image/Volume.h"

namespace biud::image {

/// The projection of a volume that is already resampled and HU-windowed, before any
/// normalisation: mean HU (`mean`) or the line integral L (`drr`). Size {nx, nz, 1}.
Image2D projectAP(const Volume& windowedHu, const DrrConfig& cfg);

/// Clip every voxel to [lo, hi] in place.
void clipHu(Volume& v, double lo, double hi);

/// (x - min) / (max - min); a constant image becomes 0. Throws ValueError on an empty image.
Image2D minMaxNormalize(const Image2D& img);

/// The whole pipeline of the file comment on a canonical HU volume; values in [0, 1].
Image2D simulateXray(const Volume& hu, const DrrConfig& cfg);

/// Stable hash (16 hex digits) of every parameter that changes the output pixels.
std::string drrHash(const DrrConfig& cfg);
/// One-line description of the parameters (logs, error messages, biud-drr.json).
std::string describeDrr(const DrrConfig& cfg);

}  // namespace biud::image
