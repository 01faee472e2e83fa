// Issue 20: what an app prints when its body throws. Foreign exceptions (LibTorch's c10::Error
// carries a C++ stack trace after its first line) become one line; biud errors keep their exit
// codes; std::bad_alloc names the keys that size the work.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <stdexcept>

#include <gtest/gtest.h>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Launcher.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

/// Run an app whose body is `body` with `args`, returning (exit code, everything on stderr).
std::pair<int, std::string> runApp(const std::function<int()>& body, std::vector<std::string> args = {},
                                   unsigned flags = 0) {
  TempDir t("app");
  const auto errPath = t / "stderr.txt";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  FILE* f = std::fopen(errPath.c_str(), "w");
  ::dup2(::fileno(f), STDERR_FILENO);
  app::App a("biud-x", "test app");
  a.addCommon(flags);
  std::vector<std::string> argv{"biud-x"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> ptrs;
  for (auto& s : argv) ptrs.push_back(s.data());
  const int rc = a.run(static_cast<int>(ptrs.size()), ptrs.data(), body);
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::fclose(f);
  app::clearStop();
  return {rc, readText(errPath)};
}

const char* kTorchLike =
    "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1\n"
    "Exception raised from infer_size_impl at ../aten/src/ATen/ExpandUtils.cpp:31 (most recent call first):\n"
    "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x96 (0x7f in libc10.so)\n";

TEST(AppBoundary, ForeignExceptionIsOneLineAndTheTraceOnlyInDebug) {
  auto [rc, err] = runApp([]() -> int { throw std::runtime_error(kTorchLike); });
  EXPECT_EQ(rc, app::kExitError);
  EXPECT_EQ(err,
            "biud-x: error: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension "
            "1\n");
  auto [rc2, err2] = runApp([]() -> int { throw std::runtime_error(kTorchLike); }, {"--log-level", "debug"});
  EXPECT_EQ(rc2, app::kExitError);
  EXPECT_NE(err2.find("Exception raised from infer_size_impl"), std::string::npos) << err2;
}

TEST(AppBoundary, OutOfMemoryNamesTheKeysThatSizeTheWork) {
  auto [rc, err] = runApp([]() -> int { throw std::bad_alloc(); });
  EXPECT_EQ(rc, app::kExitError);
  EXPECT_NE(err.find("biud-x: error: out of memory"), std::string::npos) << err;
  EXPECT_NE(err.find("data.ct.size"), std::string::npos) << err;
  EXPECT_NE(err.find("data.loader.batch_size"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(AppBoundary, BiudErrorsKeepTheirExitCodes) {
  auto [rc, err] = runApp([]() -> int { BIUD_THROW(ConfigError, "key `x.y`: bad"); });
  EXPECT_EQ(rc, app::kExitUsage);
  EXPECT_NE(err.find("biud-x: error: "), std::string::npos) << err;
  EXPECT_NE(err.find("key `x.y`: bad"), std::string::npos) << err;
  auto [rc3, err3] = runApp([]() -> int { BIUD_THROW(IoError, "cannot write `f`: No space left on device"); });
  EXPECT_EQ(rc3, app::kExitError);
  EXPECT_EQ(std::count(err3.begin(), err3.end(), '\n'), 1) << err3;
}

// Weights holding NaN/Inf are refused unless the user says --allow-nonfinite-weights (apps that
// load weights register it with kWeights; tensor/Safetensors.cpp reads app::allowNonFiniteWeights).
TEST(AppBoundary, AllowNonFiniteWeightsFlagReachesTheProcess) {
  bool seen = true;
  auto [rc, err] = runApp(
      [&] {
        seen = app::allowNonFiniteWeights();
        return 0;
      },
      {}, app::kWeights);
  EXPECT_EQ(rc, 0) << err;
  EXPECT_FALSE(seen);
  auto [rc2, err2] = runApp(
      [&] {
        seen = app::allowNonFiniteWeights();
        return 0;
      },
      {"--allow-nonfinite-weights"}, app::kWeights);
  EXPECT_EQ(rc2, 0) << err2;
  EXPECT_TRUE(seen);
  auto [rc3, err3] = runApp([] { return 0; }, {"--allow-nonfinite-weights"}, app::kOut);  // not registered there
  EXPECT_EQ(rc3, app::kExitUsage);
}

}  // namespace

// Under biud-launch a save is announced by a marker file named after the rank, present exactly
// while the outermost SaveScope lives (Launcher.h: the launcher does not SIGKILL a saving rank).
TEST(AppBoundary, SaveScopeAnnouncesTheSaveToTheLauncher) {
  TempDir t("saving");
  ::setenv(launch::kSavingDirEnv, t.path().c_str(), 1);
  ::setenv("RANK", "3", 1);
  const auto marker = t / "3";
  {
    app::SaveScope outer;
    EXPECT_TRUE(std::filesystem::exists(marker));
    {
      app::SaveScope inner;
      EXPECT_TRUE(app::saving());
    }
    EXPECT_TRUE(std::filesystem::exists(marker)) << "the inner scope's end removed the outer save's marker";
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_FALSE(app::saving());
  ::unsetenv(launch::kSavingDirEnv);
  {
    app::SaveScope s;  // not under the launcher: nothing is written
    EXPECT_FALSE(std::filesystem::exists(marker));
  }
  ::unsetenv("RANK");
}

}  // namespace biud::test
