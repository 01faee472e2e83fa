#include "biud/train/TextCache.h"

#include <torch/torch.h>

#include <optional>

#include "biud/core/Error.h"
#include "biud/core/Progress.h"
#include "biud/train/TextBatch.h"

namespace biud::train {

FrozenTextFeatures::FrozenTextFeatures(models::BertModel encoder, const text::Tokenizer& tok, int maxLength,
                                       c10::Device device, int batch)
    : encoder_(std::move(encoder)), tok_(tok), maxLength_(maxLength), device_(device), batch_(batch) {
  for (const auto& p : encoder_->parameters())
    BIUD_CHECK(!p.requires_grad(), ConfigError,
               "cached text features need a frozen text encoder: set model.text_encoder.frozen = true");
}

std::uint64_t FrozenTextFeatures::key(const std::string& text) {
  // FNV-1a over the bytes, then a final mix: distinct reports never share a key in practice
  // (a collision needs ~2^32 reports) and the key costs one pass over the text.
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

void FrozenTextFeatures::encodeMissing(const std::vector<std::string>& texts, const std::string& label) {
  std::vector<std::string> todo;
  std::unordered_map<std::uint64_t, bool> queued;
  for (const auto& t : texts) {
    const auto k = key(t);
    if (!row_.count(k) && !queued.count(k)) {
      queued[k] = true;
      todo.push_back(t);
    }
  }
  if (todo.empty()) return;
  torch::NoGradGuard ng;
  const bool wasTraining = encoder_->is_training();
  encoder_->eval();
  std::optional<Progress> bar;  // only for the up-front pass, not for a few reports met during training
  if (!label.empty()) bar.emplace(label, todo.size(), "report");
  for (std::size_t b = 0; b < todo.size(); b += static_cast<std::size_t>(batch_)) {
    const auto e = std::min(todo.size(), b + static_cast<std::size_t>(batch_));
    std::vector<std::string> part(todo.begin() + static_cast<long>(b), todo.begin() + static_cast<long>(e));
    auto tb = tokenizeBatch(tok_, part, maxLength_);
    auto pooled = encoder_->encode(tb.ids.to(device_), tb.mask.to(device_)).pooled;
    for (std::size_t i = 0; i < part.size(); ++i) {
      row_[key(part[i])] = rows_.size();
      rows_.push_back(pooled[static_cast<long>(i)].clone());
    }
    if (bar) bar->advance(part.size());
  }
  if (bar) bar->finish();
  encoder_->train(wasTraining);
}

void FrozenTextFeatures::precompute(const std::vector<std::string>& texts, const std::string& label) {
  encodeMissing(texts, label);
}

torch::Tensor FrozenTextFeatures::get(const std::vector<std::string>& texts) {
  encodeMissing(texts, "");
  std::vector<torch::Tensor> out;
  out.reserve(texts.size());
  for (const auto& t : texts) out.push_back(rows_[row_.at(key(t))]);
  return torch::stack(out);
}

}  // namespace biud::train
