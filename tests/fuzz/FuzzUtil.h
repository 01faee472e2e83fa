#pragma once
/// \file FuzzUtil.h
/// Shared by the libFuzzer harnesses of tests/fuzz: the accepted outcome of a bad input is a
/// biud::Error (or a subclass); anything else — a foreign exception (std::bad_alloc,
/// nlohmann's out_of_range, std::length_error ...), a crash, a sanitizer report, a hang — is a
/// finding. guard() turns a foreign exception into an abort that names its type, so that both
/// libFuzzer and the ctest replay (Replay.cpp) report it.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>

#include "biud/core/Error.h"

namespace biud::fuzz {

template <class F>
void guard(F&& f) {
  try {
    f();
  } catch (const biud::Error& e) {
    // a clear error: the accepted outcome (BIUD_FUZZ_VERBOSE=1 prints it, to check seeds)
    static const bool verbose = std::getenv("BIUD_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "accepted error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FUZZ FINDING: uncaught %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "FUZZ FINDING: uncaught non-std exception\n");
    std::abort();
  }
}

/// A private folder for this process (removed at exit), emptied by fresh().
class TempDir {
 public:
  static TempDir& get() {
    static TempDir t;
    return t;
  }
  const std::filesystem::path& path() const { return dir_; }
  /// Remove everything inside and return the folder.
  const std::filesystem::path& fresh() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) std::filesystem::remove_all(e.path(), ec);
    return dir_;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/biud-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    dir_ = tmpl;
  }
  std::filesystem::path dir_;
};

inline void writeFile(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", p.c_str());
    std::abort();
  }
}

/// Splits an input into parts at a separator (for harnesses that need several files).
inline std::string_view nextPart(std::string_view& rest, std::string_view sep) {
  const size_t at = rest.find(sep);
  std::string_view part = rest.substr(0, at);
  rest = at == std::string_view::npos ? std::string_view() : rest.substr(at + sep.size());
  return part;
}

}  // namespace biud::fuzz
