#pragma once
/// \file Communicator.h
/// The one interface training code uses to talk to the other ranks: rank/world size, allreduce,
/// all-gather, broadcast, barrier. Three implementations sit behind it:
///   - single process (world size 1): every collective is the identity, no threads, no sockets;
///   - Gloo (c10d::ProcessGroupGloo) for CPU tensors;
///   - NCCL (c10d::ProcessGroupNCCL) for CUDA tensors (CUDA builds only).
/// Training code never branches on the world size: the single-process communicator makes the
/// distributed code path the only one (see DataParallel.h).
///
/// Errors: a collective that fails (a peer died, a peer hung past `timeout_s`) throws
/// `biud::DistError` whose message names the rank(s) that caused it when they can be found
/// (see Rendezvous.h: every rank publishes a heartbeat and its collective counter to the store).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace biud::dist {

enum class ReduceOp { Sum, Avg };

/// Handle of an asynchronous collective; `wait()` blocks until it finished (or throws DistError).
class PendingWork {
 public:
  virtual ~PendingWork() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  /// Global rank, 0..worldSize()-1.
  virtual int rank() const = 0;
  virtual int worldSize() const = 0;
  /// Rank on this node (picks the GPU).
  virtual int localRank() const = 0;
  /// "single", "gloo" or "nccl".
  virtual std::string backend() const = 0;
  /// The timeout every collective runs under.
  virtual std::chrono::milliseconds timeout() const = 0;

  bool isMain() const { return rank() == 0; }
  bool distributed() const { return worldSize() > 1; }

  /// In-place allreduce. Avg divides the sum by the world size (Gloo has no native AVG).
  virtual void allreduce(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  /// In-place asynchronous sum of each tensor (all must live on commDevice()). The tensors
  /// must stay alive and untouched until `wait()` returned.
  virtual std::unique_ptr<PendingWork> allreduceAsync(std::vector<torch::Tensor> tensors) = 0;
  /// Concatenation of every rank's `t` along dim 0, rank order. All ranks must pass tensors of
  /// the same shape and dtype. No gradient flows (see allGatherWithGrad in Contrastive.h).
  virtual torch::Tensor allGather(const torch::Tensor& t) = 0;
  /// In-place broadcast from `root`.
  virtual void broadcast(torch::Tensor& t, int root = 0) = 0;
  /// Every rank waits for every other (under the timeout).
  virtual void barrier() = 0;

  /// Where tensors must live for this backend's collectives given where they are now: the
  /// same device for NCCL and the single process, the CPU for Gloo.
  virtual c10::Device commDevice(const c10::Device& tensorDevice) const = 0;
};

/// The trivial communicator of a single process (rank 0 of 1): collectives are identities.
std::shared_ptr<Communicator> makeSingleProcess();

}  // namespace biud::dist
