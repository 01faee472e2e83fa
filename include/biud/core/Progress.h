#pragma once
/// \file Progress.h
/// A progress bar with rate and ETA. On a terminal it redraws one line on stderr; otherwise
/// (CI, log files, non-zero ranks) it degrades to a log line every `logEverySeconds`.
#include <chrono>
#include <cstdint>
#include <string>

namespace biud {

class Progress {
 public:
  /// `total` = 0 means unknown (no ETA, no percentage).
  Progress(std::string label, std::uint64_t total, std::string unit = "it");
  ~Progress();
  /// Advance by `n` items; `note` is shown after the bar (e.g. "loss 0.432").
  void advance(std::uint64_t n = 1, const std::string& note = "");
  /// Set the absolute position (for resumed work).
  void set(std::uint64_t done, const std::string& note = "");
  void finish(const std::string& note = "");
  std::uint64_t done() const { return done_; }
  double elapsedSeconds() const;
  /// Force the plain-line mode (used by tests and --quiet).
  static void setInteractive(int mode);  // -1 auto, 0 off, 1 on
  static void setEnabled(bool on);
  /// Format "1h02m03s" / "4m05s" / "12s".
  static std::string formatDuration(double seconds);
  double logEverySeconds = 10.0;

 private:
  void render(bool force);
  std::string label_, unit_, note_;
  std::uint64_t total_, done_ = 0, start_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false, tty_;
};

}  // namespace biud
