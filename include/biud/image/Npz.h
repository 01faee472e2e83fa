#pragma once
/// \file Npz.h
/// NumPy `.npy` arrays and `.npz` archives (numpy.save / numpy.savez / numpy.savez_compressed),
/// read without Python or LibTorch: the zip container (members stored or deflate-compressed,
/// zip64 extra fields as numpy writes them), the `.npy` header (format 1.0, 2.0, 3.0: `descr`,
/// `fortran_order`, `shape`) and the raw little- or big-endian data.
///
/// As a CT volume (readNpzVolume): a 3-D array of shape (d0, d1, d2) in C order is read with
/// its LAST axis fastest: voxel (i, j, k) = array[k, j, i], size {d2, d1, d0}. The file carries
/// no geometry, so spacing is 1 x 1 x 1 mm, origin 0 and direction the identity; the real spacing
/// and orientation come from the manifest's per-item overrides (biud-import writes them for
/// RAD-ChestCT: 0.8 mm isotropic, arrays [slice, row, column]; docs/data.md). A Fortran-order
/// array is read with the same index meaning (array[k, j, i]).
#include <cstdint>
#include <string>
#include <vector>

#include "biud/image/Volume.h"

namespace biud::image {

struct NpyArray {
  std::string descr;  ///< numpy dtype string as in the header, e.g. "<i2", "<f4", "|u1"
  std::vector<std::int64_t> shape;
  bool fortranOrder = false;
  std::vector<float> values;  ///< every element, in the file's memory order, as float (exact up to
                              ///< 24-bit integers; wider integers and float64 are rounded)
};

/// Parse one `.npy` image held in memory. `name` names it in messages. Throws DataError for a
/// bad magic, header or dtype (supported: bool, int8..int64, uint8..uint64, float32, float64,
/// either byte order) or data shorter than the shape says.
NpyArray parseNpy(const std::string& bytes, const std::string& name);

/// The member names of a `.npz` file (without the `.npy` suffix), in archive order.
std::vector<std::string> npzKeys(const std::string& path);

/// One array of a `.npz` file. `key` empty: the only array of the archive (an error naming the
/// keys when there are several). Throws IoError (missing, truncated or not a zip file, a CRC
/// mismatch, an unsupported compression method) or DataError (unknown key, bad .npy).
NpyArray readNpz(const std::string& path, const std::string& key = "");

/// A CT volume from a `.npz` file: the array `ct` when present (RAD-ChestCT's key, written by
/// numpy.savez_compressed(path, ct=volume)), else the only array. Must be 3-D. Values are
/// taken as they are (HU for RAD-ChestCT). Axis order, spacing and direction: see above.
Volume readNpzVolume(const std::string& path);

}  // namespace biud::image
