#include "common/TestUtil.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "biud/BuildInfo.h"
#include "biud/config/Config.h"

namespace biud::test {

stdfs::path sourceDir() { return BIUD_SOURCE_DIR; }
stdfs::path binDir() { return stdfs::path(BIUD_BINARY_DIR) / "bin"; }
std::string app(const std::string& name) { return (binDir() / name).string(); }
std::string python() {
  if (const char* p = std::getenv("BIUD_PYTHON"); p && *p) return p;
  return BIUD_PYTHON_EXE;
}

CommandResult run(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string runPython(const std::string& script, const std::string& args) {
  const std::string cmd =
      quote(python()) + " " + quote((sourceDir() / "tests" / "reference" / script).string()) + " " + args;
  auto r = run(cmd);
  if (r.rc != 0)
    throw std::runtime_error("reference script failed (rc " + std::to_string(r.rc) + "): " + cmd + "\n" + r.out);
  return r.out;
}

TempDir::TempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  stdfs::path base =
      std::getenv("BIUD_TEST_TMP") ? stdfs::path(std::getenv("BIUD_TEST_TMP")) : stdfs::temp_directory_path();
  path_ = base / (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  stdfs::remove_all(path_);
  stdfs::create_directories(path_);
}

TempDir::~TempDir() {
  if (!std::getenv("BIUD_KEEP_TMP")) {
    std::error_code ec;
    stdfs::remove_all(path_, ec);
  }
}

void writeText(const stdfs::path& p, const std::string& text) {
  if (p.has_parent_path()) stdfs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string writeTinyVocab(const stdfs::path& file, const std::vector<std::string>& words) {
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n.\n";
  for (const auto& w : words) vocab += w + "\n";
  writeText(file, vocab);
  return file.string();
}

std::string readText(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

std::string tinyQuickstartFlags() {
  return " --set \"model.text_encoder={arch: bert, preset: tiny, weights: '', frozen: false, pool: ''}\""
         " --set text.max_length=96 --set data.ct.spacing=[3.0,3.0,6.0] --set data.ct.size=[64,64,32]"
         " --set data.augment.random_crop=[56,56,28] --set loss.efm.weight=0.5";
}

void shrinkQuickstart(Config& cfg) {
  cfg.model.text_encoder = NetConfig{};
  cfg.model.text_encoder.arch = "bert";
  cfg.model.text_encoder.preset = "tiny";
  cfg.text.max_length = 96;
  cfg.data.ct.spacing = {3.0, 3.0, 6.0};
  cfg.data.ct.size = {64, 64, 32};
  cfg.data.augment.random_crop = {56, 56, 28};
  cfg.loss.efm.weight = 0.5;
}

}  // namespace biud::test
