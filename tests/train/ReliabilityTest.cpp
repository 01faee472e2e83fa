// Issue 20, signals and disks: a second signal does not interrupt a checkpoint save, a third
// abandons it with exit code 4 and the previous checkpoint intact; a full disk while writing
// optimizer.pt is one IoError (not SIGABRT) and leaves `latest` as it was; leftover temporary
// folders go at the next start; damaged checkpoint files are one-line errors naming the file.
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Process.h"
#include "biud/train/Trainer.h"
#include "common/TestUtil.h"
#include "train/ToyTask.h"

using namespace biud;
namespace stdfs = std::filesystem;

namespace {

using test::readText;
using test::writeText;

Config toyConfig(int steps, int saveEvery) {
  return loadConfig("", {"trainer.steps=" + std::to_string(steps), "trainer.save_every=" + std::to_string(saveEvery),
                         "trainer.keep_last=3", "schedule.warmup_steps=2", "optimizer.lr=0.01", "logging.every_steps=1",
                         "logging.file=false"});
}

std::string latestName(const stdfs::path& run) {
  return stdfs::read_symlink(run / "checkpoints" / "latest").string();  // a relative link (Checkpoint.h)
}

std::vector<std::string> folders(const stdfs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec))
    if (e.is_directory() && !e.is_symlink()) out.push_back(e.path().filename().string());  // not `latest`
  std::sort(out.begin(), out.end());
  return out;
}

/// A folder shared by a death test's parent and its re-executed child (the "threadsafe" style
/// runs the test body again in a fresh process): the parent picks it, the child inherits it.
stdfs::path sharedDir(const char* var) {
  if (const char* v = std::getenv(var)) return v;
  static std::vector<std::unique_ptr<test::TempDir>> keep;
  keep.push_back(std::make_unique<test::TempDir>("reliab"));
  const std::string p = keep.back()->str();
  ::setenv(var, p.c_str(), 1);
  return p;
}

/// Child side: train a toy run that gets `signalsInSave` SIGINTs while writing the checkpoint
/// that the first SIGINT (at step 3) asked for; a periodic save at step 2 precedes it.
[[noreturn]] void trainWithSignals(const stdfs::path& run, int signalsInSave) {
  app::clearStop();
  app::installStopHandlers();
  auto task = std::make_unique<test::ToyTask>(7);
  task->onStep = [](int call) {
    if (call == 3) std::raise(SIGINT);  // the first signal: stop and save after this step
  };
  int states = 0;
  task->onState = [&states, signalsInSave] {
    if (++states == 2)  // the save the signal asked for (the first was the periodic one at step 2)
      for (int i = 0; i < signalsInSave; ++i) std::raise(SIGINT);
  };
  train::Trainer t(toyConfig(10, 2), run.string(), std::move(task), {});
  const int rc = t.train();
  std::fflush(nullptr);
  std::_Exit(rc);
}

TEST(TrainerReliability, SecondSignalDuringASaveDoesNotInterruptIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const stdfs::path run = sharedDir("BIUD_TEST_RELIAB_SAVE2") / "run";
  EXPECT_EXIT(trainWithSignals(run, 1), ::testing::ExitedWithCode(app::kExitInterrupted),
              "state is being saved; this signal does not interrupt it");
  ::unsetenv("BIUD_TEST_RELIAB_SAVE2");
  EXPECT_EQ(latestName(run), "step_000003");
  EXPECT_TRUE(stdfs::exists(run / "checkpoints" / "step_000003" / "state.json"));
  EXPECT_TRUE(stdfs::exists(run / "checkpoints" / "step_000003" / "optimizer.pt"));
  EXPECT_EQ(folders(run / "checkpoints"), (std::vector<std::string>{"step_000002", "step_000003"}));
  // The saved state resumes: step 3, and the run finishes.
  app::clearStop();
  Config c = toyConfig(5, 2);
  c.trainer.resume = "latest";
  train::Trainer t(c, run.string(), std::make_unique<test::ToyTask>(1), {});
  ASSERT_EQ(t.train(), 0);
  EXPECT_EQ(t.step(), 5);
}

TEST(TrainerReliability, ThirdSignalAbandonsTheSaveWithExitCode4AndThePreviousCheckpointIntact) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const stdfs::path run = sharedDir("BIUD_TEST_RELIAB_SAVE3") / "run";
  EXPECT_EXIT(trainWithSignals(run, 2), ::testing::ExitedWithCode(app::kExitNotSaved),
              "save abandoned; nothing was saved since the previous checkpoint");
  ::unsetenv("BIUD_TEST_RELIAB_SAVE3");
  EXPECT_EQ(latestName(run), "step_000002");
  const auto left = folders(run / "checkpoints");
  ASSERT_EQ(left.size(), 2u);  // step_000002 and the abandoned step_000003.tmp-<pid>
  EXPECT_EQ(left[0], "step_000002");
  EXPECT_EQ(left[1].rfind("step_000003.tmp-", 0), 0u) << left[1];
  // The next start of the run removes the abandoned folder and resumes from step 2.
  app::clearStop();
  Config c = toyConfig(4, 2);
  c.trainer.resume = "latest";
  train::Trainer t(c, run.string(), std::make_unique<test::ToyTask>(1), {});
  ASSERT_EQ(t.train(), 0);
  EXPECT_EQ(folders(run / "checkpoints"), (std::vector<std::string>{"step_000002", "step_000004"}));
}

