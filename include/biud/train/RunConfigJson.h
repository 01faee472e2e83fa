#pragma once
/// \file RunConfigJson.h
/// Self-describing checkpoints: every checkpoint folder carries a `config.json` that names, for
/// each network of the model, its architecture with every width resolved (no preset lookup
/// needed), its pooling and normalisation; the tokenizer (its files copied beside: vocab.txt +
/// tokenizer_config.json, or spm.model); the CT/X-ray preprocessing and the embedding size. The
/// weights files carry safetensors `__metadata__` with the format version. The Python package
/// (python/biud, docs/python.md) builds its modules from this file alone.
///
///     {"format": "biud-checkpoint", "format_version": 1, "task": "biud", "step": 1250,
///      "embed_dim": 128,
///      "modules": {"ct_encoder": {"type": "resnet", "arch": "resnet3d18", "spatial_dims": 3,
///                                 "block": "basic", "layers": [2,2,2,2], "width": 8, ...},
///                  "text_encoder": {"type": "bert", "hidden_size": 384, ...},
///                  "ct_proj": {"type": "projection", "in": 64, "out": 128, ...}, ...},
///      "embeddings": {"ct": {"encoder": "ct_encoder", "head": "ct_proj"}, ...},
///      "tokenizer": {"kind": "wordpiece", "vocab": "vocab.txt", ...},
///      "preprocessing": {"ct": {"spacing": [...], "hash": "...", ...}, "xray": {...}}}
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"

namespace biud::train {

/// Version of the checkpoint folder layout (config.json `format_version`, safetensors metadata
/// `biud_checkpoint_format`). Raise it when a reader of version N could misread the new folders.
constexpr int kCheckpointFormatVersion = 1;

/// The safetensors `__metadata__` of a checkpoint's weights files: format = pt (the HF
/// convention), biud_checkpoint_format = the version, task, step.
std::map<std::string, std::string> checkpointMetadata(const Config& cfg, std::int64_t step);

/// config.json of a checkpoint of `module` (the task's model) trained with `cfg`. Networks the
/// description does not know are listed with `"type": "unknown"` (never an error). `tokenizerFiles`
/// receives the files to copy beside it (destination name -> source path).
nlohmann::json describeCheckpoint(const Config& cfg, torch::nn::Module& module, std::int64_t step,
                                  std::map<std::string, std::string>* tokenizerFiles = nullptr);

/// Write `dir`/config.json and the tokenizer files (atomically; IoError naming the file when a
/// write fails, like the rest of the checkpoint).
void writeCheckpointConfig(const std::filesystem::path& dir, const Config& cfg, torch::nn::Module& module,
                           std::int64_t step);

}  // namespace biud::train
