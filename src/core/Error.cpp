#include "biud/core/Error.h"

#include <cerrno>
#include <cstring>

namespace biud {

Error::Error(const std::string& msg, const char* file, int line)
    : std::runtime_error(msg), where_(file && *file ? fmt::format("{}:{}", file, line) : std::string()) {}

std::string firstLine(const std::string& what) {
  const auto nl = what.find('\n');
  return nl == std::string::npos ? what : what.substr(0, nl);
}

namespace detail {

void throwCudaError(int code, const char* what, const char* expr, const char* file, int line) {
  throw CudaError(fmt::format("{} failed with error {} ({})", expr, code, what ? what : "?"), file, line);
}

void throwSysError(const std::string& what, const char* file, int line) {
  const int e = errno;
  throw IoError(fmt::format("{}: {}", what, std::strerror(e)), file, line);
}

}  // namespace detail
}  // namespace biud
