#include "biud/app/App.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"

namespace biud::app {

App::App(std::string name, std::string description) : name_(std::move(name)), cli_(std::move(description), name_) {
  cli_.set_version_flag("--version", versionString(),
                        "print version, git hash, LibTorch version and CUDA support, then exit");
  cli_.add_flag("-q,--quiet", quiet_, "only warnings and errors; no progress bar");
  cli_.add_option("--log-level", log_level_, "console log level: trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  cli_.get_formatter()->column_width(34);
}

void App::addCommon(unsigned flags) {
  flags_ = flags;
  if (flags & kConfig) {
    cli_.add_option("-c,--config", config_path_,
                    "YAML config (recipes in configs/); `include:` pulls in other files. Default: built-in defaults")
        ->check(CLI::ExistingFile);
    cli_.add_option("--set", sets_,
                    "override one config key, e.g. --set optimizer.lr=3e-4 (repeatable; applied after --config)")
        ->allow_extra_args(false);
    cli_.add_flag("--help-config", help_config_, "list every config key with its type, default and meaning, then exit");
  }
  if (flags & kOut) cli_.add_option("-o,--out", out_, "output folder (run folder for training); created if missing");
  if (flags & kManifest)
    cli_.add_option("-m,--manifest", manifest_,
                    "CSV or JSONL list of cases (id, image, report..., labels; same as --set data.manifest=FILE)")
        ->check(CLI::ExistingFile);
  if (flags & kSeed) cli_.add_option("--seed", seed_, "seed of every random stream (same as --set seed=N)");
  if (flags & kThreads) cli_.add_option("--threads", threads_, "CPU threads (0 = all cores; same as --set threads=N)");
  if (flags & kWeights)
    cli_.add_flag(
        "--allow-nonfinite-weights", allow_nonfinite_,
        "read weight files holding NaN or Inf values (refused by default, naming the file and the tensor: such "
        "weights usually come from a run that diverged)");
  if (flags & kDevice)
    cli_.add_option("--device", device_, "auto (CUDA when available), cpu or cuda (same as --set device=...)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

Config& App::config() {
  if (!loaded_) {
    std::vector<std::string> sets = sets_;
    if (seed_ >= 0) sets.push_back(fmt::format("seed={}", seed_));
    if (threads_ >= 0) sets.push_back(fmt::format("threads={}", threads_));
    if (!device_.empty()) sets.push_back("device=" + device_);
    config_ = loadConfig(config_path_, sets);
    // Set after loading (not as a --set string): a path is taken as written, never parsed as YAML.
    if (!manifest_.empty()) config_.data.manifest = manifest_;
    loaded_ = true;
  }
  return config_;
}

std::string App::prepareOutDir(const std::string& defaultName, OutKind kind) {
  Config& c = config();
  std::string dir;
  if (!out_.empty()) {
    fs::makeDirs(out_);
    dir = out_;
  } else {
    dir = fs::makeRunDir(c.out_dir, c.name.empty() ? "" : c.name, defaultName).string();
  }
  // A folder with checkpoints is a training run, and its config.resolved.yaml is what loads it:
  // only the apps that train write it; an evaluation sent there keeps its own config beside it.
  auto resolved = fs::stdfs::path(dir) / "config.resolved.yaml";
  const bool runFolder = kind == OutKind::kResults && fs::stdfs::exists(fs::stdfs::path(dir) / "checkpoints") &&
                         fs::stdfs::exists(resolved);
  if (runFolder) resolved = fs::stdfs::path(dir) / ("config." + name_ + ".yaml");
  fs::atomicWrite(resolved, "# " + versionString() + "\n" + config::toYaml(c, /*comments=*/false));
  if (c.logging.file) log::addFile((fs::stdfs::path(dir) / "log.txt").string());
  if (runFolder)
    log::info("app", "{} is a training run: its config.resolved.yaml stays; this config is in {}", dir,
              resolved.filename().string());
  return dir;
}

int App::run(int argc, char** argv, const std::function<int()>& body) {
  try {
    cli_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli_.exit(e);  // prints help/version or the usage error
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    const log::Level lvl = quiet_ ? log::Level::Warn : log::parseLevel(log_level_);
    log::init(lvl, ::isatty(STDERR_FILENO));
    if (quiet_) Progress::setEnabled(false);
    if (help_config_) {
      Config defaults;
      std::printf("Config keys of %s (type, default, meaning). Set them in YAML or with --set key=value.\n\n%s",
                  name_.c_str(), config::describe(defaults).c_str());
      return kExitOk;
    }
    setAllowNonFiniteWeights(allow_nonfinite_);
    installStopHandlers();
    const int rc = body();
    log::flush();
    if (stopRequested() && rc == kExitOk) return kExitInterrupted;
    return rc;
  } catch (const Error& e) {
    log::flush();
    std::fprintf(stderr, "%s: error: %s\n", name_.c_str(), e.what());
    if (log::enabled(log::Level::Debug) && !e.where().empty())
      std::fprintf(stderr, "  (raised at %s)\n", e.where().c_str());
    return e.exitCode();
  } catch (const std::bad_alloc&) {
    log::flush();
    std::fprintf(
        stderr,
        "%s: error: out of memory. Lower what sizes the work (data.loader.batch_size, data.ct.size, model size, "
        "--threads) or free memory; --log-level debug shows where\n",
        name_.c_str());
    return kExitError;
  } catch (const std::exception& e) {
    // Foreign exceptions (LibTorch's c10::Error, ITK, the standard library): one line; LibTorch
    // appends a C++ stack trace after the first line, shown with --log-level debug.
    log::flush();
    const std::string what = e.what();
    const auto nl = what.find('\n');
    std::fprintf(stderr, "%s: error: %s\n", name_.c_str(), what.substr(0, nl).c_str());
    if (nl != std::string::npos && log::enabled(log::Level::Debug))
      std::fprintf(stderr, "%s\n", what.substr(nl + 1).c_str());
    return kExitError;
  }
}

}  // namespace biud::app
