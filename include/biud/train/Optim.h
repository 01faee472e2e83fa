#pragma once
/// \file Optim.h
/// AdamW with parameter groups (no weight decay on biases, norms and temperatures; per-module
/// learning rates by parameter-name prefix; layer-wise learning-rate decay of the encoders) and
/// the warmup + cosine/linear/constant schedule.
///
/// AdamW steps each parameter group with ATen's fused kernel (the one behind Python's
/// `torch.optim.AdamW(fused=True)`, bit-identical to it): one pass per parameter instead of
/// LibTorch's loop of seven tensor operations and a parameter-sized temporary. The state and
/// checkpoints are LibTorch's AdamW's. `BIUD_ADAMW=loop` selects LibTorch's own loop (the
/// arithmetic before; results agree within float rounding, not bit for bit).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

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

/// Depth index of a parameter of an encoder for layer-wise lr decay (BEiT/MAE convention), from
/// its name relative to the encoder: the input stem/embeddings (`patch_embed`, `pos_embed`,
/// `cls_token`, ResNet `conv1`/`bn1`, `stem`, ViT-2D `conv_proj`/`class_token`/
/// `encoder.pos_embedding`, BERT `embeddings`) is 0; transformer block `blocks.i` (ViT-3D),
/// `encoder.layer.i` (BERT), `encoder.layers.encoder_layer_i` (ViT-2D) is i + 1; ResNet stage
/// `layerK` is K; anything else (final norm, pooler, head) is `numLayers`.
int encoderLayerId(const std::string& name, int numLayers);
/// Number of layers of an encoder from its parameter names (relative to the encoder):
/// 1 + the deepest block/stage id (so the parameters after the blocks are layer `numLayers`).
int encoderNumLayers(const std::vector<std::string>& names);
/// Learning rate of every trainable parameter of `module` as buildOptimizer() gives it:
/// baseLrFor(name), and, when `cfg.layer_decay` d < 1, for the parameters of an encoder — a
/// top-level submodule whose name ends in `encoder` (`ct_encoder`, `text_encoder`,
/// `image_encoder`, ...) — times d^(L - encoderLayerId(rest of the name, L)), L =
/// encoderNumLayers() of that encoder's trainable parameters. Everything outside the encoders
/// (heads, projections, decoders) keeps its base lr, as layer L would.
std::map<std::string, double> parameterLrs(torch::nn::Module& module, const OptimizerConfig& cfg);

/// Optimizer over the module's trainable parameters (requires_grad), grouped by (lr, decay),
/// each at its parameterLrs() learning rate (so `optimizer.layer_decay` applies to any task).
/// `groups`, when given, receives the grouping in optimizer order.
std::unique_ptr<torch::optim::Optimizer> buildOptimizer(torch::nn::Module& module, const OptimizerConfig& cfg,
                                                        std::vector<ParamGroupInfo>* groups = nullptr);

/// True unless the environment sets BIUD_ADAMW=loop (fused is the default; any other value is a
/// ConfigError).
bool fusedAdamW();

/// Multiplier of the peak learning rate at (0-based) optimizer step `step` of `total`:
/// linear warmup over `warmup_steps` ((step+1)/warmup), then cosine/linear decay to
/// `min_lr_ratio`, or constant.
double lrFactor(std::int64_t step, std::int64_t total, const ScheduleConfig& cfg);

/// Set every group's lr to its base lr times `factor`.
void applyLr(torch::optim::Optimizer& opt, const std::vector<double>& baseLrs, double factor);
/// Base lr of every group, read once after building.
std::vector<double> groupLrs(const torch::optim::Optimizer& opt);

}  // namespace biud::train
