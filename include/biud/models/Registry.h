#pragma once
/// \file Registry.h
/// Networks from config: architecture name -> factory, size presets (tiny for CPU tests, base
/// for the paper's sizes), per-field overrides from `NetConfig`, and initial weights.
///
///     model:
///       ct_encoder: {arch: vit3d, preset: base, patch: [16, 16, 16], pool: cls}
///       text_encoder: {arch: bert, weights: /models/BiomedBERT}   # HF folder
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/config/ModelConfig.h"
#include "biud/models/Bert.h"
#include "biud/models/Encoder.h"
#include "biud/models/Fusion.h"
#include "biud/models/ReportDecoder.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

using VisualFactory = std::function<std::shared_ptr<VisualEncoderImpl>(const NetConfig&)>;

/// Add an architecture (a later registration under the same name replaces the earlier one).
void registerVisualEncoder(const std::string& name, VisualFactory factory);
/// Names of the image / volume encoders (built in: vit3d, resnet3d18/34/50, resnet18/50, vit_b16, vit2d).
std::vector<std::string> visualEncoderNames();
/// Build the encoder `cfg.arch` at `cfg.preset` with the overrides; loads `cfg.weights`;
/// `frozen` puts it in eval mode without gradients. ConfigError naming the arch if unknown.
std::shared_ptr<VisualEncoderImpl> makeVisualEncoder(const NetConfig& cfg);

/// BERT from a preset, or from an HF folder's config.json when `cfg.weights` is a folder
/// (then its weights are loaded).
BertModel makeTextEncoder(const NetConfig& cfg);
/// Fusion encoder with `cfg.depth` layers of the text encoder's width; MLM head tied to
/// `text`'s word embeddings.
FusionEncoder makeFusionEncoder(const NetConfig& cfg, const BertModel& text, std::int64_t ctDim);
/// Special token ids of a report decoder: the tokenizer's BOS/EOS/padding (for a WordPiece
/// tokenizer its [CLS]/[SEP]/[PAD]). The defaults are BERT's (bert-base-uncased vocab.txt).
struct DecoderSpecialIds {
  std::int64_t bos = 101, eos = 102, pad = 0;
};
/// Report decoder over CT tokens `memoryDim` wide: `cfg.preset` (tiny 64x2x4, small 384x4x6,
/// large 768x12x12; anything else the ReportDecoderOptions defaults) with the overrides
/// dim/depth/heads/max_len/dropout, vocabulary `cfg.vocab_size`, else `vocab`, else BERT's;
/// generation starts with `special.bos` and ends at `special.eos`. Loads `cfg.weights`, freezes
/// when `cfg.frozen`. ConfigError naming the ids when one is outside the vocabulary.
ReportDecoder makeReportDecoder(const NetConfig& cfg, std::int64_t memoryDim, std::int64_t vocab = 0,
                                const DecoderSpecialIds& special = {});

/// An HF checkpoint folder: config.json, model.safetensors, vocab.txt.
struct HfCheckpoint {
  std::string folder, config, weights, vocab;
};
/// Locate the files of an HF folder. A folder with only pytorch_model.bin is an IoError that
/// explains the conversion (pickle .bin files are not read by biud).
HfCheckpoint findHfCheckpoint(const std::string& folder);
/// Load weights from a .safetensors file or an HF folder into `module`. Keys are matched after
/// stripping a `bert.` / `model.` prefix when the module has no such prefix.
tensor::LoadReport loadWeights(torch::nn::Module& module, const std::string& weights,
                               const tensor::LoadOptions& options = {});

/// Freeze: eval mode and requires_grad(false) on every parameter.
void freeze(torch::nn::Module& module);
/// Training mode for `module`, except its frozen parts: train() reaches every submodule, which
/// would turn a frozen encoder's dropout (and batch-norm statistics) back on. Every submodule
/// whose parameters all have requires_grad(false) goes back to eval mode; modules without
/// parameters of their own follow their parent. Tasks call this at the start of a step.
void trainMode(torch::nn::Module& module);

/// A TorchScript module (torch.jit.save of a Python model) used as a frozen teacher encoder.
/// Its forward must take one image tensor and return a tensor [B,D], or a tuple/dict whose first
/// entry (or key "pooled") is [B,D] and optionally a second entry (or "tokens") [B,N,D].
class TorchScriptEncoderImpl : public VisualEncoderImpl {
 public:
  TorchScriptEncoderImpl(const std::string& path, std::int64_t dim, int spatialDims = 2);
  EncoderOutput encode(const torch::Tensor& x) override;
  std::int64_t dim() const override { return dim_; }
  int spatialDims() const override { return dims_; }

 private:
  std::string path_;
  std::shared_ptr<void> module_;  // torch::jit::Module, kept out of this header
  std::int64_t dim_;
  int dims_;
};

}  // namespace biud::models
