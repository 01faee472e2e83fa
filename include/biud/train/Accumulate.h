#pragma once
/// \file Accumulate.h
/// Gradient accumulation for contrastive losses with feature caching (open_clip's
/// `accum_freq`): the loss of an optimizer step must see the negatives of *all* its
/// micro-batches, not only its own. Pass 1 computes every micro-batch's features without
/// gradient; pass 2 recomputes micro-batch m with gradient, evaluates the full loss with the
/// cached features of the others, and back-propagates. Summed over m this is exactly the
/// gradient of the full-batch loss, at the memory cost of one micro-batch.
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "biud/train/MetricSink.h"

namespace biud::train {

/// Features of one micro-batch by name ("image", "text", ...), each [b_m, ...].
using Features = std::map<std::string, torch::Tensor>;

/// Forward micro-batch `m` under the current grad mode.
using FeatureFn = std::function<Features(int m)>;
/// Loss of the whole step from every micro-batch's features (concatenate along dim 0 in order).
using StepLossFn = std::function<std::pair<torch::Tensor, Metrics>(const std::vector<Features>& all)>;

struct AccumulateResult {
  double loss = 0;  ///< the full-batch loss (from the last pass; identical in every pass)
  Metrics metrics;
};

/// Runs both passes and leaves the summed gradients in `.grad`. With `micro` = 1 it is a plain
/// forward + backward.
/// `setSync(last)` is called before each backward (see StepContext::setSync).
AccumulateResult accumulateWithFeatureCache(int micro, const FeatureFn& forward, const StepLossFn& loss,
                                            const std::function<void(bool)>& setSync = {});

/// Concatenate feature `name` over micro-batches.
torch::Tensor concatFeature(const std::vector<Features>& all, const std::string& name);

}  // namespace biud::train
