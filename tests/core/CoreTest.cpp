// Core utilities: atomic writes, seeding, progress formatting, error hierarchy.
#include <filesystem>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"
#include "common/TestUtil.h"

using namespace biud;

TEST(Fs, AtomicWriteReplacesAndLeavesNoTemp) {
  test::TempDir d;
  const auto p = d / "sub" / "out.json";
  fs::atomicWrite(p, "first");
  fs::atomicWrite(p, "second");
  EXPECT_EQ(fs::readFile(p), "second");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(d / "sub")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Fs, UncommittedAtomicFileKeepsOldContent) {
  test::TempDir d;
  const auto p = d / "keep.txt";
  fs::atomicWrite(p, "old");
  {
    fs::AtomicFile f(p);
    f.write("partial new content");
    // destroyed without commit(), as when an exception unwinds
  }
  EXPECT_EQ(fs::readFile(p), "old");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(d.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Fs, MissingFileErrorNamesIt) {
  try {
    fs::readFile("/nonexistent/x.csv");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "file `/nonexistent/x.csv` does not exist");
  }
}

TEST(Fs, RunDirGetsTimestampedName) {
  test::TempDir d;
  const auto dir = fs::makeRunDir(d.path(), "", "biud");
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  const auto name = dir.filename().string();
  ASSERT_EQ(name.size(), std::string("biud-20261123-151500").size());
  EXPECT_EQ(name.rfind("biud-20", 0), 0u);
  EXPECT_EQ(fs::makeRunDir(d.path(), "named").filename(), "named");
}

TEST(Rng, SplitMixMatchesReferenceValues) {
  // Reference values of SplitMix64 (Vigna) for state increments from 0: first outputs.
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_NE(deriveSeed(1, 0), deriveSeed(1, 1));
  EXPECT_NE(deriveSeed(1, 0), deriveSeed(2, 0));
  EXPECT_EQ(deriveSeed(7, "augment"), deriveSeed(7, "augment"));
}

TEST(Rng, StateRoundTripReproducesStream) {
  Rng a(42);
  a.next();
  const auto st = a.state();
  const auto x = a.next(), y = a.next();
  Rng b(0);
  b.setState(st);
  EXPECT_EQ(b.next(), x);
  EXPECT_EQ(b.next(), y);
  EXPECT_THROW(b.setState("garbage"), ValueError);
}

TEST(Progress, DurationFormat) {
  EXPECT_EQ(Progress::formatDuration(5), "5s");
  EXPECT_EQ(Progress::formatDuration(125), "2m05s");
  EXPECT_EQ(Progress::formatDuration(3723), "1h02m03s");
  EXPECT_EQ(Progress::formatDuration(-1), "?");
}

TEST(Errors, ExitCodesAndLocation) {
  try {
    BIUD_THROW(ConfigError, "bad {}", 1);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "bad 1");
    EXPECT_EQ(e.exitCode(), 2);
    EXPECT_NE(e.where().find("CoreTest.cpp:"), std::string::npos);
  }
  EXPECT_EQ(DataError("x").exitCode(), 1);
}
