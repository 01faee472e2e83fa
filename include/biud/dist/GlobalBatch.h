#pragma once
/// \file GlobalBatch.h
/// The data-parallel arithmetic of a loss over the global batch (all ranks' rows), in one
/// place, so that a task never re-derives it. Every task with a contrastive, relation or
/// masked-LM loss builds one from its TaskContext's communicator and asks it for what the loss
/// needs:
///
///   const dist::GlobalBatch g(ctx.comm);
///   pair.a_global = g.withGrad(pair.a);      // features the loss differentiates
///   teacher_global = g.constant(teacher);    // targets, frozen features
///   findings = g.allRows(findings);          // inputs the loss always reads globally
///   pair.offset = g.offset(pair.a.size(0));
///   efm = g.globalMean(efm, maskedHere);     // a mean over a per-rank count (collective)
///
/// Conventions (losses/ClipLoss.h): the global batch is the ranks' local batches concatenated in
/// rank order, all of one size (drop the last incomplete batch); a loss reads an undefined
/// `*_global` tensor as "the local rows", so in one process withGrad() and constant() return an
/// undefined tensor and the loss runs exactly the single-process arithmetic. DataParallel
/// averages gradients over ranks; with these inputs each rank's loss then yields, after that
/// average, the gradient of the single-process loss on the global batch (the 2-rank = 1-rank
/// tests in tests/dist and tests/train).
#include <cstdint>
#include <memory>

#include <torch/types.h>

#include "biud/dist/Communicator.h"

namespace biud::dist {

class GlobalBatch {
 public:
  /// `comm` null or of world size 1: one process. `gatherWithGrad` (config
  /// `distributed.gather_with_grad`) false: withGrad() lets gradient reach this rank's rows only
  /// from this rank's loss (open_clip's gather_with_grad=False; cheaper, not the single-process
  /// gradient).
  explicit GlobalBatch(std::shared_ptr<Communicator> comm, bool gatherWithGrad = true);

  bool distributed() const { return comm_ && comm_->distributed(); }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int world() const { return comm_ ? comm_->worldSize() : 1; }

  /// All ranks' rows [world*B, ...] with gradient flowing back to this rank's rows, summed over
  /// the ranks' losses (open_clip's gather_with_grad; with gatherWithGrad false, from this
  /// rank's loss only); undefined in one process.
  torch::Tensor withGrad(const torch::Tensor& local) const;
  /// All ranks' rows as constants (no gradient): targets, labels, frozen features; undefined in
  /// one process.
  torch::Tensor constant(const torch::Tensor& local) const;
  /// All ranks' rows, no gradient, for inputs a loss always reads over the global batch (false-
  /// negative detection's report embeddings and finding sets); `local` itself in one process.
  torch::Tensor allRows(const torch::Tensor& local) const;
  /// Global index of this rank's first row: rank * localRows.
  std::int64_t offset(std::int64_t localRows) const { return static_cast<std::int64_t>(rank()) * localRows; }

  /// A loss that is this rank's mean over `localCount` elements (e.g. masked tokens, divided by
  /// max(localCount, 1)) rescaled so that DataParallel's average over ranks equals the mean over
  /// every rank's elements, sum / global count (not the mean of per-rank means: ranks count
  /// different numbers). Collective (one allreduce of the count); `localMean` in one process.
  torch::Tensor globalMean(const torch::Tensor& localMean, double localCount) const;
  /// The same with the count as a scalar tensor, read only when distributed (no device sync in
  /// one process).
  torch::Tensor globalMean(const torch::Tensor& localMean, const torch::Tensor& localCount) const;

 private:
  std::shared_ptr<Communicator> comm_;
  bool gatherWithGrad_ = true;
};

}  // namespace biud::dist
