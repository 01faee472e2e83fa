#include "biud/core/Process.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "biud/BuildInfo.h"
#include "biud/core/Launcher.h"

namespace biud::app {

namespace {
std::atomic<bool> g_stop{false};
std::atomic<int> g_signals{0};
std::atomic<int> g_saving{0};
std::atomic<bool> g_allowNonFinite{false};

// Async-signal-safe: write(2) of a literal only.
template <size_t N>
void say(const char (&msg)[N]) {
  ssize_t rc = ::write(STDERR_FILENO, msg, N - 1);
  (void)rc;
}

void onSignal(int) {
  const int n = g_signals.fetch_add(1) + 1;
  if (n == 1) {
    g_stop = true;
    say("\nbiud: stop requested: stopping at the next safe point and saving what is done (a second signal exits "
        "without saving)\n");
    return;
  }
  if (g_saving.load() > 0) {
    if (n == 2) {
      say("\nbiud: state is being saved; this signal does not interrupt it (a third signal abandons the save: nothing "
          "of it is kept, the previous checkpoint stays)\n");
      return;
    }
    say("\nbiud: save abandoned; nothing was saved since the previous checkpoint, which is intact (exit code 4)\n");
    std::_Exit(kExitNotSaved);
  }
  say("\nbiud: exiting at once; nothing was saved since the last checkpoint (exit code 4)\n");
  std::_Exit(kExitNotSaved);
}
}  // namespace

bool stopRequested() { return g_stop.load(); }
void requestStop() { g_stop = true; }
void clearStop() {
  g_stop = false;
  g_signals = 0;
}
int signalsReceived() { return g_signals.load(); }
bool allowNonFiniteWeights() { return g_allowNonFinite.load(); }
void setAllowNonFiniteWeights(bool allow) { g_allowNonFinite = allow; }

namespace {
/// Under biud-launch: `$BIUD_LAUNCH_SAVING_DIR/<RANK>` exists while this rank saves, so that the
/// launcher's stop grace does not SIGKILL a rank in the middle of its checkpoint (Launcher.h).
std::string savingMarker() {
  const char* dir = std::getenv(launch::kSavingDirEnv);
  const char* rank = std::getenv("RANK");
  if (!dir || !*dir || !rank || !*rank) return {};
  return std::string(dir) + "/" + rank;
}
}  // namespace

SaveScope::SaveScope() {
  if (g_saving.fetch_add(1) == 0) {
    const auto m = savingMarker();
    if (!m.empty()) {
      const int fd = ::open(m.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);  // best effort: without it the launcher's plain grace applies
    }
  }
}
SaveScope::~SaveScope() {
  if (g_saving.fetch_sub(1) == 1) {
    const auto m = savingMarker();
    if (!m.empty()) ::unlink(m.c_str());
  }
}
bool saving() { return g_saving.load() > 0; }

void installStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal does not turn a write in progress into EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string versionString() {
  return fmt::format("biud {} (git {}), LibTorch {}, CUDA {}", BIUD_VERSION_STRING, BIUD_GIT_HASH, BIUD_TORCH_VERSION,
                     BIUD_WITH_CUDA_BUILD ? "on" : "off");
}

}  // namespace biud::app
