#pragma once
/// \file Ema.h
/// An exponential moving average of a model's trained weights (Polyak averaging, as in timm's
/// ModelEma and open_clip): after every optimizer step
///
///     shadow <- d * shadow + (1 - d) * weight,   d = min(decay, (1 + n) / (10 + n))  (warm-up)
///                                                d = decay                             (no warm-up)
///
/// over the parameters that train (requires_grad) and the floating-point buffers (batch-norm
/// running statistics); n counts the updates since the average started. The warm-up makes the
/// average follow the weights closely early on instead of remembering where it started; it
/// also limits the window to about the last n/9 steps for n < 4500 (decay 0.998), so a short
/// run that wants a long window turns it off and starts the average later instead
/// (trainer.ema_start: the average starts as a copy of the weights after that many steps).
/// Frozen parameters never change and are not copied. Integer buffers (batch counts) are not
/// averaged.
///
/// The trainer keeps one when trainer.ema > 0, validates with the averaged weights, and writes
/// them beside model.safetensors as ema.safetensors (only the averaged tensors, under the
/// module's names); loadRun() overlays that file on the raw weights when eval.ema is on.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "biud/tensor/Safetensors.h"

namespace biud::train {

class WeightEma {
 public:
  /// Starts as a copy of `module`'s current weights. `decay` in (0, 1).
  WeightEma(torch::nn::Module& module, double decay, bool warmup = true);
  /// Start again from the module's current weights (no updates yet).
  void reset();
  /// One update from the module's current weights (after an optimizer step).
  void update();
  /// The decay the next update() uses.
  double nextDecay() const;
  /// Exchange the module's weights and the averages (call twice to undo): validation and
  /// checkpointing see the averaged model without a second copy of it.
  void swap();
  std::int64_t updates() const { return updates_; }
  /// The averages under the module's names (`ct_encoder.conv1.weight`), for ema.safetensors.
  tensor::TensorMap state() const;
  /// Restore averages saved by state() (and the update count); ValueError naming `source` if a
  /// name is unknown or a shape differs.
  void load(const tensor::TensorMap& averages, std::int64_t updates, const std::string& source);

 private:
  double decay_;
  bool warmup_;
  std::int64_t updates_ = 0;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> live_, shadow_;  // the module's tensors and their averages
};

/// Load `path` (an ema.safetensors) over the matching tensors of `module`. Returns false when
/// the file does not exist.
bool applyEma(torch::nn::Module& module, const std::string& path);

}  // namespace biud::train
