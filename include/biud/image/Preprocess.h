#pragma once
/// \file Preprocess.h
/// CT preprocessing (METHOD §7), torch-free: resample to a target spacing (linear), HU window
/// and scaling, crop or pad to a fixed size (centre or body-aware).
///
/// Order: resample (HU) -> clip to [hu_min, hu_max] and divide by `scale` -> crop/pad with
/// `pad_value`. With the CT-RATE preset: clip [-1000, 1000], /1000, 0.75 x 0.75 x 1.5 mm,
/// 480 x 480 x 240, pad -1.
#include <array>
#include <cstdint>
#include <string>

#include "biud/config/DataConfig.h"
#include "biud/image/Volume.h"

namespace biud::image {

/// Resample onto a grid of `spacing` that starts at the same first-voxel centre and covers the
/// same extent: size = max(1, round(n * old / new)). Trilinear interpolation; a point outside the
/// input (continuous index outside [-0.5, n - 0.5)) gets `outside`; between the last voxel
/// centre and the border the edge value is used (the same rule as ITK's ResampleImageFilter with
/// a LinearInterpolateImageFunction). Separable: three 1D passes.
/// With `torchGrid` (data.ct.grid = torch): size = max(1, floor(n * (old / new))) and output
/// voxel o samples input index max(0, (o + 0.5) * n / size - 0.5), the rule of
/// torch.nn.functional.interpolate(size=..., mode="trilinear", align_corners=False) that
/// CT-CLIP's data loaders use; the output spacing is then n * old / size (the true one).
Volume resampleLinear(const Volume& in, const std::array<double, 3>& spacing, float outside, bool torchGrid = false);

/// Output size of resampleLinear().
std::array<int, 3> resampledSize(const Volume& in, const std::array<double, 3>& spacing, bool torchGrid = false);

/// Start index (may be negative = padding) of a window of `size` centred in `n` voxels:
/// start = floor((n - size) / 2) for crops, -(floor((size - n) / 2)) for pads.
int centerStart(int n, int size);

/// Crop or pad to `size`: output voxel o maps to input voxel o + start (per axis); voxels outside
/// the input get `pad`. Origin moves with the window, so physical positions are unchanged.
Volume cropOrPad(const Volume& in, const std::array<int, 3>& size, const std::array<int, 3>& start, float pad);

/// Bounding box [lo, hi] (inclusive) of the largest 6-connected component of voxels above
/// `threshold` (the body, for CT at -500 HU). Returns false when no voxel is above it.
bool bodyBox(const Volume& v, float threshold, std::array<int, 3>& lo, std::array<int, 3>& hi);

/// Window start for a body-aware crop: the window is centred on the body box and kept inside the
/// volume where it fits (the centre crop is used along axes where the volume is smaller).
std::array<int, 3> bodyCropStart(const Volume& v, const std::array<int, 3>& size, float thresholdHu);

/// X-ray: pad a 2D image to a square with `pad` (centred; the extra pixel goes after).
Image2D padToSquare(const Image2D& img, float pad);
/// X-ray: bilinear resize of a 2D image to w x h with pixel centres aligned
/// (src = (dst + 0.5) * in / out - 0.5, clamped at the border; the convention of
/// torch.nn.functional.interpolate(mode="bilinear", align_corners=False) without antialias).
Image2D resize2D(const Image2D& img, int w, int h);
/// X-ray preprocessing of data.xray: optional pad to square, then resize to size x size.
Image2D preprocessXray(const Image2D& img, const XrayPreprocessConfig& cfg);

/// The whole CT pipeline on a HU volume in canonical orientation.
Volume preprocessCt(const Volume& hu, const CtPreprocessConfig& cfg);

/// Stable hash (16 hex digits) of every parameter that changes the preprocessed voxels.
std::string preprocessHash(const CtPreprocessConfig& cfg);
/// One-line human description of the parameters (for error messages).
std::string describePreprocess(const CtPreprocessConfig& cfg);

}  // namespace biud::image
