#pragma once
/// \file CtLoader.h
/// Threaded, prefetching batch loader over a CtDataset (no processes: worker threads decode
/// memory-mapped cache records). Batches come out in the sampler's order whatever the thread
/// timing, and augmentation seeds derive from (seed, epoch, dataset index), so a run is
/// reproducible and its position can be saved and restored exactly.
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "biud/config/DataConfig.h"
#include "biud/data/CtDataset.h"
#include "biud/data/Sampler.h"

namespace biud::data {

struct CtLoaderOptions {
  std::uint64_t seed = 0;
  int rank = 0, world = 1;
  bool augment = true;  ///< apply data.augment (training); off for evaluation
};

class CtLoader {
 public:
  CtLoader(std::shared_ptr<const CtDataset> dataset, LoaderConfig cfg, CtLoaderOptions opt);
  ~CtLoader();
  CtLoader(const CtLoader&) = delete;
  CtLoader& operator=(const CtLoader&) = delete;

  /// Start epoch `e` at its first batch.
  void setEpoch(std::int64_t e);
  /// Next batch of the current epoch; false at its end (then call setEpoch(epoch() + 1)).
  bool next(CtBatch& out);
  /// Next batch, starting the next epoch when this one is done (training loops by steps).
  /// DataError when a fresh epoch yields no batch.
  CtBatch nextCycling();
  std::int64_t epoch() const { return epoch_; }
  /// Index of the next batch within the epoch.
  std::int64_t position() const { return consumed_; }
  std::int64_t batchesPerEpoch() const { return static_cast<std::int64_t>(batches_.size()); }

  /// Position as plain integers: epoch, batch (next batch index), seed, rank, world, dataset_size,
  /// batch_size. loadStateDict() restores it (checking that seed, world, sizes match).
  std::map<std::string, std::int64_t> stateDict() const;
  void loadStateDict(const std::map<std::string, std::int64_t>& s);

 private:
  CtBatch makeBatch(const std::vector<std::int64_t>& indices) const;  ///< one batch (the workers' job)
  void start(std::int64_t epoch, std::int64_t from);
  void stop();
  void work();

  std::shared_ptr<const CtDataset> ds_;
  LoaderConfig cfg_;
  CtLoaderOptions opt_;
  BatchSampler sampler_;
  std::int64_t epoch_ = 0;
  std::vector<std::vector<std::int64_t>> batches_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::map<std::int64_t, CtBatch> ready_;
  std::map<std::int64_t, std::string> errors_;
  std::int64_t claimed_ = 0, consumed_ = 0;
  bool stopping_ = false;
};

}  // namespace biud::data
