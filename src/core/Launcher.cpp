#include "biud/core/Launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>

#include <fmt/ranges.h>

#include "biud/core/Error.h"
#include "biud/core/Process.h"

namespace biud::launch {

namespace {

using Clock = std::chrono::steady_clock;

int g_sigpipe[2] = {-1, -1};

void onSignal(int sig) {
  const unsigned char s = static_cast<unsigned char>(sig);
  const int saved = errno;
  (void)!::write(g_sigpipe[1], &s, 1);
  errno = saved;
}

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP};

struct Stream {
  int fd = -1;
  bool err = false;
  LineSplitter lines;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream out, err;
  std::deque<std::string> tail;
};

class Job {
 public:
  explicit Job(LaunchOptions o) : o_(std::move(o)) {}

  int run() {
    BIUD_CHECK(!o_.command.empty(), ConfigError, "no program given: biud-launch --nproc N [--] PROGRAM [ARGS...]");
    BIUD_CHECK(o_.nproc >= 1, ConfigError, "--nproc {} must be at least 1", o_.nproc);
    BIUD_CHECK(o_.nodeRank >= 0 && o_.nodeRank < o_.nnodes, ConfigError, "--node-rank {} must be in [0, --nnodes={})",
               o_.nodeRank, o_.nnodes);
    BIUD_CHECK(o_.nnodes == 1 || o_.port > 0, ConfigError,
               "--nnodes {} needs an explicit --master-port (the same on every node)", o_.nnodes);
    if (o_.port == 0) o_.port = freeLoopbackPort();
    BIUD_SYSCHECK(::pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK), "pipe2()");
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction previous[3];
    for (int k = 0; k < 3; ++k) sigaction(kForwarded[k], &sa, &previous[k]);
    int rc = 1;
    try {
      const int world = o_.nproc * o_.nnodes;
      std::fprintf(o_.err, "biud-launch: %d rank(s) of %s (world size %d, store %s:%d)\n", o_.nproc,
                   o_.command[0].c_str(), world, o_.addr.c_str(), o_.port);
      std::fflush(o_.err);
      savingDir_ = makeSavingDir();
      ranks_.resize(static_cast<std::size_t>(o_.nproc));
      for (int l = 0; l < o_.nproc; ++l) spawn(ranks_[static_cast<std::size_t>(l)], l);
      loop();
      rc = report();
    } catch (...) {
      signalAll(SIGKILL);
      restore(previous);
      removeSavingDir();
      throw;
    }
    restore(previous);
    removeSavingDir();
    return rc;
  }

 private:
  LaunchOptions o_;
  std::vector<Rank> ranks_;
  int failed_ = -1;  // index into ranks_ of the first rank that failed
  int signalled_ = 0;
  bool stopping_ = false;
  Clock::time_point killAt_{};
  Clock::time_point saveDeadline_{};
  std::string savingDir_;  // where ranks announce a checkpoint save in progress (app::SaveScope)
  bool saveWaitSaid_ = false;
  bool afterSave_ = false;  // a rank was saving at the last check

