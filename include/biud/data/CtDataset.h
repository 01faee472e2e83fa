#pragma once
/// \file CtDataset.h
/// CT volumes with their reports and labels as tensors: from the preprocessed cache
/// (memory-mapped, fast) or, slower, from the raw files through the same preprocessing.
///
/// A volume tensor is float32 [1, D, H, W] = [1, z, y, x] of the canonical LPS volume
/// (W grows towards the patient's left, H towards posterior, D towards superior).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/config/DataConfig.h"
#include "biud/image/CtCache.h"
#include "biud/image/Manifest.h"

namespace biud::data {

struct CtSample {
  std::int64_t index = -1;  ///< dataset index
  std::string id, text, group;
  torch::Tensor volume;  ///< [1, D, H, W] float32
  torch::Tensor labels;  ///< [L] float32, NaN = unknown
};

struct CtBatch {
  std::vector<std::int64_t> indices;
  std::vector<std::string> ids, texts, groups;
  torch::Tensor volume;  ///< [B, 1, D, H, W]
  torch::Tensor labels;  ///< [B, L]
  std::int64_t size() const { return static_cast<std::int64_t>(ids.size()); }
};

/// Random augmentation of one volume [1, D, H, W] (in place or new), driven by `seed` only, so
/// that the same (seed) gives the same result in any thread. Crop (random window of
/// cfg.random_crop = x, y, z voxels), left-right flip (W), intensity v * s + t.
torch::Tensor augmentVolume(const torch::Tensor& vol, const AugmentConfig& cfg, std::uint64_t seed);

class CtDataset {
 public:
  /// Items of `manifest` listed in `indices` (e.g. one split). With `cacheDir` non-empty the
  /// volumes come from the cache, whose preprocessing hash must match `cfg.ct` (else ConfigError);
  /// items that biud-preprocess could not read (listed in the cache's failures.jsonl) are left
  /// out with a warning, so size() may be below indices.size(); other items missing from the
  /// cache are an error naming them.
  CtDataset(std::shared_ptr<const image::Manifest> manifest, std::vector<size_t> indices, DataConfig cfg,
            const std::string& cacheDir);

  std::int64_t size() const { return static_cast<std::int64_t>(indices_.size()); }
  /// Sample `i` (0 <= i < size()); `augmentSeed` != 0 applies cfg.augment with that seed.
  CtSample get(std::int64_t i, std::uint64_t augmentSeed = 0) const;
  /// Group names (patient, or id) per dataset index, for the unique-patient sampler.
  std::vector<std::string> groups() const;
  const image::ManifestItem& item(std::int64_t i) const { return manifest_->items[indices_[static_cast<size_t>(i)]]; }
  const DataConfig& config() const { return cfg_; }
  bool cached() const { return cache_ != nullptr; }

 private:
  std::shared_ptr<const image::Manifest> manifest_;
  std::vector<size_t> indices_;
  DataConfig cfg_;
  std::unique_ptr<image::CacheReader> cache_;
  std::vector<const image::CacheEntry*> entries_;
};

}  // namespace biud::data
