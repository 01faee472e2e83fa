#pragma once
/// \file LossOutput.h
/// What every loss returns: the differentiable total plus named terms and diagnostics that a
/// trainer logs without knowing them (false-negative rate, masked-token accuracy, temperature).
///
/// Terms and metrics are 0-dim tensors, detached, on the loss's device. They stay on the device
/// on purpose: converting each to a double inside the loss would force one GPU synchronisation
/// per value and step. `scalars()` converts them all at once (one transfer) when the trainer
/// actually logs.
#include <map>
#include <string>

#include <torch/torch.h>

namespace biud::losses {

struct LossOutput {
  /// The value to call backward() on (0-dim, attached to the graph).
  torch::Tensor total;
  /// Unweighted loss terms (detached), e.g. "i2t", "t2i" or, after `add()`, "roco", "roco/i2t".
  std::map<std::string, torch::Tensor> terms;
  /// Diagnostics (detached 0-dim tensors), e.g. "fn_rate", "tau", "acc_entity", "n_masked".
  std::map<std::string, torch::Tensor> metrics;

  /// Add `weight * sub.total` to `total` and merge `sub`'s terms and metrics under `prefix`:
  /// the unweighted `sub.total` becomes term `prefix`, a term `t` of sub becomes `prefix/t`,
  /// a metric `m` becomes `prefix/m`. An undefined `total` starts from `weight * sub.total`.
  void add(const std::string& prefix, const LossOutput& sub, double weight = 1.0);

  /// Every term and metric as a double, plus "loss" (the total), in one device-to-host copy.
  /// Keys: "loss", term names, metric names (terms and metrics never share a name).
  std::map<std::string, double> scalars() const;
};

/// A detached 0-dim copy of `t` for the terms/metrics maps.
inline torch::Tensor scalarOf(const torch::Tensor& t) { return t.detach().reshape({}); }

}  // namespace biud::losses