TEST(TrainerReliability, SecondSignalOutsideASaveExitsAtOnceWithCode4) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        app::clearStop();
        app::installStopHandlers();
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(app::kExitNotSaved), "exiting at once; nothing was saved since the last checkpoint");
}

/// RLIMIT_FSIZE makes every write past `bytes` fail with EFBIG (SIGXFSZ ignored): the same code
/// path as a full disk (ENOSPC), without root or a loop device.
struct FileSizeLimit {
  explicit FileSizeLimit(rlim_t bytes) {
    old_ = std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit l = saved_;
    l.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &l), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_);
  }
  rlimit saved_{};
  void (*old_)(int) = nullptr;
};

TEST(TrainerReliability, FullDiskWhileWritingOptimizerStateIsAnErrorAndLatestStays) {
  test::TempDir d("reliabdisk");
  app::clearStop();
  const auto run = d / "run";
  const auto ck = run / "checkpoints";
  // Calibrate: a limit above model.safetensors and below optimizer.pt.
  std::uint64_t model = 0, optim = 0;
  {
    train::Trainer t(toyConfig(2, 2), (d / "probe").string(), std::make_unique<test::ToyTask>(7), {});
    ASSERT_EQ(t.train(), 0);
    model = stdfs::file_size(d / "probe" / "checkpoints" / "step_000002" / "model.safetensors");
    optim = stdfs::file_size(d / "probe" / "checkpoints" / "step_000002" / "optimizer.pt");
  }
  ASSERT_LT(model + 256, optim);
  std::unique_ptr<FileSizeLimit> limit;
  auto task = std::make_unique<test::ToyTask>(7);
  task->onStep = [&](int call) {
    if (call == 5) limit = std::make_unique<FileSizeLimit>((model + optim) / 2);  // after the save at step 4
  };
  train::Trainer t(toyConfig(8, 4), run.string(), std::move(task), {});
  try {
    t.train();
    ADD_FAILURE() << "the save at step 8 should have failed";
  } catch (const IoError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot save checkpoint `" + (ck / "step_000008").string() + "`"), std::string::npos) << m;
    EXPECT_NE(m.find("optimizer.pt"), std::string::npos) << m;
    EXPECT_NE(m.find("File too large"), std::string::npos) << m;
    EXPECT_NE(m.find("the previous checkpoint `" + (ck / "step_000004").string() + "` is intact"), std::string::npos)
        << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  limit.reset();
  EXPECT_EQ(latestName(run), "step_000004");
  EXPECT_EQ(folders(ck), std::vector<std::string>{"step_000004"});  // no step_000008, no temporary folder
  app::clearStop();
  Config c = toyConfig(8, 4);
  c.trainer.resume = "latest";
  train::Trainer r(c, run.string(), std::make_unique<test::ToyTask>(7), {});
  ASSERT_EQ(r.train(), 0);
  EXPECT_EQ(latestName(run), "step_000008");
}

TEST(TrainerReliability, DamagedCheckpointFilesAreOneLineErrorsNamingTheFile) {
  test::TempDir d("reliabload");
  app::clearStop();
  const auto run = d / "run";
  {
    train::Trainer t(toyConfig(4, 2), run.string(), std::make_unique<test::ToyTask>(7), {});
    ASSERT_EQ(t.train(), 0);
  }
  const auto ck = run / "checkpoints";
  const auto last = ck / "step_000004";
  struct Case {
    const char* file;
    size_t keep;  // bytes kept (truncation)
    const char* expect;
  };
  for (const Case& k : {Case{"optimizer.pt", 100, "is truncated or corrupt"},
                        Case{"rng.pt", 300, "is truncated or corrupt"}, Case{"state.json", 20, "is not valid JSON"}}) {
    SCOPED_TRACE(k.file);
    const std::string whole = readText(last / k.file);
    writeText(last / k.file, whole.substr(0, k.keep));
    Config c = toyConfig(6, 2);
    c.trainer.resume = "latest";
    train::Trainer t(c, run.string(), std::make_unique<test::ToyTask>(7), {});
    try {
      t.train();
      ADD_FAILURE() << "resumed from a damaged " << k.file;
    } catch (const DataError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("`" + (last / k.file).string() + "`"), std::string::npos) << m;
      EXPECT_NE(m.find(k.expect), std::string::npos) << m;
      EXPECT_NE(m.find((ck / "step_000002").string()), std::string::npos) << m;  // where to go instead
      EXPECT_EQ(m.find("Exception raised from"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    writeText(last / k.file, whole);
  }
}

TEST(TrainerReliability, LeftoverTemporaryFoldersAreRemovedAtTheNextStart) {
  test::TempDir d("reliabtmp");
  app::clearStop();
  const auto ck = d / "run" / "checkpoints";
  fs::makeDirs(ck / "step_000007.tmp-4242");
  writeText(ck / "step_000007.tmp-4242" / "model.safetensors", "partial");
  fs::makeDirs(ck / "step_000003.old-4242");
  writeText(ck / "step_000003.old-4242" / "state.json", "{}");
  train::CheckpointManager m(ck, 3);
  EXPECT_TRUE(m.list().empty());  // neither counts as a checkpoint
  train::Trainer t(toyConfig(2, 2), (d / "run").string(), std::make_unique<test::ToyTask>(7), {});
  ASSERT_EQ(t.train(), 0);
  EXPECT_EQ(folders(ck), std::vector<std::string>{"step_000002"});
}

}  // namespace
