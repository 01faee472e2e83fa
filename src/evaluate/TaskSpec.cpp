#include "biud/evaluate/TaskSpec.h"

#include <map>
#include <mutex>

#include <fmt/ranges.h>

#include "biud/core/Error.h"

namespace biud::evaluate {

namespace {
std::map<std::string, TaskSpec>& registry() {
  static std::map<std::string, TaskSpec> r;
  return r;
}
std::mutex g_mu;
}  // namespace

void registerTaskSpec(TaskSpec spec) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto name = spec.name;
  registry()[name] = std::move(spec);
}

std::vector<std::string> taskSpecNames() {
  registerBuiltinTaskSpecs();
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<std::string> out;
  for (const auto& [k, v] : registry()) out.push_back(k);
  return out;
}

std::vector<std::string> trainableTaskNames() {
  registerBuiltinTaskSpecs();
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<std::string> out;
  for (const auto& [k, v] : registry())
    if (v.make) out.push_back(k);
  return out;
}

const TaskSpec& taskSpec(const std::string& name, const std::string& where) {
  registerBuiltinTaskSpecs();
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = registry().find(name);
    if (it != registry().end()) return it->second;  // entries are never removed: the reference stays valid
  }
  BIUD_THROW(ConfigError, "{}: task `{}` is not registered (registered: {})", where, name,
             fmt::join(taskSpecNames(), ", "));
}

}  // namespace biud::evaluate
