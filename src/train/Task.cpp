#include "biud/train/Task.h"

#include <map>
#include <mutex>

#include "biud/core/Error.h"
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

namespace {
std::map<std::string, TaskFactory>& registry() {
  static std::map<std::string, TaskFactory> r;
  return r;
}
std::mutex g_mu;
}  // namespace

void registerTask(const std::string& name, TaskFactory factory) {
  std::lock_guard<std::mutex> lock(g_mu);
  registry()[name] = std::move(factory);
}

std::vector<std::string> taskNames() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<std::string> out;
  for (auto& [k, v] : registry()) out.push_back(k);
  return out;
}

std::unique_ptr<Task> makeTask(const std::string& name, const Config& cfg, const TaskContext& ctx) {
  TaskFactory f;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = registry().find(name);
    if (it != registry().end()) f = it->second;
  }
  if (!f) {
    std::string known;
    for (auto& n : taskNames()) known += (known.empty() ? "" : ", ") + n;
    BIUD_THROW(ConfigError, "task `{}` is not available in this build (available: {})", name,
               known.empty() ? "none yet" : known);
  }
  return f(cfg, ctx);
}

void registerBuiltinTasks() {
  registerTask("clip2d", makeClip2dTask);
  registerTask("biud", makeBiudTask);
  registerTask("finetune", makeFinetuneTask);
  registerTask("report", makeReportTask);
  registerTask("x2ct", makeX2ctTask);
}

std::unique_ptr<Trainer> makeDownstreamTrainer(Config& cfg, const std::string& runDir, const c10::Device& device) {
  registerBuiltinTasks();
  TaskContext ctx;
  ctx.device = device;
  ctx.runDir = runDir;
  auto task = makeTask(cfg.task, cfg, ctx);
  return std::make_unique<Trainer>(cfg, runDir, std::move(task), ctx);
}

}  // namespace biud::train
