#include "biud/core/Progress.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>

#include "biud/core/Log.h"

namespace biud {

namespace {
std::atomic<int> g_interactive{-1};
std::atomic<bool> g_enabled{true};

std::string formatRate(double r, const std::string& unit) {
  if (r >= 100) return fmt::format("{:.0f} {}/s", r, unit);
  if (r >= 1) return fmt::format("{:.2f} {}/s", r, unit);
  if (r > 0) return fmt::format("{:.2f} s/{}", 1.0 / r, unit);
  return "-";
}
}  // namespace

void Progress::setInteractive(int mode) { g_interactive = mode; }
void Progress::setEnabled(bool on) { g_enabled = on; }

std::string Progress::formatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  if (t >= 3600) return fmt::format("{}h{:02}m{:02}s", t / 3600, (t / 60) % 60, t % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(std::string label, std::uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  const int mode = g_interactive.load();
  tty_ = mode == 1 || (mode == -1 && ::isatty(STDERR_FILENO) && log::enabled(log::Level::Info));
}

Progress::~Progress() {
  if (!finished_ && done_ > start_done_) finish();
}

double Progress::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(std::uint64_t n, const std::string& note) {
  done_ += n;
  if (!note.empty()) note_ = note;
  render(false);
}

void Progress::set(std::uint64_t done, const std::string& note) {
  if (done_ == 0 && start_done_ == 0) start_done_ = done;  // resumed: rate counts new work only
  done_ = done;
  if (!note.empty()) note_ = note;
  render(false);
}

void Progress::finish(const std::string& note) {
  if (finished_) return;
  if (!note.empty()) note_ = note;
  render(true);
  if (tty_ && g_enabled) std::fputc('\n', stderr);
  finished_ = true;
}

void Progress::render(bool force) {
  if (!g_enabled) return;
  const auto now = std::chrono::steady_clock::now();
  const double sinceDraw = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && sinceDraw < (tty_ ? 0.2 : logEverySeconds)) return;
  last_draw_ = now;
  const double el = elapsedSeconds();
  const double rate = el > 0 ? static_cast<double>(done_ - start_done_) / el : 0.0;
  std::string pos, eta;
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    pos = fmt::format("{}/{} ({:3.0f}%)", done_, total_, 100.0 * frac);
    const double left = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : NAN;
    eta = force ? fmt::format("took {}", formatDuration(el)) : fmt::format("ETA {}", formatDuration(left));
  } else {
    pos = fmt::format("{}", done_);
    eta = fmt::format("{} elapsed", formatDuration(el));
  }
  if (tty_) {
    std::string bar;
    if (total_ > 0) {
      const int width = 24;
      const int filled = static_cast<int>(width * std::min(1.0, static_cast<double>(done_) / total_));
      bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    }
    std::fprintf(stderr, "\r\033[K%s %s%s  %s  %s%s%s", label_.c_str(), bar.c_str(), pos.c_str(),
                 formatRate(rate, unit_).c_str(), eta.c_str(), note_.empty() ? "" : "  ", note_.c_str());
    std::fflush(stderr);
  } else {
    log::info("progress", "{} {}  {}  {}{}{}", label_, pos, formatRate(rate, unit_), eta, note_.empty() ? "" : "  ",
              note_);
  }
}

}  // namespace biud
