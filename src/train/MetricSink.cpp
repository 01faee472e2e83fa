#include "biud/train/MetricSink.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"

namespace biud::train {

namespace {

double unixTime() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// --- minimal protobuf wire encoding ----------------------------------------------------------
void varint(std::string& s, std::uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void tag(std::string& s, int field, int wire) { varint(s, (static_cast<std::uint64_t>(field) << 3) | wire); }
void fieldBytes(std::string& s, int field, const std::string& bytes) {
  tag(s, field, 2);
  varint(s, bytes.size());
  s += bytes;
}
void fieldDouble(std::string& s, int field, double v) {
  tag(s, field, 1);
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64)
  s.append(b, 8);
}
void fieldFloat(std::string& s, int field, float v) {
  tag(s, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  s.append(b, 4);
}
void fieldVarint(std::string& s, int field, std::uint64_t v) {
  tag(s, field, 0);
  varint(s, v);
}
void le32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void le64(std::string& s, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t crc32c(const void* data, std::size_t n) {
  static std::uint32_t table[256];
  static bool init = [] {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  std::uint32_t c = 0xffffffffu;
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

}  // namespace

// --- JSONL -------------------------------------------------------------------------------------

namespace {
/// A metrics file that cannot be written (full disk, removed folder) is said once, loudly; the
/// run goes on so that its next checkpoint save still happens (or fails with its own error).
void warnIfBad(std::ofstream& out, bool& warned, const std::string& path) {
  if (out.good() || warned) return;
  warned = true;
  log::warn("train",
            "cannot write `{}` (disk full, or its folder was removed?): metrics are NOT being recorded there "
            "from now on; free space and resume from the last checkpoint to get them back",
            path);
}
}  // namespace

JsonlSink::JsonlSink(const std::string& path) : path_(path) {
  fs::makeDirs(std::filesystem::path(path).parent_path());
  out_.open(path, std::ios::app);
  BIUD_CHECK(out_.good(), IoError, "cannot open metrics file `{}` for appending", path);
}

void JsonlSink::log(std::int64_t step, const Metrics& metrics) {
  nlohmann::json j;
  j["step"] = step;
  j["time"] = unixTime();
  for (const auto& [k, v] : metrics) {
    if (std::isfinite(v))
      j[k] = v;
    else
      j[k] = nullptr;
  }
  out_ << j.dump() << '\n';
  warnIfBad(out_, warned_, path_);
}

void JsonlSink::flush() {
  out_.flush();
  warnIfBad(out_, warned_, path_);
}

// --- TensorBoard -------------------------------------------------------------------------------

std::uint32_t TensorBoardSink::maskedCrc32c(const void* data, std::size_t n) {
  const std::uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string TensorBoardSink::frameRecord(const std::string& payload) {
  std::string rec;
  std::string len;
  le64(len, payload.size());
  rec += len;
  le32(rec, maskedCrc32c(len.data(), len.size()));
  rec += payload;
  le32(rec, maskedCrc32c(payload.data(), payload.size()));
  return rec;
}

std::string TensorBoardSink::encodeScalarEvent(double wallTime, std::int64_t step, const std::string& name,
                                               float value) {
  // Event { double wall_time = 1; int64 step = 2; Summary summary = 5; }
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  fieldBytes(v, 1, name);
  fieldFloat(v, 2, value);
  std::string summary;
  fieldBytes(summary, 1, v);
  std::string ev;
  fieldDouble(ev, 1, wallTime);
  fieldVarint(ev, 2, static_cast<std::uint64_t>(step));
  fieldBytes(ev, 5, summary);
  return ev;
}

std::string TensorBoardSink::encodeFileVersionEvent(double wallTime) {
  // Event { double wall_time = 1; string file_version = 3; }
  std::string ev;
  fieldDouble(ev, 1, wallTime);
  fieldBytes(ev, 3, "brain.Event:2");
  return ev;
}

TensorBoardSink::TensorBoardSink(const std::string& dir) {
  fs::makeDirs(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  const double t = unixTime();
  path_ = (std::filesystem::path(dir) /
           fmt::format("events.out.tfevents.{}.{}.{}", static_cast<long long>(t), host, ::getpid()))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  BIUD_CHECK(out_.good(), IoError, "cannot open TensorBoard event file `{}`", path_);
  const std::string rec = frameRecord(encodeFileVersionEvent(t));
  out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
}

void TensorBoardSink::log(std::int64_t step, const Metrics& metrics) {
  const double t = unixTime();
  for (const auto& [k, v] : metrics) {
    if (!std::isfinite(v)) continue;
    const std::string rec = frameRecord(encodeScalarEvent(t, step, k, static_cast<float>(v)));
    out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
  }
  warnIfBad(out_, warned_, path_);
}

void TensorBoardSink::flush() {
  out_.flush();
  warnIfBad(out_, warned_, path_);
}

// --- Multi -------------------------------------------------------------------------------------

void MultiSink::log(std::int64_t step, const Metrics& metrics) {
  for (auto& s : sinks_) s->log(step, metrics);
}
void MultiSink::flush() {
  for (auto& s : sinks_) s->flush();
}
void MultiSink::close() {
  for (auto& s : sinks_) s->close();
}

}  // namespace biud::train
