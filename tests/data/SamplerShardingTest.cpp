// Data-parallel equivalence at the sampler level: W ranks with a per-rank batch b see, at every
// step, exactly the items one rank with batch W*b sees (rank r holds slice r of the global
// batch), in every epoch and sampler mode. Together with item-keyed augmentation this is what
// lets N ranks follow the single-process trajectory (tests/integration/DistTrainTest.cpp).
#include <gtest/gtest.h>

#include "biud/data/Sampler.h"

namespace data = biud::data;

namespace {

std::vector<std::vector<std::int64_t>> epochOf(std::int64_t n, const std::vector<std::int64_t>& groups,
                                               const char* mode, std::int64_t batch, int rank, int world,
                                               std::int64_t epoch) {
  data::SamplerOptions o;
  o.batchSize = batch;
  o.mode = mode;
  o.seed = 1234;
  o.rank = rank;
  o.world = world;
  o.dropLast = true;
  return data::BatchSampler(n, groups, o).epoch(epoch);
}

}  // namespace

TEST(SamplerSharding, RanksTogetherSeeTheSingleProcessGlobalBatch) {
  const std::int64_t n = 61;
  std::vector<std::int64_t> groups(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) groups[static_cast<size_t>(i)] = (i * 31) % 23;  // shared patients
  for (const char* mode : {"random", "sequential", "unique_patient"}) {
    for (int world : {2, 3, 4}) {
      for (std::int64_t epoch : {0, 1, 5}) {
        SCOPED_TRACE(std::string(mode) + " world " + std::to_string(world) + " epoch " + std::to_string(epoch));
        const std::int64_t b = 3;
        const auto single = epochOf(n, groups, mode, b * world, 0, 1, epoch);
        ASSERT_GE(single.size(), 3u);
        std::vector<std::vector<std::vector<std::int64_t>>> ranks;
        for (int r = 0; r < world; ++r) ranks.push_back(epochOf(n, groups, mode, b, r, world, epoch));
        for (int r = 0; r < world; ++r) ASSERT_EQ(ranks[static_cast<size_t>(r)].size(), single.size());
        for (size_t s = 0; s < single.size(); ++s) {
          std::vector<std::int64_t> joined;
          for (int r = 0; r < world; ++r) {
            const auto& mine = ranks[static_cast<size_t>(r)][s];
            ASSERT_EQ(mine.size(), static_cast<size_t>(b));
            joined.insert(joined.end(), mine.begin(), mine.end());
          }
          EXPECT_EQ(joined, single[s]) << "step " << s;
        }
      }
    }
  }
}

TEST(SamplerSharding, EpochsDifferAndAreReproducible) {
  const std::int64_t n = 40;
  const std::vector<std::int64_t> none;
  const auto a = epochOf(n, none, "random", 4, 1, 2, 0);
  EXPECT_EQ(a, epochOf(n, none, "random", 4, 1, 2, 0));
  EXPECT_NE(a, epochOf(n, none, "random", 4, 1, 2, 1));
  EXPECT_NE(a, epochOf(n, none, "random", 4, 0, 2, 0));
}
