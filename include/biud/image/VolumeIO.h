#pragma once
/// \file VolumeIO.h
/// Reading and writing medical images (ITK underneath, never visible here).
///
/// CT volumes: NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd), NRRD (.nrrd, .nhdr) and DICOM
/// (a folder holding a series, or one multi-frame file). Every volume is returned in the
/// canonical LPS+ orientation (see Volume.h): the voxel axes are permuted and flipped so that
/// index i grows towards the patient's Left, j towards Posterior, k towards Superior. This is
/// a lossless reordering of voxels (no interpolation); for an oblique acquisition the residual
/// rotation (below 45 degrees per axis) stays in `direction`, which is otherwise the identity.
/// Values are in HU for CT: DICOM rescale slope/intercept and NIfTI scl_slope/scl_inter are
/// applied.
///
/// X-rays: PNG, JPEG and DICOM, grey or colour (colour is converted to luminance), to float in
/// [0, 1]: 8-bit / 255, 16-bit / 65535; DICOM is min-max normalised over the image (its stored
/// bit depth and rescale vary by vendor) and MONOCHROME1 (white = low) is inverted so that
/// bright always means dense.
#include <array>
#include <string>
#include <vector>

#include "biud/image/Volume.h"

namespace biud::image {

/// Options for readVolume(). Defaults match readVolume(path).
struct VolumeReadOptions {
  /// DICOM folder: SeriesInstanceUID to read; empty = the series with the most slices.
  std::string series;
  /// Bring the volume to LPS+ (off only for tests and debugging).
  bool canonical = true;
  /// Header facts to replace (metadata tables of public releases; see Volume.h). Applied to the
  /// voxels as stored, before the volume is brought to LPS+.
  VolumeOverrides overrides;
  /// When given, gets one line per override that disagrees with the file's own header (e.g.
  /// "spacing: header 1 x 1 x 1 mm, metadata 0.66 x 0.66 x 5 mm"); the metadata wins.
  std::vector<std::string>* disagreements = nullptr;
  /// [min, max] mm every voxel spacing must lie in once the overrides are applied
  /// (`data.ct.spacing_range`, same default): see checkSpacing().
  std::array<double, 2> spacingRange{0.05, 20.0};

  /// Default options with `spacingRange` from a config's [min, max] (`data.ct.spacing_range`):
  /// `readVolume(path, VolumeReadOptions::withSpacingRange(cfg.data.ct.spacing_range))`.
  /// ValueError unless it holds 2 numbers.
  static VolumeReadOptions withSpacingRange(const std::vector<double>& range);
};

/// A zero, NaN, tiny or huge voxel spacing is a broken header that resampling would turn into
/// garbage: DataError naming the file, the spacing, the range and the key to change
/// (`data.ct.spacing_range`) unless every spacing of `v` is finite and within `range` (mm).
/// readVolume() calls it after the overrides, for every format (NIfTI, MetaImage, NRRD, DICOM,
/// .npz). A NIfTI pixdim of 0 or NaN is reported as such (the NIfTI library would make it 1 mm).
void checkSpacing(const Volume& v, const std::array<double, 2>& range, const std::string& path);

/// Replace header facts of a volume read in file order (before reorientToLps): spacing, rescale
/// (HU = slope * v + intercept), orientation and origin. `path` names the volume in messages; an
/// override that differs from the header adds a line to `disagreements` (if given). A spacing
/// that is not positive and finite, a zero slope or an orientation whose axis directions are not
/// unit-length and orthogonal (within 1e-3) is a DataError.
void applyOverrides(Volume& v, const VolumeOverrides& o, const std::string& path,
                    std::vector<std::string>* disagreements = nullptr);

/// Chest-CT plausibility of HU values: the fraction of voxels in [-1100, -900] HU (air and
/// lung, present in every chest CT). Values read without their rescale intercept (raw 0..4095)
/// or with it applied twice put almost nothing there.
double airFraction(const Volume& hu);

/// Read a CT volume (file or DICOM folder), canonical LPS+, HU. `folder#UID` reads the series
/// with that SeriesInstanceUID (prefix) from a DICOM folder.
/// The header is checked against the file before anything of its size is allocated: dimensions
/// at least 1 and at most kMaxVolumeVoxels in all (else DataError); uncompressed data (.nii, raw
/// .mha/.mhd/.nrrd) must be on disk in full and compressed data (.nii.gz, compressed .mha/.nrrd)
/// must be able to inflate to what the header needs (else IoError naming the bytes present and
/// needed). A .nii.gz is inflated into a buffer of the header's size, never the gzip trailer's.
/// Throws IoError (missing/unreadable/truncated file) or DataError (2D image, 4D volume with
/// more than one time point, colour volume, empty DICOM folder, unknown series, spacing outside
/// `spacingRange` or an orientation that is not finite, both after the overrides).
Volume readVolume(const std::string& path);
Volume readVolume(const std::string& path, const VolumeReadOptions& opt);

/// Write a volume; the format follows the extension (.nii.gz, .nii, .mha, .nrrd). Voxels are
/// stored as int16 when every value is an integer in [-32768, 32767], else as float32.
/// Written atomically (temp file in the same folder, then rename).
void writeVolume(const std::string& path, const Volume& v);

/// Read a 2D image (PNG, JPEG, DICOM) as grey float in [0, 1], size {w, h, 1}; row 0 is the
/// top row of the picture. A DICOM file with several frames is an error.
Image2D readImage2D(const std::string& path);

/// Write a 2D image as PNG (grey), values clamped to [0, 1] and scaled to 8 or 16 bits.
void writeImage2D(const std::string& path, const Image2D& img, int bits = 8);

/// Permute/flip voxel axes in place so that `direction` is closest to the identity (LPS+).
/// Origin and spacing follow the voxels, so physical positions are unchanged.
void reorientToLps(Volume& v);

/// Physical position (mm, LPS) of voxel index (i, j, k): origin + direction * (spacing .* ijk).
std::array<double, 3> indexToPhysical(const Volume& v, double i, double j, double k);

/// SeriesInstanceUIDs in a DICOM folder with their slice counts, largest first.
std::vector<std::pair<std::string, int>> listDicomSeries(const std::string& dir);

/// What a file looks like without reading its voxels (dimension, size, components, pixel type).
struct ImageInfo {
  int dimension = 0;
  std::vector<int> size;
  int components = 1;
  std::string componentType;  ///< "uint8", "int16", "float", ...
};
ImageInfo readImageInfo(const std::string& path);

}  // namespace biud::image
