#include "biud/train/Ema.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::train {

WeightEma::WeightEma(torch::nn::Module& module, double decay, bool warmup) : decay_(decay), warmup_(warmup) {
  BIUD_CHECK(decay > 0 && decay < 1, ConfigError, "trainer.ema = {}: the decay must be in (0, 1), e.g. 0.999 (0 = off)",
             decay);
  torch::NoGradGuard ng;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!p.value().requires_grad()) continue;
    names_.push_back(p.key());
    live_.push_back(p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (!b.value().is_floating_point()) continue;
    names_.push_back(b.key());
    live_.push_back(b.value());
  }
  for (const auto& t : live_) shadow_.push_back(t.detach().clone());
}

void WeightEma::reset() {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < live_.size(); ++i) shadow_[i].copy_(live_[i].detach());
  updates_ = 0;
}

double WeightEma::nextDecay() const {
  if (!warmup_) return decay_;
  const double n = static_cast<double>(updates_);
  return std::min(decay_, (1.0 + n) / (10.0 + n));
}

void WeightEma::update() {
  torch::NoGradGuard ng;
  const double d = nextDecay();
  // shadow += (1 - d) * (weight - shadow), in the shadow's dtype
  for (size_t i = 0; i < live_.size(); ++i) shadow_[i].lerp_(live_[i].detach().to(shadow_[i].dtype()), 1.0 - d);
  ++updates_;
}

void WeightEma::swap() {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < live_.size(); ++i) {
    auto tmp = live_[i].detach().clone();
    live_[i].detach().copy_(shadow_[i]);
    shadow_[i].copy_(tmp);
  }
}

tensor::TensorMap WeightEma::state() const {
  tensor::TensorMap out;
  for (size_t i = 0; i < names_.size(); ++i) out[names_[i]] = shadow_[i];
  return out;
}

void WeightEma::load(const tensor::TensorMap& averages, std::int64_t updates, const std::string& source) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < names_.size(); ++i) {
    auto it = averages.find(names_[i]);
    BIUD_CHECK(it != averages.end(), ValueError,
               "{} has no average for `{}`: written by a run with other trainable weights", source, names_[i]);
    BIUD_CHECK(it->second.sizes() == shadow_[i].sizes(), ValueError, "{}: `{}` has shape {}, the model's is {}", source,
               names_[i], tensor::shapeStr(it->second.sizes()), tensor::shapeStr(shadow_[i].sizes()));
    shadow_[i].copy_(it->second);
  }
  updates_ = updates;
}

bool applyEma(torch::nn::Module& module, const std::string& path) {
  if (!std::filesystem::exists(path)) return false;
  tensor::LoadOptions lo;
  lo.strict = true;
  lo.allowMissing = true;  // frozen weights are not in the file: they keep the checkpoint's values
  tensor::loadModule(module, path, lo);
  return true;
}

}  // namespace biud::train
