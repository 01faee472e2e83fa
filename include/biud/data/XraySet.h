#pragma once
/// \file XraySet.h
/// An X-ray split held in memory: images preprocessed once (data.xray: pad to square, resize)
/// into one [N, 1, S, S] tensor, with reports and labels. Sized for corpora that fit in RAM
/// (the synthetic corpus, or a few hundred thousand images at 224 px in float16 on a large
/// machine); larger corpora belong in the sharded cache.
#include <string>
#include <vector>

#include <torch/types.h>

#include "biud/config/DataConfig.h"
#include "biud/image/Manifest.h"

namespace biud::data {

struct XraySet {
  std::vector<std::string> ids, texts, groups;
  torch::Tensor images;  ///< [N, 1, S, S] float32 in [0, 1]
  torch::Tensor labels;  ///< [N, L] float32, NaN = unknown
  std::vector<std::string> labelNames;
  std::int64_t size() const { return static_cast<std::int64_t>(ids.size()); }
};

/// Load the items of `manifest` in `split` ("" = all). Unreadable images are skipped with a
/// warning (and counted); none readable is a DataError naming the manifest.
XraySet loadXraySet(const image::Manifest& manifest, const std::string& split, const DataConfig& cfg, int threads = 0);

}  // namespace biud::data
