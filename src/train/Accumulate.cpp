#include "biud/train/Accumulate.h"

#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::train {

torch::Tensor concatFeature(const std::vector<Features>& all, const std::string& name) {
  std::vector<torch::Tensor> parts;
  parts.reserve(all.size());
  for (const auto& f : all) {
    auto it = f.find(name);
    BIUD_CHECK(it != f.end(), ValueError, "micro-batch features lack `{}`", name);
    parts.push_back(it->second);
  }
  return parts.size() == 1 ? parts.front() : torch::cat(parts, 0);
}

AccumulateResult accumulateWithFeatureCache(int micro, const FeatureFn& forward, const StepLossFn& loss,
                                            const std::function<void(bool)>& setSync) {
  BIUD_CHECK(micro >= 1, ValueError, "gradient accumulation needs >= 1 micro-batch, got {}", micro);
  AccumulateResult out;
  if (micro == 1) {
    std::vector<Features> all{forward(0)};
    auto [l, m] = loss(all);
    if (setSync) setSync(true);
    l.backward();
    out.loss = l.item<double>();
    out.metrics = std::move(m);
    return out;
  }
  std::vector<Features> cache(static_cast<size_t>(micro));
  {
    torch::NoGradGuard ng;
    for (int i = 0; i < micro; ++i) cache[static_cast<size_t>(i)] = forward(i);
  }
  for (int i = 0; i < micro; ++i) {
    std::vector<Features> all = cache;
    all[static_cast<size_t>(i)] = forward(i);
    auto [l, m] = loss(all);
    if (setSync) setSync(i == micro - 1);
    l.backward();
    if (i == micro - 1) {
      out.loss = l.item<double>();
      out.metrics = std::move(m);
    }
  }
  return out;
}

}  // namespace biud::train
