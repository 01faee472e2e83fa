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
/// Errors thrown from the body become one line on stderr and a non-zero exit code; run()
/// installs the SIGINT/SIGTERM handlers. The exit codes, the stop and save API and what the
/// signals do are in core/Process.h (included here), so that code below the app layer reaches
/// them without the typed config this header brings in.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "biud/config/Config.h"
#include "biud/core/Process.h"

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

}  // namespace biud::app
