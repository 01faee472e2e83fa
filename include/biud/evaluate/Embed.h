#pragma once
/// \file Embed.h
/// biud-embed: embed report texts and CT volumes (and X-rays) with the networks of a config or
/// of a trained run, and time one network's training step (--bench).
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"

namespace biud::evaluate {

/// The non-blank lines of a text file (one report per line).
std::vector<std::string> readTextLines(const std::string& path);

struct EmbedOptions {
  std::string texts;                 ///< text file, one report per line
  std::vector<std::string> volumes;  ///< CT tensors (.npy/.safetensors) or, with a run, CT images
  std::vector<std::string> xrays;    ///< X-ray images (clip2d run)
  std::string tensorKey;             ///< tensor name inside .safetensors volumes
  std::string run;                   ///< trained run folder: embed into its shared space
  int maxLen = 128;                  ///< longest token sequence (config networks)
  int batch = 8;                     ///< texts per forward pass
  bool saveTokens = false;           ///< also write volume_tokens_<i>
  /// Called once the inputs are checked: the output folder.
  std::function<std::string()> prepareOut;
};

struct EmbedResult {
  std::string out, embeddings;           ///< output folder, <out>/embeddings.safetensors
  nlohmann::json summary;                ///< what <out>/biud-embed.json holds
  std::vector<nlohmann::json> failures;  ///< volumes skipped (index, file, error)
  std::size_t volumes = 0;               ///< volumes asked for
};

/// Embed and write <out>/embeddings.safetensors, <out>/failures.jsonl and <out>/biud-embed.json.
/// With `run`: its networks, outputs text_embedding, volume_embedding (+ volume_adapted for a
/// biud run), volume_index, xray_embedding; else the config's text encoder (an HF BERT folder in
/// model.text_encoder.weights) and CT encoder: text_pooled, volume_pooled, volume_index. A volume
/// that cannot be read is skipped and listed; DataError when none could be read.
EmbedResult embed(const EmbedOptions& opt, const Config& cfg, const c10::Device& device);

struct BenchOptions {
  std::string net = "ct";  ///< ct (model.ct_encoder), xray (model.xray_encoder), text
  std::vector<int> input;  ///< D,H,W or H,W; empty: the preset's
  int batch = 2, seq = 128, iters = 5, warmup = 2;
  std::string precision = "fp32";  ///< fp32 or bf16 (autocast)
  std::string optimizer = "none";  ///< none or adamw (a full step with the config's optimizer)
};

/// Time forward+backward (with `adamw`: the whole step) of one network on random inputs: JSON
/// with ms_each, ms_median, ms_fwd_bwd (mean), params, input, peak_rss_mb, ...
nlohmann::json benchNetwork(const BenchOptions& opt, Config& cfg, const c10::Device& device);

}  // namespace biud::evaluate
