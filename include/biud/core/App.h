#pragma once
/// \file App.h
/// What every executable shares: one set of flag names, `--version`, config loading, run-folder
/// setup and error handling. An app is a thin main:
///
///     int main(int argc, char** argv) {
///       biud::app::App app("biud-foo", "What it does.");
///       app.addCommon(biud::app::kConfig | biud::app::kOut);
///       app.cli().add_option("--bar", bar, "what bar means");
///       return app.run(argc, argv, [&] { ...; return 0; });
///     }
///
/// Errors thrown from the body become one line on stderr and a non-zero exit code:
/// 1 runtime error, 2 usage or config error, 3 some items failed (partial results written),
/// 4 stopped by repeated signals without saving (the last checkpoint written before stays),
/// 130 interrupted (state saved).
///
/// Signals (SIGINT, SIGTERM): the first asks the app to stop at the next safe point (training
/// saves a checkpoint). A second one during a save (a SaveScope) does not interrupt it; a third
/// then exits at once with code 4. A second one outside a save exits at once with code 4. Each
/// case prints one line saying what was and was not saved.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "biud/config/Config.h"

namespace biud::app {

enum CommonFlag : unsigned {
  kConfig = 1u << 0,    ///< --config FILE, --set k=v, --help-config
  kOut = 1u << 1,       ///< --out DIR
  kManifest = 1u << 2,  ///< --manifest FILE (sets data.manifest)
  kSeed = 1u << 3,      ///< --seed N
  kThreads = 1u << 4,   ///< --threads N
  kDevice = 1u << 5,    ///< --device auto|cpu|cuda
  kWeights = 1u << 6,   ///< --allow-nonfinite-weights (apps that load weights)
  kAll = 0xffffu,
};

/// Exit codes.
constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitPartial = 3, kExitNotSaved = 4,
              kExitInterrupted = 130;

/// `biud <version> (git <hash>), LibTorch <v>, CUDA on|off`.
std::string versionString();

class App {
 public:
  App(std::string name, std::string description);
  CLI::App& cli() { return cli_; }
  /// Add the shared flags named by `flags` (always: --quiet, --log-level, --version).
  void addCommon(unsigned flags);
  /// Parse, then run `body` with errors mapped to exit codes.
  int run(int argc, char** argv, const std::function<int()>& body);

  /// The config after --config, --set and the flags that map onto config keys
  /// (--seed, --threads, --device, --manifest = data.manifest). Loaded on first use.
  Config& config();
  /// Options as given.
  const std::string& configPath() const { return config_path_; }
  const std::vector<std::string>& overrides() const { return sets_; }
  const std::string& out() const { return out_; }
  const std::string& manifest() const { return manifest_; }
  bool quiet() const { return quiet_; }
  /// True when the user passed --out.
  bool outGiven() const { return !out_.empty(); }
  /// What an app writes into its output folder.
  enum class OutKind {
    kResults,      ///< evaluation output: beside a training run's checkpoints it keeps its own config.<app>.yaml
    kTrainingRun,  ///< a training run (checkpoints): its config.resolved.yaml is what loads it later
  };
  /// Create the output folder (--out, or out_dir/<name>), save config.resolved.yaml,
  /// add the log file. Returns the folder. An app that evaluates a run may be pointed at the
  /// run's own folder: there its config goes to config.<app>.yaml, so that the run's
  /// config.resolved.yaml (which describes the checkpoint's model) stays.
  std::string prepareOutDir(const std::string& defaultName, OutKind kind = OutKind::kResults);

 private:
  std::string name_;
  CLI::App cli_;
  unsigned flags_ = 0;
  std::string config_path_, out_, manifest_, device_, log_level_ = "info";
  std::vector<std::string> sets_;
  long long seed_ = -1;
  int threads_ = -1;
  bool quiet_ = false, help_config_ = false, loaded_ = false, allow_nonfinite_ = false;
  Config config_;
};

/// --allow-nonfinite-weights was given: weights holding NaN/Inf are read (they are refused by
/// default, naming the tensor; tensor/Safetensors.h consults this).
bool allowNonFiniteWeights();

/// Set from SIGINT/SIGTERM once App::run installed its handlers; long loops poll it.
bool stopRequested();
void requestStop();
/// Clear a stop request (tests that interrupt and resume in one process).
void clearStop();
/// Install SIGINT/SIGTERM handlers that set stopRequested() (see the file comment for repeats).
void installStopHandlers();
/// Signals received since the handlers were installed (or clearStop()).
int signalsReceived();

/// While one lives, state is being written that a user would lose if the process died: a second
/// SIGINT/SIGTERM is answered with a message instead of an exit (a third exits with
/// kExitNotSaved). Nestable; thread-safe.
class SaveScope {
 public:
  SaveScope();
  ~SaveScope();
  SaveScope(const SaveScope&) = delete;
  SaveScope& operator=(const SaveScope&) = delete;
};
/// True while a SaveScope lives.
bool saving();

}  // namespace biud::app
