#include <gtest/gtest.h>

#include "biud/tensor/Runtime.h"

namespace {

using biud::runtime::autoThreads;

TEST(Runtime, ThreadsGivenInTheConfigAreUsedAsGiven) {
  EXPECT_EQ(autoThreads(3, nullptr, nullptr, 16), 3);
  EXPECT_EQ(autoThreads(3, "8", "4", 16), 3);  // the config wins over the environment
}

TEST(Runtime, AutoThreadsShareTheCoresAmongTheRanksOfTheNode) {
  EXPECT_EQ(autoThreads(0, nullptr, nullptr, 16), 0);  // one process: LibTorch's default
  EXPECT_EQ(autoThreads(0, nullptr, "1", 16), 0);
  EXPECT_EQ(autoThreads(0, nullptr, "2", 2), 1);  // biud-launch --nproc 2 on 2 cores
  EXPECT_EQ(autoThreads(0, nullptr, "4", 16), 4);
  EXPECT_EQ(autoThreads(0, nullptr, "3", 16), 5);  // rounded down: never more threads than cores
  EXPECT_EQ(autoThreads(0, nullptr, "8", 2), 1);   // at least one
}

TEST(Runtime, AutoThreadsLeaveAnExplicitOmpNumThreadsAlone) {
  EXPECT_EQ(autoThreads(0, "2", "2", 2), 0);
  EXPECT_EQ(autoThreads(0, "", "2", 2), 1);  // set but empty counts as unset
}

TEST(Runtime, AutoThreadsIgnoreAMalformedLocalWorldSize) {
  EXPECT_EQ(autoThreads(0, nullptr, "", 16), 0);
  EXPECT_EQ(autoThreads(0, nullptr, "two", 16), 0);
  EXPECT_EQ(autoThreads(0, nullptr, "2x", 16), 0);
  EXPECT_EQ(autoThreads(0, nullptr, "-2", 16), 0);
}

}  // namespace
