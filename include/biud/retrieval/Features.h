#pragma once
/// \file Features.h
/// Precomputed feature files for biud-retrieve's feature mode (--ct-report-features ...): report
/// or image features computed elsewhere (another biud run, a Python pipeline) with one id per row.
///
///   .npy          a float array [N, d] (f2/f4/f8), C order; ids from a text file (one per line)
///   .safetensors  the tensor `features` (or the file's only tensor) [N, d] (F16/BF16/F32/F64);
///                 ids from the metadata entry `ids` (newline-separated), or from an ids file
///
/// Ids must be unique and non-empty; their count must equal N. Values must be finite.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace biud::retrieval {

struct FeatureFile {
  std::string path;
  std::vector<std::string> ids;  ///< row order
  /// [N, d] CPU, contiguous, 64-byte aligned; float32, or float16/bfloat16 as stored in the
  /// file (float64 files become float32).
  torch::Tensor features;
  /// Row of an id; DataError naming the file, the id and `what` is missing.
  std::int64_t rowOf(const std::string& id, const std::string& what) const;
  std::map<std::string, std::int64_t> index;  ///< id -> row
};

/// Read one feature file. `idsPath` (may be empty for a .safetensors file with `ids` metadata)
/// is a text file with one id per line. `what` ("CT report features") and `idsFlag`
/// ("--ct-ids") name the input in messages. IoError / DataError naming the file and the fix.
FeatureFile readFeatureFile(const std::string& path, const std::string& idsPath, const std::string& what,
                            const std::string& idsFlag);

/// One id per line (trailing \r removed; a final empty line ignored). DataError naming the file
/// and line for an empty or duplicate id.
std::vector<std::string> readIdList(const std::string& path);

/// Largest |‖row‖₂ − 1| of [N, d] features (0 for unit rows), computed in fp32.
double maxNormDeviation(const torch::Tensor& x);
/// Divide every row by its L2 norm (computed in fp32) in place, keeping x's dtype (rows of norm
/// 0 are left as they are). Extra memory: one slice of 65536 rows.
void normalizeRowsInPlace(torch::Tensor& x);

/// Identity of a file for work-folder fingerprints: absolute path, size and mtime (hashing
/// hundreds of MB of features on every run would cost more than it protects).
std::string fileIdentity(const std::string& path);

}  // namespace biud::retrieval
