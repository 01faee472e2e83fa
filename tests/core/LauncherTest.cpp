// launch::launch (what biud-launch runs), called in-process on small /bin/sh ranks: the rank
// environment, line relaying, failure handling and exit codes, compared with hand-worked values.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/Launcher.h"

namespace bl = biud::launch;

namespace {

std::string readAll(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

struct Captured {
  int rc = -1;
  std::string out, err;
};

/// Run `script` under /bin/sh as every rank, capturing what the launcher relays.
Captured launchSh(bl::LaunchOptions o, const std::string& script) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  o.out = out;
  o.err = err;
  o.command = {"/bin/sh", "-c", script};
  Captured c;
  c.rc = bl::launch(o);
  c.out = readAll(out);
  c.err = readAll(err);
  std::fclose(out);
  std::fclose(err);
  return c;
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(Launcher, RankEnvironmentIsTorchrunsOnEveryNode) {
  bl::LaunchOptions o;
  o.nproc = 2;
  o.nnodes = 3;
  o.nodeRank = 1;
  o.addr = "10.0.0.7";
  // Node 1 of 3, two ranks per node: its local rank 1 is global rank 1 * 2 + 1 = 3 of 6.
  const auto env = bl::rankEnvironment(o, 1, 29500);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"RANK", "3"},       {"WORLD_SIZE", "6"},         {"LOCAL_RANK", "1"},     {"LOCAL_WORLD_SIZE", "2"},
      {"GROUP_RANK", "1"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29500"}};
  EXPECT_EQ(env, expected);
}

TEST(Launcher, LineSplitterJoinsChunksAndKeepsTheRest) {
  bl::LineSplitter s;
  EXPECT_TRUE(s.feed("ab", 2).empty());
  EXPECT_EQ(s.feed("c\nd\n\ne", 6), (std::vector<std::string>{"abc", "d", ""}));
  EXPECT_EQ(s.feed("f\r\n", 3), (std::vector<std::string>{"ef\r"}));
  EXPECT_EQ(s.feed("tail", 4), std::vector<std::string>{});
  EXPECT_EQ(s.flush(), "tail");
  EXPECT_EQ(s.flush(), "");
}

TEST(Launcher, ExitStatusesAreDescribedLikeTheShell) {
  const pid_t a = ::fork();
  if (a == 0) ::_exit(3);
  int sa = 0;
  ASSERT_EQ(::waitpid(a, &sa, 0), a);
  EXPECT_EQ(bl::describeExitStatus(sa), "exit code 3");
  EXPECT_EQ(bl::exitCodeOfStatus(sa), 3);
  const pid_t b = ::fork();
  if (b == 0) {
    ::raise(SIGKILL);
    ::_exit(0);
  }
  int sb = 0;
  ASSERT_EQ(::waitpid(b, &sb, 0), b);
  EXPECT_EQ(bl::describeExitStatus(sb), std::string("killed by signal 9 (") + ::strsignal(SIGKILL) + ")");
  EXPECT_EQ(bl::exitCodeOfStatus(sb), 137);
}

TEST(Launcher, RanksGetTheirEnvironmentAndOutputIsRelayedPerLine) {
  bl::LaunchOptions o;
  o.nproc = 2;
  o.port = 12345;
  o.prefix = true;
  // The last stdout line has no newline: it is relayed at end of stream.
  const auto c =
      launchSh(o,
               "echo \"$RANK/$WORLD_SIZE/$LOCAL_RANK/$LOCAL_WORLD_SIZE/$MASTER_ADDR:$MASTER_PORT\"; printf last; "
               "echo \"err $RANK\" >&2");
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_TRUE(has(c.out, "[rank 0] 0/2/0/2/127.0.0.1:12345\n")) << c.out;
  EXPECT_TRUE(has(c.out, "[rank 1] 1/2/1/2/127.0.0.1:12345\n")) << c.out;
  EXPECT_TRUE(has(c.out, "[rank 0] last\n")) << c.out;
  EXPECT_TRUE(has(c.out, "[rank 1] last\n")) << c.out;
  EXPECT_FALSE(has(c.out, "err")) << "stderr went to stdout: " << c.out;
  EXPECT_TRUE(has(c.err, "[rank 1] err 1\n")) << c.err;
  EXPECT_TRUE(has(c.err, "biud-launch: 2 rank(s) of /bin/sh (world size 2, store 127.0.0.1:12345)")) << c.err;
  // Without --prefix the lines are relayed as they are.
  o.prefix = false;
  o.nproc = 1;
  const auto d = launchSh(o, "echo plain");
  EXPECT_EQ(d.rc, 0);
  EXPECT_EQ(d.out, "plain\n");
}

TEST(Launcher, FailedRankStopsTheOthersAndIsReportedWithItsTail) {
  bl::LaunchOptions o;
  o.nproc = 2;
  o.grace = 1;
  o.tailLines = 2;
  // Rank 1 writes three stderr lines and exits 5; rank 0 would sleep 60 s but is stopped.
  const auto c =
      launchSh(o, "if [ \"$RANK\" = 1 ]; then echo one >&2; echo two >&2; echo three >&2; exit 5; fi; sleep 60");
  EXPECT_EQ(c.rc, 5) << c.err;
  EXPECT_TRUE(has(c.err, "biud-launch: rank 1 failed (exit code 5); stopping the other ranks")) << c.err;
  EXPECT_TRUE(has(c.err, "ended with exit code 5; its last 2 stderr line(s):\n  [rank 1] two\n  [rank 1] three\n"))
      << c.err;
}

TEST(Launcher, KilledRankGives128PlusSignalAndSilentRankSaysSo) {
  bl::LaunchOptions o;
  const auto c = launchSh(o, "kill -9 $$");
  EXPECT_EQ(c.rc, 137) << c.err;
  EXPECT_TRUE(has(c.err, "killed by signal 9")) << c.err;
  EXPECT_TRUE(has(c.err, "(it wrote nothing to stderr)")) << c.err;
}

TEST(Launcher, ProgramThatCannotStartIs127) {
  bl::LaunchOptions o;
  std::FILE* err = std::tmpfile();
  o.err = err;
  o.command = {"/nonexistent/prog", "x"};
  EXPECT_EQ(bl::launch(o), 127);
  const std::string e = readAll(err);
  std::fclose(err);
  EXPECT_TRUE(has(e, "biud-launch: cannot run `/nonexistent/prog`: No such file or directory")) << e;
}

TEST(Launcher, UsageErrorsAreConfigErrors) {
  bl::LaunchOptions o;
  EXPECT_THROW(bl::launch(o), biud::ConfigError);  // no command
  o.command = {"/bin/true"};
  o.nnodes = 2;
  o.nodeRank = 2;
  EXPECT_THROW(bl::launch(o), biud::ConfigError);  // node rank outside [0, 2)
  o.nodeRank = 1;
  EXPECT_THROW(bl::launch(o), biud::ConfigError);  // several nodes without a port
}

// A rank that announces a checkpoint save ($BIUD_LAUNCH_SAVING_DIR/$RANK, what app::SaveScope
// writes) outlives the grace until the save ends; a rank that does not is killed at the grace.
// Each rank ignores SIGTERM for 3 s (a slow save); the grace is 0.5 s.
TEST(Launcher, RankThatIsSavingIsNotKilledAtTheGrace) {
  bl::LaunchOptions o;
  o.nproc = 2;
  o.grace = 0.5;
  o.saveGrace = 30;
  // Rank 1 fails at once so that the launcher stops rank 0. Rank 0 is "saving": it created its
  // marker, traps SIGTERM and takes 3 s to finish, then removes the marker and exits 130.
  const std::string script =
      "if [ \"$RANK\" = 1 ]; then sleep 0.3; exit 5; fi; "
      "touch \"$BIUD_LAUNCH_SAVING_DIR/$RANK\"; trap '' TERM; sleep 3; "
      "echo saved; rm \"$BIUD_LAUNCH_SAVING_DIR/$RANK\"; exit 130";
  const auto c = launchSh(o, script);
  EXPECT_EQ(c.rc, 5) << c.err;
  EXPECT_TRUE(has(c.out, "saved\n")) << c.out << c.err;
  EXPECT_TRUE(has(c.err,
                  "biud-launch: rank(s) 0 still saving a checkpoint 0.5 s after the stop request: waiting for the save "
                  "(up to 30 s more, --save-grace)"))
      << c.err;
  EXPECT_FALSE(has(c.err, "killing them")) << c.err;

  // Without the marker the same rank is killed when the grace runs out.
  const std::string noMarker =
      "if [ \"$RANK\" = 1 ]; then sleep 0.3; exit 5; fi; trap '' TERM; sleep 3; echo saved; exit 130";
  const auto d = launchSh(o, noMarker);
  EXPECT_EQ(d.rc, 5) << d.err;
  EXPECT_FALSE(has(d.out, "saved")) << d.out;
  EXPECT_TRUE(has(d.err, "ranks still running 0.5 s after the stop request: killing them")) << d.err;

  // A save that takes longer than saveGrace is killed too.
  o.saveGrace = 0.5;
  const auto e = launchSh(o, script);
  EXPECT_EQ(e.rc, 5) << e.err;
  EXPECT_FALSE(has(e.out, "saved")) << e.out;
  EXPECT_TRUE(has(e.err, "killing them")) << e.err;
}
