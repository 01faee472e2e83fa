#pragma once
/// \file ClipLoss.h
/// Symmetric InfoNCE (CLIP): logits `L_ij = sim(a_i, b_j) / tau`, loss = mean of the a->b and
/// b->a cross-entropies with the matching pair as the positive (METHOD §3 RoCo with mode none,
/// and each term of the tri-modal loss of §6).
///
/// Distributed "local loss" layout (open_clip `local_loss`): each rank scores its own B_local
/// rows against the B_global columns gathered from all ranks (gathered with gradient by the
/// communicator, not here); the positive of local row i is global column `offset + i`.
/// Single process: leave the `*_global` tensors undefined (offset 0).
#include <cstdint>

#include <torch/torch.h>

#include "biud/losses/LossOutput.h"

namespace biud::losses {

/// Paired features of two modalities (rows L2-normalised inside the loss; any scale is fine).
struct ContrastivePair {
  torch::Tensor a;         ///< [B_local, d], e.g. CT image features
  torch::Tensor b;         ///< [B_local, d], e.g. report features
  torch::Tensor a_global;  ///< [B_global, d] gathered a, or undefined (= a)
  torch::Tensor b_global;  ///< [B_global, d] gathered b, or undefined (= b)
  int64_t offset = 0;      ///< global index of local row 0 (rank * B_local for equal shards)
};

/// Logits of both directions and the positive column of every local row.
struct ContrastiveLogits {
  torch::Tensor ab;      ///< [B_local, B_global] = sim(a_i, b_global_j) / tau
  torch::Tensor ba;      ///< [B_local, B_global] = sim(b_i, a_global_j) / tau
  torch::Tensor labels;  ///< [B_local] int64: offset + i
};

/// The temperature in use: `tau` (0-dim, may require grad) clamped to [lo, hi]. Values outside
/// get zero gradient, so the owner of the parameter should also clamp it in place after each
/// optimizer step (as CLIP does with its logit scale) to keep it inside. An undefined `tau`
/// gives the constant `init` (a fixed temperature). Checks lo <= init <= hi.
torch::Tensor resolveTemperature(const torch::Tensor& tau, double init, double lo, double hi);

/// tau from a CLIP-style logit scale s (tau = exp(-s), i.e. logits = exp(s) * sim).
torch::Tensor tauFromLogitScale(const torch::Tensor& logitScale);

/// Checks shapes and computes both logit matrices (float32 or float64).
ContrastiveLogits contrastiveLogits(const ContrastivePair& p, const torch::Tensor& tau,
                                    const char* caller = "clipLoss");

/// Symmetric InfoNCE. `tau` is the temperature already resolved (see resolveTemperature).
/// Terms: "i2t" (a->b), "t2i" (b->a). Metrics: "tau", "acc_i2t", "acc_t2i" (top-1 retrieval
/// accuracy of the local rows).
LossOutput clipLoss(const ContrastivePair& p, const torch::Tensor& tau);

}  // namespace biud::losses
