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
/// Also: module state dicts (parameters + buffers under their dotted names) and loading a state
/// dict into a module with one clear error that lists missing, unexpected and mis-shaped keys.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace biud::tensor {

/// Named tensors in name order (safetensors files are written sorted by name).
using TensorMap = std::map<std::string, torch::Tensor>;

/// Read every tensor of a .safetensors file onto the CPU. IoError naming the file on a truncated
/// file, a bad header, an unknown dtype or offsets outside the data block.
TensorMap readSafetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
/// Parse safetensors bytes already in memory (`name` is used in messages).
TensorMap parseSafetensors(const std::string& bytes, const std::string& name,
                           std::map<std::string, std::string>* metadata = nullptr);
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
  bool allowMissing = false;        ///< with strict: only unexpected/mis-shaped keys are errors
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
