#include "biud/core/Log.h"

#include <atomic>
#include <mutex>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "biud/core/Error.h"

namespace biud::log {

namespace {

std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_logger;
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_rank{0};
std::atomic<int> g_world{1};

spdlog::level::level_enum toSpd(Level l) {
  switch (l) {
    case Level::Trace:
      return spdlog::level::trace;
    case Level::Debug:
      return spdlog::level::debug;
    case Level::Info:
      return spdlog::level::info;
    case Level::Warn:
      return spdlog::level::warn;
    case Level::Error:
      return spdlog::level::err;
    case Level::Off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_logger) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_pattern("%^%H:%M:%S %L%$ %v");
    g_logger = std::make_shared<spdlog::logger>("biud", sink);
    g_logger->set_level(spdlog::level::trace);
    g_logger->flush_on(spdlog::level::warn);
  }
  return *g_logger;
}

}  // namespace

Level parseLevel(const std::string& s) {
  if (s == "trace") return Level::Trace;
  if (s == "debug") return Level::Debug;
  if (s == "info") return Level::Info;
  if (s == "warn" || s == "warning") return Level::Warn;
  if (s == "error") return Level::Error;
  if (s == "off") return Level::Off;
  BIUD_THROW(ConfigError, "unknown log level `{}`: use trace, debug, info, warn, error or off", s);
}

void init(Level level, bool color) {
  setLevel(level);
  auto& l = logger();
  if (!color) {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto& s : l.sinks()) s->set_pattern("%H:%M:%S %L %v");
  }
}

void addFile(const std::string& path) {
  auto& l = logger();
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %v");
  sink->set_level(spdlog::level::debug);
  std::lock_guard<std::mutex> lock(g_mu);
  l.sinks().push_back(sink);
}

void setRank(int rank, int world) {
  g_rank = rank;
  g_world = world;
}

void setLevel(Level level) { g_level = static_cast<int>(level); }
Level level() { return static_cast<Level>(g_level.load()); }

bool enabled(Level l) {
  if (static_cast<int>(l) < g_level.load()) return false;
  // Info and below: rank 0 only. Warnings and errors: every rank.
  if (l < Level::Warn && g_rank.load() != 0) return false;
  return true;
}

void write(Level l, std::string_view tag, const std::string& msg) {
  std::string line;
  if (g_world.load() > 1) line = fmt::format("[rank {}] ", g_rank.load());
  if (!tag.empty()) line += fmt::format("[{}] ", tag);
  line += msg;
  logger().log(toSpd(l), line);
}

void flush() { logger().flush(); }

}  // namespace biud::log
