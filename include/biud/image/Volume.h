#pragma once
/// \file Volume.h
/// A 3D (or 2D) image in memory, free of ITK and LibTorch, so that every layer can hold one.
///
/// Canonical orientation: LPS+ (ITK/DICOM convention) — index i grows towards the patient's
/// Left, j towards Posterior, k towards Superior; after canonicalisation `direction` is the
/// identity. Voxels are stored x-fastest: value(i, j, k) = data[i + nx * (j + ny * k)].
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace biud::image {

/// Most voxels one volume may hold (2^31 - 1; 8 GiB as float). A header asking for more is corrupt
/// (a 1024 x 1024 x 512 CT is a quarter of it); readers refuse it before allocating anything.
inline constexpr std::int64_t kMaxVolumeVoxels = std::numeric_limits<std::int32_t>::max();

struct Volume {
  std::array<int, 3> size{0, 0, 0};                            ///< nx, ny, nz
  std::array<double, 3> spacing{1.0, 1.0, 1.0};                ///< mm
  std::array<double, 3> origin{0.0, 0.0, 0.0};                 ///< mm, physical position of voxel (0,0,0)
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  ///< row-major 3x3, columns = axes
  std::vector<float> data;                                     ///< HU for CT, [0,1] for X-rays

  Volume() = default;
  Volume(std::array<int, 3> sz, std::array<double, 3> sp, float fill = 0.0f)
      : size(sz), spacing(sp), data(static_cast<size_t>(sz[0]) * sz[1] * sz[2], fill) {}

  std::int64_t numel() const { return static_cast<std::int64_t>(size[0]) * size[1] * size[2]; }
  std::int64_t index(int i, int j, int k) const {
    return i + static_cast<std::int64_t>(size[0]) * (j + static_cast<std::int64_t>(size[1]) * k);
  }
  float& at(int i, int j, int k) { return data[static_cast<size_t>(index(i, j, k))]; }
  float at(int i, int j, int k) const { return data[static_cast<size_t>(index(i, j, k))]; }
};

/// Facts about one volume that override what its file header says: public releases keep them in a
/// metadata table (CT-RATE: `XYSpacing`, `ZSpacing`, `RescaleSlope`, `RescaleIntercept`,
/// `ImageOrientationPatient`, `ImagePositionPatient` of `*_metadata.csv`) because the files were
/// written without them. NaN = not given (the header is used). Manifest columns: `spacing_x`,
/// `spacing_y`, `spacing_z`, `rescale_slope`, `rescale_intercept`, `orientation` (6 numbers),
/// `origin` (3 numbers). Applied by readVolume() before the volume is brought to LPS.
struct VolumeOverrides {
  static constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();
  /// mm along the file's voxel axes i, j, k (CT-RATE: XYSpacing[0], XYSpacing[1], ZSpacing).
  std::array<double, 3> spacing{kUnset, kUnset, kUnset};
  /// HU = slope * v + intercept, where v is the value the file gives with its own header scaling
  /// (NIfTI scl_slope/scl_inter) applied — nibabel's get_fdata(), the convention of CT-CLIP's
  /// data loaders. Both or neither.
  double slope = kUnset, intercept = kUnset;
  /// Directions (LPS, unit vectors) of voxel axes i, j and k: from 6 numbers, DICOM's
  /// ImageOrientationPatient (i along the row cosines, j along the column cosines, k along their
  /// cross product), or from 9 numbers (i, j, k given; k may point against the cross product, as
  /// in volumes stored head first).
  std::array<double, 9> orientation{kUnset, kUnset, kUnset, kUnset, kUnset, kUnset, kUnset, kUnset, kUnset};
  /// DICOM ImagePositionPatient (LPS, mm) of voxel (0, 0, 0).
  std::array<double, 3> origin{kUnset, kUnset, kUnset};

  bool hasSpacing() const { return !std::isnan(spacing[0]); }
  bool hasRescale() const { return !std::isnan(slope); }
  bool hasOrientation() const { return !std::isnan(orientation[0]); }
  bool hasOrigin() const { return !std::isnan(origin[0]); }
  bool any() const { return hasSpacing() || hasRescale() || hasOrientation() || hasOrigin(); }
  /// Set `orientation` from 6 or 9 numbers; false for another count.
  bool setOrientation(const double* v, size_t n) {
    if (n != 6 && n != 9) return false;
    for (size_t k = 0; k < n; ++k) orientation[k] = v[k];
    if (n == 6) {
      const double* r = v;
      const double* c = v + 3;
      orientation[6] = r[1] * c[2] - r[2] * c[1];
      orientation[7] = r[2] * c[0] - r[0] * c[2];
      orientation[8] = r[0] * c[1] - r[1] * c[0];
    }
    return true;
  }
};

/// A 2D image (X-ray): size {w, h, 1}.
using Image2D = Volume;

}  // namespace biud::image
