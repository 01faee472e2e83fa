#pragma once
/// \file DataParallel.h
/// A small DistributedDataParallel for LibTorch (which has none in C++), on any Communicator.
///
///     auto dp = dist::DataParallel(comm, model->parameters(), model->buffers(), cfg.bucket_mb);
///     for (int micro = 0; micro < accum; ++micro) {
///       dp.setSync(micro == accum - 1);     // noSync for all but the last micro-step
///       (loss(model, batch[micro]) / accum).backward();
///     }
///     dp.finalize();                         // .grad = average over ranks
///     optimizer.step(); optimizer.zero_grad();
///
/// What it does:
///  - construction broadcasts every parameter and buffer from rank 0, so all ranks start equal;
///  - parameters are packed, in reverse registration order (roughly the order backward produces
///    their gradients), into buckets of at most `bucketMb` MiB per dtype and device;
///  - a hook on each parameter copies its gradient (plus what .grad already holds from noSync
///    micro-steps) into its bucket; when a bucket is full its allreduce starts at once, while
///    backward goes on (overlap). Buckets are always launched in index order so that every rank
///    issues the same collectives in the same order;
///  - each gradient is divided by the world size as it is copied into its bucket (one pass, as
///    DDP does), so the reduced bucket holds the average;
///  - finalize() launches the buckets that are still incomplete, waits for all, and makes each
///    contiguous parameter's .grad a view of its slot (DDP's gradient_as_bucket_view: no copy
///    back); a channels-last parameter, or one on another device than the bucket, gets a copy.
///    The next backward refills the buckets: a .grad kept across steps (not set to none) is
///    cloned out of the bucket before autograd adds to it.
///
/// Unused parameters (no gradient in this step on some rank): that rank contributes the .grad it
/// already holds (from earlier noSync micro-steps) or zeros. Each bucket also carries one counter
/// per parameter (how many ranks produced a gradient); a parameter that no rank used keeps an
/// undefined .grad, exactly as in single-process training, so optimizers skip it as they would
/// without DataParallel. A parameter used by some ranks gets sum/world (the zeros count), which is
/// the gradient of the global mean loss. Nothing hangs: finalize() launches every bucket.
/// A bucket holding a parameter without gradient can only start in finalize() (and so can all
/// later ones: the order is fixed), so after the first step the buckets are rebuilt once with the
/// parameters that no rank used moved to the end (all ranks see the same counters, hence build
/// the same buckets); overlap is back from the second step on.
///
/// With a single-process communicator nothing is registered and finalize() is a no-op: the same
/// training code runs with and without distribution.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/types.h>

#include "biud/dist/Communicator.h"

namespace biud::dist {

class DataParallel {
 public:
  /// `params` are the trainable parameters (those with requires_grad; others are broadcast
  /// but not reduced), `buffers` are broadcast once (e.g. normalisation statistics).
  DataParallel(std::shared_ptr<Communicator> comm, std::vector<torch::Tensor> params,
               std::vector<torch::Tensor> buffers = {}, double bucketMb = 25);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// true (default): the next backward launches the allreduces. false: gradients only
  /// accumulate locally in .grad (micro-steps of gradient accumulation).
  void setSync(bool sync);
  bool sync() const { return sync_; }

  /// Finish the gradient averaging: launch what backward did not, wait for all collectives
  /// (under the communicator's timeout; a failure throws DistError naming the rank), and
  /// write the averaged gradients into .grad. Call once per optimizer step, after the last
  /// backward and before clipping and the optimizer step. Resets the step state.
  void finalize();

  /// Re-broadcast parameters and buffers from rank 0 (after loading a checkpoint on rank 0 only).
  void broadcastState();

  const Communicator& comm() const { return *comm_; }
  int numBuckets() const { return static_cast<int>(buckets_.size()); }
  /// Parameter indices (into the `params` given) of each bucket, in launch order.
  std::vector<std::vector<int>> bucketLayout() const;
  /// Buckets launched from inside backward in the last finalized step (the rest started in finalize()).
  int bucketsLaunchedDuringBackward() const { return lastOverlapped_; }

 private:
  struct Slot {
    int param = -1;
    int64_t offset = 0, numel = 0;
  };
  struct Bucket {
    std::vector<Slot> slots;
    torch::Tensor flat;  ///< gradients then one "used" counter per slot, on commDevice
    int64_t gradNumel = 0;
    int ready = 0;
    bool launched = false;
    std::unique_ptr<PendingWork> work;
  };

  void onGrad(int param, const torch::Tensor& grad);
  void launch(Bucket& b);
  void fillMissing(Bucket& b);
  void buildBuckets(const std::vector<int>& order);
  /// 1 / world size as a 0-dim CPU tensor (a scalar operand on any device).
  const torch::Tensor& invWorld() const { return invWorld_; }

  std::shared_ptr<Communicator> comm_;
  std::vector<torch::Tensor> params_, buffers_;
  torch::Tensor invWorld_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucketOf_, slotOf_;
  std::vector<char> readyParam_;
  std::vector<std::pair<int, unsigned>> hookHandles_;  // (parameter, hook handle)
  int nextLaunch_ = 0, overlapped_ = 0, lastOverlapped_ = 0;
  double bucketMb_ = 25;
  bool sync_ = true, rebuilt_ = false;
  std::mutex mu_;
};

}  // namespace biud::dist
