#pragma once
/// \file Log.h
/// Tagged, rank-aware logging on spdlog: `log::info("data", "loaded {} volumes", n)` prints
/// `[data] loaded 1204 volumes`. Info and debug go out on rank 0 only; warnings and errors from
/// every rank, prefixed with the rank when there is more than one.
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace biud::log {

enum class Level { Trace, Debug, Info, Warn, Error, Off };

/// Parses "trace|debug|info|warn|error|off"; throws ConfigError otherwise.
Level parseLevel(const std::string& s);

/// Set up the console sink (stderr). Call once in main; safe to call again.
void init(Level level = Level::Info, bool color = true);
/// Also write everything (all levels >= file level) to `path` (e.g. runs/x/log.txt).
void addFile(const std::string& path);
/// Rank and world size, set by the distributed layer after rendezvous.
void setRank(int rank, int world);
void setLevel(Level level);
Level level();
bool enabled(Level level);
/// Write a preformatted message. Prefer the templates below.
void write(Level level, std::string_view tag, const std::string& msg);
/// Flush all sinks (called before exit and on fatal errors).
void flush();

template <class... A>
void trace(std::string_view tag, fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::Trace)) write(Level::Trace, tag, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void debug(std::string_view tag, fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::Debug)) write(Level::Debug, tag, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void info(std::string_view tag, fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::Info)) write(Level::Info, tag, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void warn(std::string_view tag, fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::Warn)) write(Level::Warn, tag, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void error(std::string_view tag, fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::Error)) write(Level::Error, tag, fmt::format(f, std::forward<A>(a)...));
}

}  // namespace biud::log