  static std::string makeSavingDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/biud-launch-XXXXXX";
    BIUD_CHECK(::mkdtemp(templ.data()) != nullptr, IoError, "cannot create a folder under `{}` for biud-launch: {}",
               tmp && *tmp ? tmp : "/tmp", std::strerror(errno));
    return templ;
  }

  void removeSavingDir() {
    if (savingDir_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(savingDir_, ec);
    savingDir_.clear();
  }

  /// Ranks (global numbers) still running that announce a checkpoint save in progress.
  std::vector<int> ranksSaving() const {
    std::vector<int> out;
    for (const auto& r : ranks_)
      if (r.running && ::access((savingDir_ + "/" + std::to_string(r.rank)).c_str(), F_OK) == 0) out.push_back(r.rank);
    return out;
  }

  static void restore(const struct sigaction (&previous)[3]) {
    for (int k = 0; k < 3; ++k) sigaction(kForwarded[k], &previous[k], nullptr);
    for (int& fd : g_sigpipe) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

  void spawn(Rank& r, int local) {
    const auto env = rankEnvironment(o_, local, o_.port);
    // Prepared before fork(): the child only calls async-signal-safe functions (and setenv).
    std::vector<char*> argv;
    for (auto& a : o_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int outp[2], errp[2];
    BIUD_SYSCHECK(::pipe2(outp, O_CLOEXEC), "pipe2()");
    BIUD_SYSCHECK(::pipe2(errp, O_CLOEXEC), "pipe2()");
    std::fflush(o_.out);
    std::fflush(o_.err);
    const pid_t pid = ::fork();
    BIUD_SYSCHECK(pid, "fork()");
    if (pid == 0) {
      // Own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it.
      ::setpgid(0, 0);
      ::dup2(outp[1], STDOUT_FILENO);
      ::dup2(errp[1], STDERR_FILENO);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int s : kForwarded) sigaction(s, &dfl, nullptr);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      ::setenv(kSavingDirEnv, savingDir_.c_str(), 1);
      ::execvp(argv[0], argv.data());
      const char* why = std::strerror(errno);
      for (const char* part : {"biud-launch: cannot run `", static_cast<const char*>(argv[0]), "`: ", why, "\n"})
        (void)!::write(STDERR_FILENO, part, std::strlen(part));
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent, so that the group exists before we signal it
    ::close(outp[1]);
    ::close(errp[1]);
    r.rank = o_.nodeRank * o_.nproc + local;
    r.pid = pid;
    r.running = true;
    r.out.fd = outp[0];
    r.err.fd = errp[0];
    r.err.err = true;
  }

  void emit(Rank& r, const Stream& s, const std::string& line) {
    FILE* f = s.err ? o_.err : o_.out;
    if (o_.prefix) std::fprintf(f, "[rank %d] ", r.rank);
    std::fwrite(line.data(), 1, line.size(), f);
    std::fputc('\n', f);
    std::fflush(f);
    if (s.err) {
      r.tail.push_back(line);
      while (static_cast<int>(r.tail.size()) > o_.tailLines) r.tail.pop_front();
    }
  }

  void drain(Rank& r, Stream& s) {
    char buf[8192];
    const ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        const std::string rest = s.lines.flush();
        if (!rest.empty()) emit(r, s, rest);
        ::close(s.fd);
        s.fd = -1;
      }
      return;
    }
    for (const auto& line : s.lines.feed(buf, static_cast<std::size_t>(n))) emit(r, s, line);
  }

  void signalAll(int sig) {
    for (auto& r : ranks_)
      if (r.running) ::kill(-r.pid, sig);
  }

  void beginStop(int sig) {
    if (!stopping_) {
      stopping_ = true;
      killAt_ = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o_.grace * 1000));
    }
    signalAll(sig);
  }

  /// True while the kill is postponed because a rank announces a save (at most `saveGrace`
  /// seconds after the grace ran out; a 4th signal still kills at once), and once more when the
  /// save ends: then the rank gets `grace` again to exit.
  bool waitForSaves() {
    if (signalled_ > 3) return false;
    if (saveDeadline_ == Clock::time_point{})
      saveDeadline_ = killAt_ + std::chrono::milliseconds(static_cast<long long>(o_.saveGrace * 1000));
    const auto now = Clock::now();
    if (now >= saveDeadline_) return false;
    const auto saving = ranksSaving();
    if (saving.empty()) {
      if (!afterSave_) return false;
      // A save just ended: its rank gets `grace` again to exit on its own (it was about to).
      afterSave_ = false;
      killAt_ = now + std::chrono::milliseconds(static_cast<long long>(o_.grace * 1000));
      return true;
    }
    afterSave_ = true;
    if (!saveWaitSaid_) {
      saveWaitSaid_ = true;
      std::fprintf(o_.err,
                   "biud-launch: rank(s) %s still saving a checkpoint %g s after the stop request: waiting for the "
                   "save (up to %g s more, --save-grace)\n",
                   fmt::format("{}", fmt::join(saving, ", ")).c_str(), o_.grace, o_.saveGrace);
      std::fflush(o_.err);
    }
    return true;
  }

  void reap() {
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      Rank& r = ranks_[i];
      if (!r.running) continue;
      int status = 0;
      const pid_t p = ::waitpid(r.pid, &status, WNOHANG);
      if (p != r.pid) continue;
      r.running = false;
      r.status = status;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failed_ < 0 && !signalled_) {
        failed_ = static_cast<int>(i);
        std::fprintf(o_.err, "biud-launch: rank %d failed (%s); stopping the other ranks\n", r.rank,
                     describeExitStatus(status).c_str());
        std::fflush(o_.err);
        beginStop(SIGTERM);
      }
    }
  }

  void onLauncherSignal(int s) {
    ++signalled_;
    if (signalled_ <= 3) {
      if (signalled_ == 1)
        std::fprintf(o_.err, "biud-launch: got %s, forwarding it to all ranks (they save and stop)\n", ::strsignal(s));
      else
        std::fprintf(o_.err,
                     "biud-launch: got %s again, forwarding it (#%d; a rank that is saving finishes the "
                     "save unless this is the 3rd; a 4th kills all ranks)\n",
                     ::strsignal(s), signalled_);
      std::fflush(o_.err);
      beginStop(s);
    } else {
      std::fprintf(o_.err, "biud-launch: killing all ranks (SIGKILL)\n");
      std::fflush(o_.err);
      signalAll(SIGKILL);
    }
  }

  void loop() {
    Clock::time_point allExited{};
    for (;;) {
      std::vector<pollfd> fds{{g_sigpipe[0], POLLIN, 0}};
      std::vector<std::pair<Rank*, Stream*>> who{{nullptr, nullptr}};
      for (auto& r : ranks_)
        for (Stream* s : {&r.out, &r.err})
          if (s->fd >= 0) {
            fds.push_back({s->fd, POLLIN, 0});
            who.emplace_back(&r, s);
          }
      ::poll(fds.data(), fds.size(), 100);
      if (fds[0].revents & POLLIN) {
        unsigned char s;
        while (::read(g_sigpipe[0], &s, 1) == 1) onLauncherSignal(s);
      }
      for (std::size_t k = 1; k < fds.size(); ++k)
        if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) drain(*who[k].first, *who[k].second);
      reap();
      if (stopping_ && Clock::now() >= killAt_ && waitForSaves()) {
        // A rank still saving its checkpoint gets up to saveGrace more (waitForSaves).
      } else if (stopping_ && Clock::now() >= killAt_) {
        bool any = false;
        for (auto& r : ranks_) any = any || r.running;
        if (any) {
          std::fprintf(o_.err, "biud-launch: ranks still running %g s after the stop request: killing them\n",
                       o_.grace);
          std::fflush(o_.err);
        }
        signalAll(SIGKILL);
        killAt_ = Clock::now() + std::chrono::hours(1);
      }
      bool running = false, open = false;
      for (auto& r : ranks_) {
        running = running || r.running;
        open = open || r.out.fd >= 0 || r.err.fd >= 0;
      }
      if (!running) {
        if (allExited == Clock::time_point{}) allExited = Clock::now();
        // Output pipes may be held open by a rank's own children: do not wait for them forever.
        if (!open || Clock::now() - allExited > std::chrono::seconds(2)) break;
      }
    }
    for (auto& r : ranks_)
      for (Stream* s : {&r.out, &r.err})
        if (s->fd >= 0) {
          ::close(s->fd);
          s->fd = -1;
        }
  }

  int report() {
    if (failed_ >= 0) {
      const Rank& r = ranks_[static_cast<std::size_t>(failed_)];
      std::fprintf(o_.err, "biud-launch: job failed: rank %d (pid %d) ended with %s", r.rank, static_cast<int>(r.pid),
                   describeExitStatus(r.status).c_str());
      if (!r.tail.empty()) {
        std::fprintf(o_.err, "; its last %zu stderr line(s):\n", r.tail.size());
        for (const auto& l : r.tail) std::fprintf(o_.err, "  [rank %d] %s\n", r.rank, l.c_str());
      } else {
        std::fprintf(o_.err, " (it wrote nothing to stderr)\n");
      }
      std::fflush(o_.err);
      return exitCodeOfStatus(r.status);
    }
    if (signalled_) return app::kExitInterrupted;
    return 0;
  }
};

}  // namespace

