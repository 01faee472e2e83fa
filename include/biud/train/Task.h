#pragma once
/// \file Task.h
/// What the trainer runs. The trainer owns the loop, optimizer, schedule, precision, gradient
/// clipping, NaN policy, checkpoints and logging; a task owns its models, data and losses.
/// clip2d, biud, x2ct, report and finetune are tasks; adding one never touches the loop.
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "biud/config/Config.h"
#include "biud/train/MetricSink.h"

namespace biud::losses {
struct LossOutput;
}

namespace biud::dist {
class Communicator;
}

namespace biud::train {

/// What the trainer hands a task.
struct TaskContext {
  c10::Device device{c10::kCPU};
  std::string runDir;
  int rank = 0, world = 1;
  /// Collectives for gathering contrastive features across ranks (single-process when world = 1).
  std::shared_ptr<dist::Communicator> comm;
};

/// Per optimizer step.
struct StepContext {
  int accum = 1;          ///< micro-batches in this step
  std::int64_t step = 0;  ///< optimizer steps done before this one
  /// Call with `true` before the last backward of the step and `false` before the others, so
  /// that data-parallel gradient averaging runs once per step (a no-op in one process).
  std::function<void(bool)> setSync = [](bool) {};
};

/// Result of one optimizer step's forward/backward.
struct StepResult {
  double loss = 0;           ///< total loss (detached; NaN/Inf triggers the skip policy)
  Metrics metrics;           ///< loss terms and diagnostics, logged as they are
  std::int64_t samples = 0;  ///< items consumed (for throughput)
};

/// The StepResult of a task whose step loss is `terms` (a LossOutput): its terms and diagnostics
/// as metrics (the total is StepResult::loss, not repeated), `samples` items.
StepResult stepResult(double loss, const losses::LossOutput& terms, std::int64_t samples);

class Task {
 public:
  virtual ~Task() = default;
  /// Root module: every trainable and frozen part registered under it (checkpoint keys).
  virtual torch::nn::Module& module() = 0;
  /// Forward and backward over `step.accum` micro-batches for one optimizer step; gradients are
  /// left accumulated in `.grad` (of the step's mean loss). The task pulls its own batches.
  virtual StepResult trainStep(const StepContext& step) = 0;
  /// Validation metrics (e.g. zero-shot AUROC on the validation split); empty = none.
  virtual Metrics validate() { return {}; }
  /// Everything else with state (data position, task RNG), for exact resume.
  virtual nlohmann::json state() const = 0;
  virtual void loadState(const nlohmann::json& s) = 0;
  /// Called once after the last step (write artefacts, e.g. cached features).
  virtual void finish() {}
  /// True when the task wants to stop before trainer.steps (early stopping); checked after
  /// each validation. Must give the same answer on every rank.
  virtual bool done() const { return false; }
};

using TaskFactory = std::function<std::unique_ptr<Task>(const Config&, const TaskContext&)>;

/// The factory of a task class constructed from (cfg, ctx): a TaskSpec's `make`.
template <class T>
TaskFactory factoryOf() {
  return
      [](const Config& cfg, const TaskContext& ctx) -> std::unique_ptr<Task> { return std::make_unique<T>(cfg, ctx); };
}

/// Tasks are entries of the task registry (evaluate/TaskSpec.h: `make` for training, `load` for
/// a trained run). registerTask() adds a training-only entry (e.g. a test's toy task).
void registerTask(const std::string& name, TaskFactory factory);
/// The task `name` (ConfigError listing the trainable tasks when there is none, or the entry's
/// own error when it is load-only, e.g. ct-clip).
std::unique_ptr<Task> makeTask(const std::string& name, const Config& cfg, const TaskContext& ctx);
/// The names of the trainable tasks, sorted.
std::vector<std::string> taskNames();
/// Registers the built-in tasks (evaluate::registerBuiltinTaskSpecs(); idempotent). makeTask()
/// and loadRun() call it themselves.
void registerBuiltinTasks();

}  // namespace biud::train
