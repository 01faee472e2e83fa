#pragma once
/// \file Error.h
/// One exception hierarchy for the whole project. Every error carries the source location
/// where it was raised; apps print `what()` as one line and exit non-zero (see app/App.h).
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace biud {

/// Base of all biud errors. `what()` is the user-facing message; `where()` the throwing site.
class Error : public std::runtime_error {
 public:
  Error(const std::string& msg, const char* file = "", int line = 0);
  const std::string& where() const { return where_; }
  /// Exit code an app uses for this error (1 by default; 2 for usage/config errors).
  virtual int exitCode() const { return 1; }

 private:
  std::string where_;
};

/// Bad configuration or command line: unknown key, wrong type, value out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exitCode() const override { return 2; }
};
/// A file could not be read, written or parsed.
class IoError : public Error {
 public:
  using Error::Error;
};
/// Input data is malformed or inconsistent (corrupt volume, missing column, id mismatch).
class DataError : public Error {
 public:
  using Error::Error;
};
/// A numeric problem (NaN/Inf, shape mismatch) or a broken invariant inside biud.
class ValueError : public Error {
 public:
  using Error::Error;
};
/// Multi-process trouble: rendezvous, timeouts, a failed rank.
class DistError : public Error {
 public:
  using Error::Error;
};
/// CUDA or NCCL call failed.
class CudaError : public Error {
 public:
  using Error::Error;
};

/// The first line of an exception message. LibTorch's c10::Error appends a C++ stack trace after
/// it; messages quoted inside a biud error keep only this line.
std::string firstLine(const std::string& what);

namespace detail {
[[noreturn]] void throwCudaError(int code, const char* what, const char* expr, const char* file, int line);
[[noreturn]] void throwSysError(const std::string& what, const char* file, int line);
}  // namespace detail

}  // namespace biud

/// Throw `Type` with a fmt-formatted message and the current source location.
#define BIUD_THROW(Type, ...) throw Type(::fmt::format(__VA_ARGS__), __FILE__, __LINE__)

/// Throw `Type` with a formatted message unless `cond` holds. Never use assert() on user input.
#define BIUD_CHECK(cond, Type, ...)             \
  do {                                          \
    if (!(cond)) BIUD_THROW(Type, __VA_ARGS__); \
  } while (0)

/// Check a POSIX call that returns -1 on failure; the message gets strerror(errno) appended.
#define BIUD_SYSCHECK(expr, ...)                                                                     \
  do {                                                                                               \
    if ((expr) == -1) ::biud::detail::throwSysError(::fmt::format(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

/// Check a CUDA runtime call (cudaError_t) — usable in CUDA builds only.
#define BIUD_CUDA_CHECK(expr)                                                                                     \
  do {                                                                                                            \
    auto _biud_err = (expr);                                                                                      \
    if (_biud_err != 0)                                                                                           \
      ::biud::detail::throwCudaError(static_cast<int>(_biud_err), cudaGetErrorString(_biud_err), #expr, __FILE__, \
                                     __LINE__);                                                                   \
  } while (0)

/// Check an NCCL call (ncclResult_t) — usable in CUDA builds only.
#define BIUD_NCCL_CHECK(expr)                                                                                     \
  do {                                                                                                            \
    auto _biud_res = (expr);                                                                                      \
    if (_biud_res != 0)                                                                                           \
      ::biud::detail::throwCudaError(static_cast<int>(_biud_res), ncclGetErrorString(_biud_res), #expr, __FILE__, \
                                     __LINE__);                                                                   \
  } while (0)
