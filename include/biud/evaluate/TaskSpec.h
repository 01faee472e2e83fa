#pragma once
/// \file TaskSpec.h
/// The task registry: one entry per task that knows how to build it for training (`make`) and
/// how to load its trained run for inference (`load`, through the same model construction code).
/// It sits below both users: train/ (makeTask, Task.h) and evaluate/ (loadRun, LoadRun.h) reach
/// it; the train types are only forward-declared here, so evaluate/ never includes a task.
/// The built-in entries are registered by registerBuiltinTaskSpecs() (defined next to the tasks
/// in train/Task.cpp: one line per task), which makeTask() and loadRun() call first; it runs
/// once (std::call_once). No static registrars: the linker could drop them from the library.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "biud/config/Config.h"

namespace biud::train {
class Task;
struct TaskContext;
}  // namespace biud::train

namespace biud::evaluate {

class RunModel;
struct LoadedRun;

struct TaskSpec {
  std::string name;  ///< the `task` of a config
  /// The task for training; empty for a load-only entry (then `cannotTrain` is the error).
  std::function<std::unique_ptr<train::Task>(const Config&, const train::TaskContext&)> make;
  std::string cannotTrain;
  /// The model of a trained run: `run.cfg` (parsed, initial weights dropped) and `run.checkpoint`
  /// are set; `load` may complete `run.cfg` (e.g. from the pretrained run), sets `run.tokenizer`,
  /// builds the model as `make` does, loads the checkpoint's weights (the moving average over
  /// them when `ema` and the checkpoint has one: loadRunWeights(), LoadRun.h), and returns it on
  /// `device`, frozen, in eval mode.
  std::function<std::unique_ptr<RunModel>(LoadedRun& run, const c10::Device& device, bool ema)> load;
};

/// Add (or replace) an entry.
void registerTaskSpec(TaskSpec spec);
/// The entry named `name`; ConfigError "`<where>`: task `<name>` is not registered (registered:
/// ...)" otherwise. Registers the built-ins first.
const TaskSpec& taskSpec(const std::string& name, const std::string& where);
/// Every registered name, sorted (the built-ins registered first).
std::vector<std::string> taskSpecNames();
/// The names with a `make` (what biud-train accepts), sorted.
std::vector<std::string> trainableTaskNames();

/// Register the built-in tasks (clip2d, biud, finetune, report, x2ct and the load-only ct-clip
/// import); idempotent. Defined in train/Task.cpp.
void registerBuiltinTaskSpecs();

}  // namespace biud::evaluate
