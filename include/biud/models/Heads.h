#pragma once
/// \file Heads.h
/// Small heads of the method: projections into the shared space, the distillation adapter
/// (student width d -> teacher width d_X) and the learnable temperature.
#include <torch/torch.h>

namespace biud::models {

/// Linear (hidden = 0) or Linear-GELU-Linear (hidden > 0) projection, optionally L2-normalised.
/// Names: `proj` (linear) or `fc1`/`fc2` (MLP).
class ProjectionHeadImpl : public torch::nn::Module {
 public:
  ProjectionHeadImpl(std::int64_t in, std::int64_t out, std::int64_t hidden = 0, bool normalize = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  bool normalize;
};
TORCH_MODULE(ProjectionHead);

/// Linear map from the CT encoder's width d to the X-ray teacher's width d_X (`proj`).
/// With `bias` false (METHOD §3: A is linear; model.adapter_bias) `proj` has no trained bias and
/// `proj.bias` is a buffer of zeros added in forward: the checkpoint keeps the key, so weights of
/// an adapter trained with a bias load into either form and compute what they computed.
class DistillAdapterImpl : public torch::nn::Module {
 public:
  DistillAdapterImpl(std::int64_t d, std::int64_t dX, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = proj->forward(x);
    return fixed_bias.defined() ? y + fixed_bias : y;
  }
  torch::nn::Linear proj{nullptr};
  torch::Tensor fixed_bias;  ///< the buffer `proj.bias` when `bias` is false (zeros unless loaded); else undefined
};
TORCH_MODULE(DistillAdapter);

/// Learnable softmax temperature tau, stored as log(tau) (`log_tau`) so it stays positive;
/// tau is clamped to [minTau, maxTau] in forward (CLIP clamps its logit scale at 100 = tau 0.01).
class TemperatureImpl : public torch::nn::Module {
 public:
  explicit TemperatureImpl(double init = 0.07, double minTau = 0.01, double maxTau = 1.0, bool learnable = true);
  /// tau (a scalar tensor).
  torch::Tensor forward();
  /// 1 / tau, the logit scale.
  torch::Tensor scale() { return forward().reciprocal(); }
  torch::Tensor log_tau;
  double minTau, maxTau;
};
TORCH_MODULE(Temperature);

}  // namespace biud::models
