#pragma once
/// \file TextCache.h
/// Pooled features of a frozen text encoder, computed once per distinct report and then reused.
///
/// A frozen encoder (model.text_encoder.frozen: no gradients, eval mode) maps a report to the
/// same features at every step, so encoding it again each step only costs time. With a real
/// pretrained BERT (e.g. a 6-layer MiniLM) one forward of 32 reports x 128 tokens takes about
/// 1.8 s on two CPU cores: cached, a step only pays for the projection head. The features are
/// computed in eval mode and equal `encoder->encode(ids, mask).pooled` of the same tokens.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "biud/config/Config.h"
#include "biud/models/Bert.h"
#include "biud/text/Tokenizer.h"

namespace biud::data {

class FrozenTextFeatures {
 public:
  /// `encoder` must be frozen (its parameters need no gradient); `tok` must outlive this object.
  FrozenTextFeatures(models::BertModel encoder, const text::Tokenizer& tok, int maxLength, c10::Device device,
                     int batch = 32);

  /// Encode every text not cached yet, `batch` at a time, with a progress bar named `label`.
  void precompute(const std::vector<std::string>& texts, const std::string& label);
  /// [B, H] pooled features of `texts`, in order, on the encoder's device (missing ones are
  /// encoded first).
  torch::Tensor get(const std::vector<std::string>& texts);

  std::size_t size() const { return row_.size(); }

  /// Keep the features in `file` across processes (the teacher's training, biud-retrieve and
  /// stage 1 all embed the same reports with the same frozen encoder): rows already in the file
  /// are loaded when its `fingerprint` (encoder weights, tokenizer, max_length, pooling) equals
  /// this one, and save() writes every cached row back atomically. A file with another
  /// fingerprint is ignored (and replaced by save()).
  void attachFile(const std::string& file, const std::string& fingerprint, bool write = true);
  void save() const;
  /// The features file for a frozen encoder under `cacheDir`, and its fingerprint; empty when
  /// the encoder has no weights file (a randomly initialised encoder is not worth keeping).
  static std::pair<std::string, std::string> fileFor(const std::string& cacheDir, const std::string& weights,
                                                     const std::string& vocab, int maxLength, const std::string& pool);

 private:
  static std::uint64_t key(const std::string& text);
  void encodeMissing(const std::vector<std::string>& texts, const std::string& label);

  models::BertModel encoder_;
  const text::Tokenizer& tok_;
  int maxLength_;
  c10::Device device_;
  int batch_;
  std::string file_, fingerprint_;
  bool write_ = false;
  mutable std::size_t saved_ = 0;    ///< rows already in the file (save() writes only when more exist)
  std::vector<torch::Tensor> rows_;  ///< one [H] tensor per cached text
  std::unordered_map<std::uint64_t, std::size_t> row_;
  std::vector<std::uint64_t> keys_;  ///< key of each row (for save())
};

/// The cache for the frozen text encoder `encoder` of `cfg` (model.text_encoder, text.*), with its
/// features file under data.cache_dir when the encoder has a weights file; only a `writer`
/// (rank 0) writes the file.
std::unique_ptr<FrozenTextFeatures> makeFrozenTextFeatures(const Config& cfg, models::BertModel encoder,
                                                           const text::Tokenizer& tok, c10::Device device, bool writer);

}  // namespace biud::data
