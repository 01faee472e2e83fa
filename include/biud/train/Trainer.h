#pragma once
/// \file Trainer.h
/// The one training loop: load checkpoint -> while steps remain: step -> maybe log / validate /
/// save. Policy lives in the config (trainer.*), not in flags inside the loop.
#include <memory>
#include <string>

#include "biud/config/Config.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/MetricSink.h"
#include "biud/train/Task.h"

namespace torch::optim {
class Optimizer;
}
namespace biud::dist {
class DataParallel;
}  // namespace biud::dist

namespace biud::train {

class WeightEma;

class Trainer {
 public:
  /// `runDir` exists and holds config.resolved.yaml (App::prepareOutDir).
  Trainer(const Config& cfg, std::string runDir, std::unique_ptr<Task> task, TaskContext ctx);
  ~Trainer();
  /// Train to `trainer.steps`. Returns an app exit code: 0 done, 130 stopped by a signal
  /// (after saving a checkpoint). Throws ValueError after too many non-finite steps in a row.
  int train();

  std::int64_t step() const { return step_; }
  Task& task() { return *task_; }
  torch::optim::Optimizer& optimizer() { return *opt_; }
  /// Save a checkpoint of the current state now.
  stdfs::path saveCheckpoint();
  /// Restore from a checkpoint folder.
  void loadCheckpoint(const stdfs::path& dir);

 private:
  bool stepOnce();  // false when the step was skipped (non-finite)
  Metrics runValidation();

  Config cfg_;
  std::string runDir_;
  std::unique_ptr<Task> task_;
  TaskContext ctx_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::unique_ptr<dist::DataParallel> dp_;  ///< gradient averaging across ranks (world > 1)
  std::unique_ptr<WeightEma> ema_;          ///< moving average of the weights (trainer.ema > 0)
  std::vector<double> baseLrs_;
  std::string precision_;  ///< trainer.precision resolved for the device: bf16 | fp32
  CheckpointManager ckpt_;
  MultiSink sinks_;
  std::int64_t step_ = 0;
  int badStreak_ = 0;
  std::int64_t skipped_ = 0;
  Metrics last_;
};

/// Resident set size of this process in MiB (for the `memory_mb` metric).
double residentMemoryMb();

/// A trainer together with typed access to its task (owned by the trainer): what the downstream
/// apps need to read their task's results after training, without a downcast.
template <class T>
struct TrainerWithTask {
  std::unique_ptr<Trainer> trainer;
  T* task = nullptr;
};

/// The one-process trainer of a new `Impl` (a `T`) built from `cfg` in `runDir` on `device`.
template <class T, class Impl>
TrainerWithTask<T> makeTrainerWithTask(Config& cfg, const std::string& runDir, const c10::Device& device) {
  TaskContext ctx;
  ctx.device = device;
  ctx.runDir = runDir;
  auto task = std::make_unique<Impl>(cfg, ctx);
  TrainerWithTask<T> out;
  out.task = task.get();
  out.trainer = std::make_unique<Trainer>(cfg, runDir, std::move(task), ctx);
  return out;
}

}  // namespace biud::train
