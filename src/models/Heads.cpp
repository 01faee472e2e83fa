#include "biud/models/Heads.h"

#include <cmath>

#include "biud/core/Error.h"

namespace biud::models {

namespace F = torch::nn::functional;

ProjectionHeadImpl::ProjectionHeadImpl(std::int64_t in, std::int64_t out, std::int64_t hidden, bool normalize_)
    : normalize(normalize_) {
  BIUD_CHECK(in > 0 && out > 0 && hidden >= 0, ConfigError,
             "projection head: widths must be positive ({} -> {} via {})", in, out, hidden);
  if (hidden == 0) {
    proj = register_module("proj", torch::nn::Linear(in, out));
  } else {
    fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, out));
  }
}

torch::Tensor ProjectionHeadImpl::forward(const torch::Tensor& x) {
  auto y = proj ? proj->forward(x) : fc2->forward(torch::gelu(fc1->forward(x)));
  return normalize ? F::normalize(y, F::NormalizeFuncOptions().dim(-1)) : y;
}

DistillAdapterImpl::DistillAdapterImpl(std::int64_t d, std::int64_t dX, bool bias) {
  BIUD_CHECK(d > 0 && dX > 0, ConfigError, "distillation adapter: widths must be positive ({} -> {})", d, dX);
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(d, dX).bias(bias)));
  // Linear registers an undefined `bias` parameter when it has none (parameters() skips it); the
  // buffer of the same name is what a state dict sees.
  if (!bias) fixed_bias = proj->register_buffer("bias", torch::zeros({dX}));
}

TemperatureImpl::TemperatureImpl(double init, double minTau_, double maxTau_, bool learnable)
    : minTau(minTau_), maxTau(maxTau_) {
  BIUD_CHECK(minTau > 0 && minTau <= init && init <= maxTau, ConfigError,
             "temperature: need 0 < min ({}) <= init ({}) <= max ({})", minTau, init, maxTau);
  auto t = torch::tensor(std::log(init));
  log_tau = learnable ? register_parameter("log_tau", t) : register_buffer("log_tau", t);
}

torch::Tensor TemperatureImpl::forward() {
  // Clamping the log keeps the gradient zero outside the range (the value cannot run away).
  return log_tau.clamp(std::log(minTau), std::log(maxTau)).exp();
}

}  // namespace biud::models
