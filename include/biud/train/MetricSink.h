#pragma once
/// \file MetricSink.h
/// Where training metrics go. The trainer logs `map<name, value>` per step to every sink; sinks
/// know nothing of tasks or losses (torchtitan's BaseLogger, marian's observers).
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace biud::train {

using Metrics = std::map<std::string, double>;

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void log(std::int64_t step, const Metrics& metrics) = 0;
  virtual void flush() {}
  virtual void close() { flush(); }
};

/// One JSON object per line: {"step": N, "time": unix_seconds, "<name>": value, ...}.
/// Appends, so that a resumed run continues the same file; NaN/Inf are written as null.
class JsonlSink final : public MetricSink {
 public:
  explicit JsonlSink(const std::string& path);
  void log(std::int64_t step, const Metrics& metrics) override;
  void flush() override;

 private:
  std::ofstream out_;
  std::string path_;
  bool warned_ = false;
};

/// TensorBoard event file (TFRecord of Event protobufs with scalar summaries), written without
/// TensorFlow: `tensorboard --logdir <run>/tensorboard` reads it.
class TensorBoardSink final : public MetricSink {
 public:
  explicit TensorBoardSink(const std::string& dir);
  void log(std::int64_t step, const Metrics& metrics) override;
  void flush() override;
  const std::string& path() const { return path_; }

  /// Encodings, exposed for tests.
  static std::string encodeScalarEvent(double wallTime, std::int64_t step, const std::string& tag, float value);
  static std::string encodeFileVersionEvent(double wallTime);
  static std::string frameRecord(const std::string& payload);
  static std::uint32_t maskedCrc32c(const void* data, std::size_t n);

 private:
  std::ofstream out_;
  bool warned_ = false;
  std::string path_;
};

/// Several sinks behind one.
class MultiSink final : public MetricSink {
 public:
  void add(std::unique_ptr<MetricSink> s) { sinks_.push_back(std::move(s)); }
  void log(std::int64_t step, const Metrics& metrics) override;
  void flush() override;
  void close() override;
  bool empty() const { return sinks_.empty(); }

 private:
  std::vector<std::unique_ptr<MetricSink>> sinks_;
};

}  // namespace biud::train