std::vector<std::pair<std::string, std::string>> rankEnvironment(const LaunchOptions& o, int localRank, int port) {
  return {{"RANK", std::to_string(o.nodeRank * o.nproc + localRank)},
          {"WORLD_SIZE", std::to_string(o.nproc * o.nnodes)},
          {"LOCAL_RANK", std::to_string(localRank)},
          {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
          {"GROUP_RANK", std::to_string(o.nodeRank)},
          {"MASTER_ADDR", o.addr},
          {"MASTER_PORT", std::to_string(port)}};
}

std::string describeExitStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return "unknown status";
}

int exitCodeOfStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int freeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BIUD_SYSCHECK(fd, "socket()");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    BIUD_THROW(DistError, "cannot find a free port on 127.0.0.1: {}", std::strerror(e));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::vector<std::string> LineSplitter::feed(const char* data, std::size_t n) {
  partial_.append(data, n);
  std::vector<std::string> lines;
  std::size_t start = 0, pos;
  while ((pos = partial_.find('\n', start)) != std::string::npos) {
    lines.push_back(partial_.substr(start, pos - start));
    start = pos + 1;
  }
  partial_.erase(0, start);
  return lines;
}

std::string LineSplitter::flush() {
  std::string rest;
  rest.swap(partial_);
  return rest;
}

int launch(LaunchOptions options) { return Job(std::move(options)).run(); }

}  // namespace biud::launch
