// biud-launch: start N local ranks of a biud program (torchrun-style environment), relay their
// output, forward Ctrl-C/SIGTERM, and stop the whole job when one rank fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "biud/core/App.h"
#include "biud/core/Error.h"

namespace {

using Clock = std::chrono::steady_clock;

int g_sigpipe[2] = {-1, -1};

void onSignal(int sig) {
  const unsigned char s = static_cast<unsigned char>(sig);
  const int saved = errno;
  (void)!::write(g_sigpipe[1], &s, 1);
  errno = saved;
}

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BIUD_SYSCHECK(fd, "socket()");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    BIUD_THROW(biud::DistError, "cannot find a free port on 127.0.0.1: {}", std::strerror(errno));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return "unknown status";
}
int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

struct Stream {
  int fd = -1;
  bool err = false;
  std::string partial;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream out, err;
  std::deque<std::string> tail;
};

class Launcher {
 public:
  int nproc = 1, nnodes = 1, nodeRank = 0, port = 0, tailLines = 20;
  double grace = 10;
  bool prefix = false;
  std::string addr = "127.0.0.1";
  std::vector<std::string> cmd;

  int run() {
    BIUD_CHECK(!cmd.empty(), biud::ConfigError, "no program given: biud-launch --nproc N [--] PROGRAM [ARGS...]");
    BIUD_CHECK(nodeRank >= 0 && nodeRank < nnodes, biud::ConfigError, "--node-rank {} must be in [0, --nnodes={})", nodeRank, nnodes);
    BIUD_CHECK(nnodes == 1 || port > 0, biud::ConfigError,
               "--nnodes {} needs an explicit --master-port (the same on every node)", nnodes);
    if (port == 0) port = freePort();
    BIUD_SYSCHECK(::pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK), "pipe2()");
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);

    const int world = nproc * nnodes;
    std::fprintf(stderr, "biud-launch: %d rank(s) of %s (world size %d, store %s:%d)\n", nproc, cmd[0].c_str(), world,
                 addr.c_str(), port);
    ranks_.resize(nproc);
    for (int l = 0; l < nproc; ++l) spawn(ranks_[l], nodeRank * nproc + l, l, world);
    loop();
    return report();
  }

 private:
  std::vector<Rank> ranks_;
  int failed_ = -1;  // index into ranks_ of the first rank that failed
  int signalled_ = 0;
  bool stopping_ = false;
  Clock::time_point killAt_{};

  void spawn(Rank& r, int rank, int local, int world) {
    int outp[2], errp[2];
    BIUD_SYSCHECK(::pipe2(outp, O_CLOEXEC), "pipe2()");
    BIUD_SYSCHECK(::pipe2(errp, O_CLOEXEC), "pipe2()");
    const pid_t pid = ::fork();
    BIUD_SYSCHECK(pid, "fork()");
    if (pid == 0) {
      // Own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it.
      ::setpgid(0, 0);
      ::dup2(outp[1], STDOUT_FILENO);
      ::dup2(errp[1], STDERR_FILENO);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &dfl, nullptr);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(nodeRank).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "biud-launch: cannot run `%s`: %s\n", argv[0], std::strerror(errno));
      std::fflush(stderr);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent, so that the group exists before we signal it
    ::close(outp[1]);
    ::close(errp[1]);
    r.rank = rank;
    r.pid = pid;
    r.running = true;
    r.out.fd = outp[0];
    r.err.fd = errp[0];
    r.err.err = true;
  }

  void emit(Rank& r, Stream& s, const std::string& line) {
    FILE* f = s.err ? stderr : stdout;
    if (prefix) std::fprintf(f, "[rank %d] ", r.rank);
    std::fwrite(line.data(), 1, line.size(), f);
    std::fputc('\n', f);
    std::fflush(f);
    if (s.err) {
      r.tail.push_back(line);
      while (static_cast<int>(r.tail.size()) > tailLines) r.tail.pop_front();
    }
  }

  void drain(Rank& r, Stream& s) {
    char buf[8192];
    const ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (!s.partial.empty()) emit(r, s, s.partial);
        s.partial.clear();
        ::close(s.fd);
        s.fd = -1;
      }
      return;
    }
    s.partial.append(buf, static_cast<size_t>(n));
    size_t pos;
    while ((pos = s.partial.find('\n')) != std::string::npos) {
      emit(r, s, s.partial.substr(0, pos));
      s.partial.erase(0, pos + 1);
    }
  }

  void signalAll(int sig) {
    for (auto& r : ranks_)
      if (r.running) ::kill(-r.pid, sig);
  }

  void beginStop(int sig) {
    if (!stopping_) {
      stopping_ = true;
      killAt_ = Clock::now() + std::chrono::milliseconds(static_cast<long long>(grace * 1000));
    }
    signalAll(sig);
  }

  void reap() {
    for (size_t i = 0; i < ranks_.size(); ++i) {
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
        std::fprintf(stderr, "biud-launch: rank %d failed (%s); stopping the other ranks\n", r.rank,
                     describeStatus(status).c_str());
        beginStop(SIGTERM);
      }
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
        while (::read(g_sigpipe[0], &s, 1) == 1) {
          ++signalled_;
          // Forwarded as the ranks' own repeats mean (see biud/core/App.h): 1st = stop and save,
          // 2nd = exit now unless a save is running, 3rd = abandon the save. Only a 4th kills.
          if (signalled_ <= 3) {
            if (signalled_ == 1)
              std::fprintf(stderr, "biud-launch: got %s, forwarding it to all ranks (they save and stop)\n",
                           ::strsignal(s));
            else
              std::fprintf(stderr, "biud-launch: got %s again, forwarding it (#%d; a rank that is saving finishes the "
                           "save unless this is the 3rd; a 4th kills all ranks)\n", ::strsignal(s), signalled_);
            beginStop(s);
          } else {
            std::fprintf(stderr, "biud-launch: killing all ranks (SIGKILL)\n");
            signalAll(SIGKILL);
          }
        }
      }
      for (size_t k = 1; k < fds.size(); ++k)
        if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) drain(*who[k].first, *who[k].second);
      reap();
      if (stopping_ && Clock::now() >= killAt_) {
        bool any = false;
        for (auto& r : ranks_) any = any || r.running;
        if (any) std::fprintf(stderr, "biud-launch: ranks still running %.0f s after the stop request: killing them\n", grace);
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
  }

  int report() {
    if (failed_ >= 0) {
      const Rank& r = ranks_[failed_];
      std::fprintf(stderr, "biud-launch: job failed: rank %d (pid %d) ended with %s", r.rank, static_cast<int>(r.pid),
                   describeStatus(r.status).c_str());
      if (!r.tail.empty()) {
        std::fprintf(stderr, "; its last %zu stderr line(s):\n", r.tail.size());
        for (const auto& l : r.tail) std::fprintf(stderr, "  [rank %d] %s\n", r.rank, l.c_str());
      } else {
        std::fprintf(stderr, " (it wrote nothing to stderr)\n");
      }
      return exitCodeOf(r.status);
    }
    if (signalled_) return biud::app::kExitInterrupted;
    return 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  biud::app::App app("biud-launch",
                     "Start N local processes of a (biud) program as one distributed job, like torchrun:\n"
                     "  biud-launch --nproc 2 -- biud-train -c configs/x.yaml\n"
                     "Each process gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT\n"
                     "(a free port unless --master-port). Ctrl-C/SIGTERM are forwarded to all ranks; when one rank\n"
                     "fails, the others are stopped and the failed rank, its exit code and its last stderr lines\n"
                     "are shown. The exit code is the failed rank's (130 when interrupted).");
  Launcher l;
  auto& cli = app.cli();
  cli.add_option("-n,--nproc", l.nproc, "processes (ranks) to start on this node")->required()->check(CLI::Range(1, 1024));
  cli.add_option("--nnodes", l.nnodes, "nodes in the job (run biud-launch once per node)")->check(CLI::Range(1, 65536));
  cli.add_option("--node-rank", l.nodeRank, "index of this node, 0..nnodes-1 (node 0 hosts the store)");
  cli.add_option("--master-addr", l.addr, "host of rank 0 (the rendezvous store); default 127.0.0.1");
  cli.add_option("--master-port", l.port, "store port; default: a free port (single node only)")->check(CLI::Range(0, 65535));
  cli.add_flag("--prefix", l.prefix, "prefix every output line with `[rank k] `");
  cli.add_option("--grace", l.grace, "seconds between SIGTERM and SIGKILL when stopping ranks")->check(CLI::Range(0.0, 3600.0));
  cli.add_option("--tail", l.tailLines, "stderr lines of the failed rank to show")->check(CLI::Range(0, 10000));
  // Everything from the first argument that is not a launcher flag (or after `--`) is the command.
  cli.prefix_command();
  cli.footer("PROGRAM [ARGS...]: the command each rank runs (put `--` before it when in doubt).");
  return app.run(argc, argv, [&] {
    l.cmd = cli.remaining();
    if (!l.cmd.empty() && l.cmd.front() == "--") l.cmd.erase(l.cmd.begin());
    return l.run();
  });
}
