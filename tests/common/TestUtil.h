#pragma once
// Helpers shared by the tests: paths, temp folders, running apps and the Python reference.
#include <filesystem>
#include <string>
#include <vector>

namespace biud {
struct Config;
}

namespace biud::test {

namespace stdfs = std::filesystem;

/// Repository root (tests run with it as working directory).
stdfs::path sourceDir();
/// build/bin, where the apps are.
stdfs::path binDir();
/// Path of an app in build/bin.
std::string app(const std::string& name);
/// The reference Python (venv with torch, transformers, scikit-learn, ...).
std::string python();

struct CommandResult {
  int rc = -1;
  std::string out;  ///< stdout and stderr together
};
/// Run a shell command, capturing its output.
CommandResult run(const std::string& cmd);
/// Run `python tests/reference/<script> args...`; fails the test (throws) on non-zero exit.
std::string runPython(const std::string& script, const std::string& args = "");

/// A fresh folder removed at destruction (kept when BIUD_KEEP_TMP is set).
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t");
  ~TempDir();
  const stdfs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  stdfs::path operator/(const std::string& p) const { return path_ / p; }

 private:
  stdfs::path path_;
};

/// Write text to a file (creating folders).
void writeText(const stdfs::path& p, const std::string& text);
std::string readText(const stdfs::path& p);
/// Write a WordPiece vocab.txt: the BERT special tokens ([PAD] [UNK] [CLS] [SEP] [MASK], ids 0-4),
/// "." and `words`, one per line; returns its path as a string.
std::string writeTinyVocab(const stdfs::path& file, const std::vector<std::string>& words);
/// Shell-quote one argument.
std::string quote(const std::string& s);

/// `--set` flags that shrink configs/quickstart.yaml for tests that run the real recipe through
/// the apps: a tiny trainable report encoder on the test's own vocabulary (no pretrained
/// checkpoint needed), 96 word pieces, the CT at 3 x 3 x 6 mm (64 x 64 x 32, crop 56 x 56 x 28) and
/// EFM on, so every loss term runs. Appended after `--config quickstart.yaml`.
std::string tinyQuickstartFlags();
/// The same changes on a loaded Config.
void shrinkQuickstart(Config& cfg);

}  // namespace biud::test
