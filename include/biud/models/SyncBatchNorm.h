#pragma once
/// \file SyncBatchNorm.h
/// BatchNorm whose training statistics can span every rank of a data-parallel job
/// (torch.nn.SyncBatchNorm). The 2D and 3D ResNets build their norms from it; on its own it is
/// torch's BatchNorm2d/3d (same parameters, buffers, names and arithmetic). Once a group is
/// attached (dist::syncBatchNorm, which the trainer calls with `distributed.sync_batchnorm`),
/// a training forward normalises over the rows of all ranks:
///   - forward: each rank's per-channel count, mean and centred sum of squares are all-gathered
///     and combined (Chan et al.'s parallel variance, in double), so the mean and variance are
///     those of the global batch; running statistics take the global ones (unbiased variance);
///   - backward: the per-channel sums of dy and dy * x_hat are summed over the ranks, which gives
///     each rank's inputs their gradient through the global statistics. The weight and bias
///     gradients stay local; DataParallel averages them like every other parameter.
/// N ranks with batch b then train like one process with batch N*b (tested against torch's
/// BatchNorm in one process). Evaluation (even of a norm without running statistics), and a
/// world of one, take torch's own path and no collective. Every rank must run the same training
/// forwards (they are collectives).
#include <cstdint>
#include <memory>

#include <torch/nn/modules/batchnorm.h>

namespace biud::models {

/// What a synchronised BatchNorm needs from the job's communicator (dist::syncBatchNorm adapts
/// dist::Communicator): both collectives keep the tensor's device.
class BatchNormGroup {
 public:
  virtual ~BatchNormGroup() = default;
  virtual int worldSize() const = 0;
  /// Rows of every rank concatenated along dim 0, rank order.
  virtual torch::Tensor allGather(const torch::Tensor& t) = 0;
  /// In-place sum over the ranks.
  virtual void allreduceSum(torch::Tensor& t) = 0;
};

/// The part of SyncBatchNorm2d/3d that does not depend on the dimension: attach a group.
class SyncableNorm {
 public:
  virtual ~SyncableNorm() = default;
  /// nullptr detaches (per-rank statistics again).
  void setGroup(std::shared_ptr<BatchNormGroup> group) { group_ = std::move(group); }
  bool synced() const { return group_ && group_->worldSize() > 1; }

 protected:
  std::shared_ptr<BatchNormGroup> group_;
};

template <std::size_t D>
class SyncBatchNormImpl : public torch::nn::BatchNormImplBase<D, SyncBatchNormImpl<D>>, public SyncableNorm {
 public:
  using Base = torch::nn::BatchNormImplBase<D, SyncBatchNormImpl<D>>;
  using Base::Base;
  torch::Tensor forward(const torch::Tensor& x);

 protected:
  void _check_input_dim(const torch::Tensor& x) override;
};

using SyncBatchNorm2dImpl = SyncBatchNormImpl<2>;
using SyncBatchNorm3dImpl = SyncBatchNormImpl<3>;
TORCH_MODULE(SyncBatchNorm2d);
TORCH_MODULE(SyncBatchNorm3d);

/// Attach `group` to every SyncBatchNorm under `root` (nullptr detaches); returns how many.
int setBatchNormGroup(torch::nn::Module& root, const std::shared_ptr<BatchNormGroup>& group);

/// The synchronised training forward on its own: y = (x - mean) / sqrt(var + eps) * weight + bias
/// with the mean and biased variance of every rank's rows per channel (dim 1). Updates
/// `runningMean` / `runningVar` (when defined) with `momentum`, as torch's batch_norm does.
torch::Tensor syncBatchNormTrain(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                 torch::Tensor runningMean, torch::Tensor runningVar, double momentum, double eps,
                                 BatchNormGroup& group);

}  // namespace biud::models
