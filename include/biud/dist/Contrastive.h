#pragma once
/// \file Contrastive.h
/// Helpers for contrastive losses over the global batch (all ranks' rows).
///
/// Layout convention: the global batch is the concatenation of the ranks' local batches in rank
/// order; every rank has the same local batch size (drop the last incomplete batch).
#include <torch/types.h>

#include "biud/dist/Communicator.h"

namespace biud::dist {

/// All-gather `local` [B, ...] into [world*B, ...] WITH gradient. Backward sums the incoming
/// gradient over all ranks (allreduce) and returns this rank's slice — the semantics of
/// open_clip's gather_with_grad. With it, each rank's loss on the gathered features gives,
/// after DataParallel's averaging, exactly the gradient of the single-process loss on the
/// global batch. A single-process communicator returns `local` itself.
torch::Tensor allGatherWithGrad(const std::shared_ptr<Communicator>& comm, const torch::Tensor& local);

/// All-gather without gradient, but with this rank's own rows replaced by `local` so that
/// gradients flow to the local rows only (open_clip's gather_with_grad=false).
torch::Tensor allGatherLocalGrad(const std::shared_ptr<Communicator>& comm, const torch::Tensor& local);

/// Global indices of this rank's rows: rank*localRows + [0, localRows). These are the labels
/// of a `local_loss` contrastive loss (local rows against the global batch). int64 on `device`.
torch::Tensor globalRowIndices(const Communicator& comm, int64_t localRows, const c10::Device& device = c10::kCPU);

}  // namespace biud::dist
