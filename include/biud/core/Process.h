#pragma once
/// \file Process.h
/// What every biud process shares below the app layer, free of LibTorch and of the typed config:
/// exit codes, stop requests from signals, save scopes, the --allow-nonfinite-weights switch and
/// the version line. Long loops (training, preprocessing, retrieval), checkpoint writers and the
/// launcher (core/Launcher.h) include this; app/App.h, which parses the flags and installs the
/// handlers, includes it too. The names stay in `biud::app`, where every caller knows them.
///
/// Exit codes: 1 runtime error, 2 usage or config error, 3 some items failed (partial results
/// written), 4 stopped by repeated signals without saving (the last checkpoint written before
/// stays), 130 interrupted (state saved).
///
/// Signals (SIGINT, SIGTERM): the first asks the app to stop at the next safe point (training
/// saves a checkpoint). A second one during a save (a SaveScope) does not interrupt it; a third
/// then exits at once with code 4. A second one outside a save exits at once with code 4. Each
/// case prints one line saying what was and was not saved.
#include <string>

namespace biud::app {

/// Exit codes.
constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitPartial = 3, kExitNotSaved = 4, kExitInterrupted = 130;

/// `biud <version> (git <hash>), LibTorch <v>, CUDA on|off`.
std::string versionString();

/// --allow-nonfinite-weights was given: weights holding NaN/Inf are read (they are refused by
/// default, naming the tensor; tensor/Safetensors.h consults this).
bool allowNonFiniteWeights();
/// Set by App::run from --allow-nonfinite-weights.
void setAllowNonFiniteWeights(bool allow);

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
/// kExitNotSaved). Nestable; thread-safe. Under biud-launch it also marks the rank as saving
/// (core/Launcher.h).
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
