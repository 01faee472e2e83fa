#pragma once
/// \file Launcher.h
/// What biud-launch does, as a library: start N local ranks of a program as one distributed job
/// with torchrun's environment, relay their output line by line, forward SIGINT/SIGTERM/SIGHUP,
/// and stop the whole job when one rank fails. Torch-free (POSIX only).
///
/// Signals reaching the launcher while `launch()` runs are forwarded as the ranks' own repeats
/// mean (biud/core/Process.h): 1st = stop and save, 2nd = exit now unless a save is running, 3rd =
/// abandon the save; a 4th kills every rank (SIGKILL). Each rank runs in its own process group,
/// so a terminal's Ctrl-C reaches the launcher only, which forwards it.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace biud::launch {

/// The environment variable naming the folder in which a rank announces a checkpoint save in
/// progress: app::SaveScope creates `<folder>/<RANK>` and removes it when the save ends, and the
/// launcher does not SIGKILL a rank that is saving until LaunchOptions::saveGrace has passed.
inline constexpr char kSavingDirEnv[] = "BIUD_LAUNCH_SAVING_DIR";

struct LaunchOptions {
  int nproc = 1;                   ///< ranks started on this node
  int nnodes = 1;                  ///< nodes in the job (one launcher per node)
  int nodeRank = 0;                ///< index of this node, 0..nnodes-1
  int port = 0;                    ///< rendezvous store port; 0 = a free loopback port (single node only)
  std::string addr = "127.0.0.1";  ///< host of rank 0 (the store)
  double grace = 10;               ///< seconds between the stop signal and SIGKILL
  /// Extra seconds, beyond `grace`, for a rank that reports a checkpoint save in progress (an
  /// app::SaveScope; the rank writes `$BIUD_LAUNCH_SAVING_DIR/<RANK>` while it saves).
  double saveGrace = 600;
  int tailLines = 20;                ///< stderr lines of the failed rank shown in the report
  bool prefix = false;               ///< prefix relayed lines with `[rank k] `
  std::vector<std::string> command;  ///< program and arguments each rank runs (PATH is searched)
  std::FILE* out = stdout;           ///< where the ranks' stdout lines go
  std::FILE* err = stderr;           ///< where their stderr lines and the launcher's messages go
};

/// The environment a rank gets: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
/// MASTER_ADDR, MASTER_PORT (in this order). RANK = nodeRank * nproc + localRank.
std::vector<std::pair<std::string, std::string>> rankEnvironment(const LaunchOptions& o, int localRank, int port);

/// `exit code N` or `killed by signal N (name)` for a waitpid() status.
std::string describeExitStatus(int status);
/// The shell's convention: the exit code, or 128 + the signal number.
int exitCodeOfStatus(int status);

/// A free TCP port on 127.0.0.1 (bound and released: another process may take it first).
int freeLoopbackPort();

/// Splits a byte stream into lines (without the `\n`; a `\r` before it is kept).
class LineSplitter {
 public:
  /// Append bytes; returns the lines they completed.
  std::vector<std::string> feed(const char* data, std::size_t n);
  /// The unterminated rest (emptied), e.g. at end of stream.
  std::string flush();

 private:
  std::string partial_;
};

/// Run the job and return its exit code: 0 when every rank exits 0; the first failed rank's
/// code (128 + signal when killed), after the other ranks were stopped (SIGTERM, SIGKILL after
/// `grace` seconds, or up to `saveGrace` more while a rank is saving a checkpoint) and its last `tailLines` stderr
/// lines shown; 130 (app::kExitInterrupted) when stopped by a signal; 127 when the program cannot be started.
/// ConfigError for an empty command, a node rank outside [0, nnodes) or several nodes without a port.
int launch(LaunchOptions options);

}  // namespace biud::launch
