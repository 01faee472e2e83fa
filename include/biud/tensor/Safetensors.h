#pragma once
/// \file Safetensors.h
/// Reading and writing the safetensors format (the Hugging Face weight layout), implemented here:
///
///     [8 bytes: header length N, little-endian u64][N bytes: JSON header][raw tensor bytes]
///
/// The JSON header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
/// (offsets relative to the start of the data block) and may hold "__metadata__" (string map).
/// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Data is little-endian.
///
/// Reading checks the whole file at least as strictly as the `safetensors` package
/// (safetensors/src/tensor.rs): header length <= 100,000,000 and inside the file; the header is
/// one JSON object (no byte-order mark, no duplicate key at any level); every entry has a string
/// dtype, a shape of non-negative integers and two integer data_offsets; numel x dtype size is
/// computed without overflow and equals the entry's byte span; sorted by offset, the tensors
/// start at 0, neither overlap nor leave gaps, and end exactly at the end of the file;
/// `__metadata__` is null or a string -> string map. Beyond the package: duplicate keys (the
/// package keeps the last of two identical tensor entries or metadata keys), BOOL bytes other
/// than 0/1 and dimensions above 2^63-1 are refused, and so are NaN/Inf in floating tensors
/// unless allowed (SafetensorsReadOptions). Every error is one line naming the file and tensor.
///
/// Also: module state dicts (parameters + buffers under their dotted names) and loading a state
/// dict into a module with one clear error that lists missing, unexpected and mis-shaped keys.
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace biud::tensor {

/// Named tensors in name order (safetensors files are written sorted by name).
using TensorMap = std::map<std::string, torch::Tensor>;

/// Process-wide default of SafetensorsReadOptions::allowNonFinite and LoadOptions::allowNonFinite
/// (false). An app that offers `--allow-nonfinite-weights` sets it once after parsing its flags.
void setAllowNonFiniteDefault(bool allow);
bool allowNonFiniteDefault();

struct SafetensorsReadOptions {
  /// Accept NaN / +-Inf in F16, BF16, F32 and F64 tensors. Off: DataError naming the file, the
  /// tensor, how many values are non-finite and the first one.
  bool allowNonFinite = allowNonFiniteDefault();
};

/// Read every tensor of a .safetensors file onto the CPU. IoError naming the file (and the
/// tensor) for anything malformed (see the file comment); DataError for non-finite values
/// unless `options.allowNonFinite`. `metadata` receives the `__metadata__` entries.
TensorMap readSafetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr,
                          const SafetensorsReadOptions& options = {});
/// Parse safetensors bytes already in memory (`name` is used in messages).
TensorMap parseSafetensors(const std::string& bytes, const std::string& name,
                           std::map<std::string, std::string>* metadata = nullptr,
                           const SafetensorsReadOptions& options = {});
/// Write tensors (moved to CPU, made contiguous) atomically. ValueError on an unsupported dtype.
void writeSafetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// The bytes writeSafetensors() would write.
std::string serializeSafetensors(const TensorMap& tensors, const std::map<std::string, std::string>& metadata = {});

/// Parameters and buffers of a module under their dotted names (`layer1.0.conv1.weight`).
/// The tensors share storage with the module (detached).
TensorMap stateDict(const torch::nn::Module& module);

struct LoadOptions {
  bool strict = true;               ///< missing or unexpected keys are errors
  std::vector<std::string> ignore;  ///< key prefixes to skip in the file (e.g. "fc.", "pooler.")
  std::string stripPrefix;          ///< remove this prefix from file keys first (e.g. "bert.")
  /// Keep only the file keys under this prefix, with it removed: one tower of a larger
  /// checkpoint (e.g. "text_encoder." of a biud run). Empty = every key.
  std::string selectPrefix;
  bool allowMissing = false;  ///< with strict: only unexpected/mis-shaped keys are errors
  /// loadModule(): accept NaN/Inf in the file (SafetensorsReadOptions::allowNonFinite).
  bool allowNonFinite = allowNonFiniteDefault();
};

/// What a load did: keys copied, and (non-strict) keys that were skipped.
struct LoadReport {
  std::vector<std::string> loaded, missing, unexpected, mismatched;
  std::string summary() const;
};

/// Copy `tensors` into the module's parameters and buffers (dtype converted, device kept).
/// Shape mismatches are always errors; missing / unexpected keys are errors when strict.
/// The ValueError names `source` and lists the keys (with "did you mean" for near misses).
LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors, const LoadOptions& options = {},
                         const std::string& source = "<tensors>");

/// stateDict() written to a .safetensors file.
void saveModule(const torch::nn::Module& module, const std::string& path,
                const std::map<std::string, std::string>& metadata = {});
/// readSafetensors() + loadStateDict().
LoadReport loadModule(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});

/// "[2,3,4]" — for messages (fmt cannot print LibTorch shapes itself).
std::string shapeStr(at::IntArrayRef shape);

/// Safetensors dtype code ("F32") of a torch dtype; ValueError if it has none.
std::string dtypeCode(torch::Dtype dtype);
/// Torch dtype of a safetensors code; IoError naming `file` if unknown.
torch::Dtype dtypeFromCode(const std::string& code, const std::string& file);

}  // namespace biud::tensor
