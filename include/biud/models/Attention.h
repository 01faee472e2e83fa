#pragma once
/// \file Attention.h
/// The one attention function every network uses (LibTorch's fused
/// `at::scaled_dot_product_attention`: flash / memory-efficient kernels on CUDA, a fused
/// kernel on CPU), the head split/merge helpers, and activation checkpointing.
#include <functional>

#include <torch/torch.h>

namespace biud::models {

/// softmax(q k^T / sqrt(d) + mask) v. q [B,H,Lq,Dh], k/v [B,H,Lk,Dh].
/// `keyPadding` (optional) is [B,Lk], true/1 = a real token, false/0 = padding (never attended).
/// `causal` masks future keys (Lq == Lk, or Lq < Lk with the queries being the last Lq positions).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& keyPadding = {}, bool causal = false, double dropout = 0.0);

/// [B,L,H*Dh] -> [B,H,L,Dh].
torch::Tensor splitHeads(const torch::Tensor& x, std::int64_t heads);
/// [B,H,L,Dh] -> [B,L,H*Dh].
torch::Tensor mergeHeads(const torch::Tensor& x);

/// Activation checkpointing (LibTorch C++ has no torch.utils.checkpoint): runs `fn(x)` without
/// keeping its activations and recomputes them in backward; gradients reach `x` and `params`
/// (the parameters `fn` uses). The CPU random generator state is saved and restored around the
/// recomputation so dropout masks match; CUDA dropout inside a checkpointed block is not
/// replayed (keep dropout 0 there). Outside grad mode it is a plain call.
torch::Tensor checkpoint(const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& x,
                         const std::vector<torch::Tensor>& params);

}  // namespace biud::models
