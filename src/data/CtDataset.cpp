#include "biud/data/CtDataset.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "OutOfMemory.h"
#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/image/CtCache.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"
#include "biud/image/VolumeIO.h"

namespace biud::data {

torch::Tensor augmentVolume(const torch::Tensor& vol, const AugmentConfig& cfg, std::uint64_t seed) {
  Rng rng(seed);
  torch::Tensor v = vol;
  if (!cfg.random_crop.empty()) {
    BIUD_CHECK(cfg.random_crop.size() == 3, ConfigError, "data.augment.random_crop needs 3 values (x, y, z), got {}",
               cfg.random_crop.size());
    // random_crop is (x, y, z); the tensor is [C, z, y, x].
    std::int64_t start[3];
    for (int d = 0; d < 3; ++d) {
      const std::int64_t n = v.size(3 - d), c = cfg.random_crop[static_cast<size_t>(d)];
      BIUD_CHECK(c >= 1 && c <= n, ConfigError,
                 "data.augment.random_crop[{}] = {} does not fit the volume ({} voxels along that axis)", d, c, n);
      start[d] = rng.uniformInt(0, n - c);
    }
    v = v.narrow(3, start[0], cfg.random_crop[0])
            .narrow(2, start[1], cfg.random_crop[1])
            .narrow(1, start[2], cfg.random_crop[2]);
  }
  if (cfg.flip && rng.bernoulli(0.5)) v = v.flip({3});
  if (cfg.intensity_scale > 0 || cfg.intensity_shift > 0) {
    const double s = cfg.intensity_scale > 0 ? rng.uniform(1.0 - cfg.intensity_scale, 1.0 + cfg.intensity_scale) : 1.0;
    const double t = cfg.intensity_shift > 0 ? rng.uniform(-cfg.intensity_shift, cfg.intensity_shift) : 0.0;
    v = v * s + t;
  }
  return v.contiguous();
}

CtDataset::CtDataset(std::shared_ptr<const image::Manifest> manifest, std::vector<size_t> indices, DataConfig cfg,
                     const std::string& cacheDir)
    : manifest_(std::move(manifest)), indices_(std::move(indices)), cfg_(std::move(cfg)) {
  BIUD_CHECK(manifest_ != nullptr, ValueError, "CtDataset: no manifest");
  for (size_t i : indices_)
    BIUD_CHECK(i < manifest_->items.size(), ValueError, "CtDataset: index {} beyond the manifest's {} items", i,
               manifest_->items.size());
  if (!cacheDir.empty()) {
    cache_ = std::make_unique<image::CacheReader>(cacheDir, image::preprocessHash(cfg_.ct),
                                                  image::describePreprocess(cfg_.ct));
    // Items biud-preprocess could not read are listed in the cache's failures.jsonl: they are
    // left out (with a warning), so one damaged volume does not stop a run. An item missing for
    // any other reason (never preprocessed) is an error.
    const auto failed = image::readCacheFailures(cacheDir);
    std::vector<std::string> missing, skipped;
    std::vector<size_t> kept;
    for (size_t i : indices_) {
      const auto* e = cache_->find(manifest_->items[i].id);
      if (!e && failed.count(manifest_->items[i].id)) {
        skipped.push_back(manifest_->items[i].id);
        continue;
      }
      if (!e) missing.push_back(manifest_->items[i].id);
      entries_.push_back(e);
      kept.push_back(i);
    }
    BIUD_CHECK(missing.empty(), DataError,
               "cache `{}` lacks {} item(s) of manifest `{}` (first: `{}`); rerun biud-preprocess or check "
               "failures.jsonl there",
               cacheDir, missing.size(), manifest_->path, missing.front());
    if (!skipped.empty())
      log::warn("data",
                "{} item(s) of `{}` are left out: biud-preprocess could not read them ({}/failures.jsonl; "
                "first: `{}`)",
                skipped.size(), manifest_->path, cacheDir, skipped.front());
    indices_ = std::move(kept);
  }
}

std::vector<std::string> CtDataset::groups() const {
  std::vector<std::string> g;
  g.reserve(indices_.size());
  for (size_t i : indices_) g.push_back(manifest_->items[i].group());
  return g;
}

CtSample CtDataset::get(std::int64_t i, std::uint64_t augmentSeed) const {
  BIUD_CHECK(i >= 0 && i < size(), ValueError, "CtDataset: index {} out of range [0, {})", i, size());
  const auto& it = item(i);
  CtSample s;
  s.index = i;
  s.id = it.id;
  s.group = it.group();
  s.text = it.text(cfg_.report_sections);
  s.labels = torch::empty({static_cast<std::int64_t>(it.labels.size())}, torch::kFloat32);
  std::copy(it.labels.begin(), it.labels.end(), s.labels.data_ptr<float>());
  std::vector<std::int64_t> shape;  // [1, z, y, x], for the out-of-memory message
  try {
    if (cache_) {
      const auto* e = entries_[static_cast<size_t>(i)];
      shape = {1, e->shape[2], e->shape[1], e->shape[0]};
      s.volume = torch::empty(shape, torch::kFloat32);
      cache_->decode(*e, s.volume.data_ptr<float>());
    } else {
      BIUD_CHECK(!it.images.empty(), DataError, "manifest `{}` line {}: item `{}` has no image", manifest_->path,
                 it.line, it.id);
      // The manifest's header overrides (spacing, rescale, ...) apply here as in biud-preprocess.
      // (preprocessCt reports its own out-of-memory with the keys that sized its buffers.)
      image::Volume v = image::preprocessCt(image::readItemVolume(it, nullptr, cfg_.ct.spacing_range), cfg_.ct);
      shape = {1, v.size[2], v.size[1], v.size[0]};
      s.volume = torch::empty(shape, torch::kFloat32);
      std::copy(v.data.begin(), v.data.end(), s.volume.data_ptr<float>());
    }
    if (augmentSeed != 0) s.volume = augmentVolume(s.volume, cfg_.augment, augmentSeed);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    if (!detail::isOutOfMemory(e)) throw;
    double voxels = shape.empty() ? 0.0 : 1.0;
    for (auto d : shape) voxels *= static_cast<double>(d);
    const auto& size = cfg_.ct.size;
    BIUD_THROW(ConfigError,
               "out of memory allocating CT `{}`: a {} float32 volume takes {} (data.ct.size [{}]); lower "
               "data.ct.size, or data.loader.batch_size ({}), data.loader.workers ({}) and data.loader.prefetch "
               "({}), which keep several volumes in memory at once",
               it.id, fmt::join(shape, "x"), detail::bytesText(4.0 * voxels), fmt::join(size, ", "),
               cfg_.loader.batch_size, cfg_.loader.workers, cfg_.loader.prefetch);
  }
  return s;
}

}  // namespace biud::data
