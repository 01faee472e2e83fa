#include "biud/data/TextCache.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"
#include "biud/data/TextBatch.h"
#include "biud/tensor/Safetensors.h"

namespace biud::data {

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
  std::uint64_t h = fnv1a(text);
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
  // Similar lengths in a batch: less padding (reports run from ~40 to ~200 word pieces). The
  // features do not depend on the batch (masked attention and pooling; tested).
  std::stable_sort(todo.begin(), todo.end(),
                   [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
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
      keys_.push_back(key(part[i]));
      rows_.push_back(pooled[static_cast<long>(i)].clone());
    }
    if (bar) bar->advance(part.size());
  }
  if (bar) bar->finish();
  encoder_->train(wasTraining);
}

void FrozenTextFeatures::precompute(const std::vector<std::string>& texts, const std::string& label) {
  encodeMissing(texts, label);
  save();
}

void FrozenTextFeatures::attachFile(const std::string& file, const std::string& fingerprint, bool write) {
  file_ = file;
  fingerprint_ = fingerprint;
  write_ = write;
  if (!std::filesystem::exists(file)) return;
  std::map<std::string, std::string> meta;
  tensor::TensorMap t;
  try {
    t = tensor::readSafetensors(file, &meta);
  } catch (const Error& e) {
    log::warn("text", "ignoring the text-feature cache `{}` ({}); it will be rewritten", file, e.what());
    return;
  }
  if (meta["fingerprint"] != fingerprint || !t.count("features") || !t.count("keys")) {
    log::info("text", "the text-feature cache `{}` belongs to another encoder or tokenizer; it will be rewritten",
              file);
    return;
  }
  const bool wasEmpty = rows_.empty();  // rows cached before attaching are not in the file yet
  auto feats = t.at("features").to(device_);
  auto keys = t.at("keys").contiguous();
  BIUD_CHECK(keys.size(0) == feats.size(0), DataError, "`{}`: {} keys but {} feature rows; delete the file", file,
             keys.size(0), feats.size(0));
  const auto* k = keys.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < keys.size(0); ++i) {
    const auto key = static_cast<std::uint64_t>(k[i]);
    if (row_.count(key)) continue;
    row_[key] = rows_.size();
    keys_.push_back(key);
    rows_.push_back(feats[i]);
  }
  if (wasEmpty) saved_ = rows_.size();
  log::info("text", "{} report features from {}", keys.size(0), file);
}

void FrozenTextFeatures::save() const {
  if (file_.empty() || !write_ || rows_.size() == saved_) return;
  std::vector<std::int64_t> k(keys_.begin(), keys_.end());
  auto keys = torch::from_blob(k.data(), {static_cast<std::int64_t>(k.size())}, torch::kInt64).clone();
  std::filesystem::create_directories(std::filesystem::path(file_).parent_path());
  tensor::writeSafetensors(file_, {{"features", torch::stack(rows_).cpu().contiguous()}, {"keys", keys}},
                           {{"fingerprint", fingerprint_}, {"format", "biud-text-features-1"}});
  saved_ = rows_.size();
}

std::pair<std::string, std::string> FrozenTextFeatures::fileFor(const std::string& cacheDir, const std::string& weights,
                                                                const std::string& vocab, int maxLength,
                                                                const std::string& pool) {
  if (cacheDir.empty() || weights.empty()) return {};
  namespace sfs = std::filesystem;
  auto stamp = [](const std::string& p) {
    // path, size and modification time: a re-exported checkpoint or vocabulary gets a new file
    std::error_code ec;
    const auto abs = sfs::absolute(p, ec).lexically_normal().string();
    std::string s = abs;
    if (sfs::is_regular_file(p, ec)) {
      s += fmt::format(":{}:{}", sfs::file_size(p, ec), sfs::last_write_time(p, ec).time_since_epoch().count());
    } else if (sfs::is_directory(p, ec)) {
      for (const auto* f : {"model.safetensors", "pytorch_model.bin", "config.json"})
        if (sfs::exists(sfs::path(p) / f, ec))
          s += fmt::format(":{}:{}", sfs::file_size(sfs::path(p) / f, ec),
                           sfs::last_write_time(sfs::path(p) / f, ec).time_since_epoch().count());
    }
    return s;
  };
  const std::string fp =
      fmt::format("weights={}|vocab={}|max_length={}|pool={}", stamp(weights), stamp(vocab), maxLength, pool);
  return {(sfs::path(cacheDir) / "text_features" / fmt::format("{:016x}.safetensors", key(fp))).string(), fp};
}

torch::Tensor FrozenTextFeatures::get(const std::vector<std::string>& texts) {
  encodeMissing(texts, "");
  std::vector<torch::Tensor> out;
  out.reserve(texts.size());
  for (const auto& t : texts) out.push_back(rows_[row_.at(key(t))]);
  return torch::stack(out);
}

std::unique_ptr<FrozenTextFeatures> makeFrozenTextFeatures(const Config& cfg, models::BertModel encoder,
                                                           const text::Tokenizer& tok, c10::Device device,
                                                           bool writer) {
  auto c = std::make_unique<FrozenTextFeatures>(std::move(encoder), tok, cfg.text.max_length, device);
  const auto& t = cfg.model.text_encoder;
  auto [file, fingerprint] = FrozenTextFeatures::fileFor(
      cfg.data.cache_dir, t.weights, cfg.text.vocab, cfg.text.max_length,
      t.pool + "|" + t.weights_prefix + "|" + cfg.text.tokenizer + (cfg.text.lowercase ? "|lower" : "|cased"));
  if (!file.empty()) c->attachFile(file, fingerprint, writer);
  return c;
}

}  // namespace biud::data
