#pragma once
/// \file Optim.h
/// AdamW with parameter groups (no weight decay on biases, norms and temperatures; per-module
/// learning rates by parameter-name prefix) and the warmup + cosine/linear/constant schedule.
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

#include "biud/config/OptimConfig.h"

namespace biud::train {

/// How a parameter was grouped (for logging and tests).
struct ParamGroupInfo {
  std::vector<std::string> names;
  double lr = 0;
  double weightDecay = 0;
};

/// True when a parameter gets no weight decay: 0/1-dimensional tensors (biases, norm scales,
/// temperatures) and names containing "logit_scale" or "temperature".
bool excludedFromDecay(const std::string& name, const torch::Tensor& p);

/// Learning rate of a parameter: the longest `module_lr` prefix that matches its name, else `lr`.
double baseLrFor(const std::string& name, const OptimizerConfig& cfg);

/// Optimizer over the module's trainable parameters (requires_grad), grouped by (lr, decay).
/// `groups`, when given, receives the grouping in optimizer order.
std::unique_ptr<torch::optim::Optimizer> buildOptimizer(torch::nn::Module& module, const OptimizerConfig& cfg,
                                                        std::vector<ParamGroupInfo>* groups = nullptr);

/// Multiplier of the peak learning rate at (0-based) optimizer step `step` of `total`:
/// linear warmup over `warmup_steps` ((step+1)/warmup), then cosine/linear decay to
/// `min_lr_ratio`, or constant.
double lrFactor(std::int64_t step, std::int64_t total, const ScheduleConfig& cfg);

/// Set every group's lr to its base lr times `factor`.
void applyLr(torch::optim::Optimizer& opt, const std::vector<double>& baseLrs, double factor);
/// Base lr of every group, read once after building.
std::vector<double> groupLrs(const torch::optim::Optimizer& opt);

}  // namespace biud::train
