#include "biud/train/Task.h"

#include <algorithm>
#include <mutex>

#include <fmt/ranges.h>

#include "biud/core/Error.h"
#include "biud/evaluate/ImportWeights.h"
#include "biud/losses/LossOutput.h"
#include "biud/train/Tasks.h"

namespace biud::train {

StepResult stepResult(double loss, const losses::LossOutput& terms, std::int64_t samples) {
  StepResult out;
  out.loss = loss;
  out.metrics = terms.scalars();
  out.metrics.erase("loss");
  out.samples = samples;
  return out;
}

void registerTask(const std::string& name, TaskFactory factory) {
  evaluate::registerBuiltinTaskSpecs();  // first, so that it never replaces this entry later
  evaluate::TaskSpec s;
  s.name = name;
  s.make = std::move(factory);
  evaluate::registerTaskSpec(std::move(s));
}

std::vector<std::string> taskNames() { return evaluate::trainableTaskNames(); }

std::unique_ptr<Task> makeTask(const std::string& name, const Config& cfg, const TaskContext& ctx) {
  const auto all = evaluate::taskSpecNames();
  if (std::find(all.begin(), all.end(), name) == all.end()) {
    const auto known = taskNames();
    BIUD_THROW(ConfigError, "task `{}` is not available in this build (available: {})", name,
               known.empty() ? "none yet" : fmt::format("{}", fmt::join(known, ", ")));
  }
  const auto& spec = evaluate::taskSpec(name, "biud-train");
  BIUD_CHECK(spec.make, ConfigError, "task `{}`: {}", name,
             spec.cannotTrain.empty() ? "it cannot be trained" : spec.cannotTrain);
  return spec.make(cfg, ctx);
}

void registerBuiltinTasks() { evaluate::registerBuiltinTaskSpecs(); }

}  // namespace biud::train

namespace biud::evaluate {

// The registry entries of the built-in tasks: a new task adds one line here.
void registerBuiltinTaskSpecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerTaskSpec(train::clip2dTaskSpec());
    registerTaskSpec(train::biudTaskSpec());
    registerTaskSpec(train::finetuneTaskSpec());
    registerTaskSpec(train::reportTaskSpec());
    registerTaskSpec(train::x2ctTaskSpec());
    registerTaskSpec(ctClipTaskSpec());  // load-only: an imported CT-CLIP (ImportWeights.h)
  });
}

}  // namespace biud::evaluate
