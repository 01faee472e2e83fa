#pragma once
// Private to src/data: recognising a failed allocation, so that the loader can say which config
// keys sized it instead of "std::bad_alloc" or a libtorch "[enforce fail at alloc_cpu.cpp:...]".
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include <c10/util/Exception.h>
#include <fmt/format.h>

namespace biud::data::detail {

/// Whether `e` reports an allocation that failed: std::bad_alloc, std::length_error (a vector
/// beyond max_size), c10::OutOfMemoryError (CUDA), or the c10::Error of libtorch's CPU allocator
/// ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes", which is a plain
/// c10::Error, recognised by its text).
inline bool isOutOfMemory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) || dynamic_cast<const std::length_error*>(&e) ||
      dynamic_cast<const c10::OutOfMemoryError*>(&e))
    return true;
  if (!dynamic_cast<const c10::Error*>(&e)) return false;
  const std::string m = e.what();
  for (const char* s : {"can't allocate memory", "not enough memory", "out of memory", "Cannot allocate memory"})
    if (m.find(s) != std::string::npos) return true;
  return false;
}

/// "221184000 bytes (211 MiB)".
inline std::string bytesText(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  double v = bytes;
  while (v >= 1024.0 && u < 6) v /= 1024.0, ++u;
  return u == 0 ? fmt::format("{:.0f} bytes", bytes) : fmt::format("{:.0f} bytes ({:.3g} {})", bytes, v, units[u]);
}

}  // namespace biud::data::detail
