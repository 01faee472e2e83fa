// Blocked top-K against brute force (the full score matrix + torch.topk) and hand-made ties.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/retrieval/TopK.h"

using namespace biud::retrieval;

TEST(BlockedTopK, EqualsBruteForceForAnyBlocking) {
  torch::manual_seed(3);
  auto q = torch::nn::functional::normalize(torch::randn({37, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto db = torch::nn::functional::normalize(torch::randn({501, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto full = torch::matmul(q, db.t());
  auto [refS, refI] = full.topk(7, 1);
  for (auto [dbBlock, qBlock] : std::vector<std::pair<int, int>>{{1000, 100}, {64, 5}, {7, 37}, {1, 1}}) {
    TopKOptions o;
    o.k = 7;
    o.dbBlock = dbBlock;
    o.queryBlock = qBlock;
    std::int64_t calls = 0;
    o.onBlock = [&](std::int64_t) { ++calls; };
    auto r = blockedTopK(q, db, o);
    EXPECT_TRUE(torch::equal(r.indices, refI)) << "blocks " << dbBlock << "/" << qBlock;
    EXPECT_TRUE(torch::allclose(r.scores, refS, 1e-6, 1e-6));
    EXPECT_EQ(calls, (501 + dbBlock - 1) / dbBlock);
  }
}

TEST(BlockedTopK, TiesGoToTheLowerIndexAndKIsCapped) {
  auto q = torch::tensor({{1.0f, 0.0f}});
  auto db = torch::tensor({{0.0f, 1.0f}, {1.0f, 0.0f}, {1.0f, 0.0f}, {0.5f, 0.0f}});
  TopKOptions o;
  o.k = 10;  // more than the database
  o.dbBlock = 2;
  auto r = blockedTopK(q, db, o);
  ASSERT_EQ(r.indices.size(1), 4);
  EXPECT_EQ(r.indices[0][0].item<int64_t>(), 1);
  EXPECT_EQ(r.indices[0][1].item<int64_t>(), 2);
  EXPECT_EQ(r.indices[0][2].item<int64_t>(), 3);
  EXPECT_EQ(r.indices[0][3].item<int64_t>(), 0);
}

TEST(BlockedTopK, SamplingFollowsSoftmaxOfScores) {
  TopKResult r{torch::tensor({{1.0f, 0.0f}}).repeat({4000, 1}), torch::tensor({{10L, 20L}}).repeat({4000, 1})};
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(5);
  auto pick = sampleFromTopK(r, 0.5, gen);
  const double frac10 = (pick == 10).to(torch::kFloat64).mean().item<double>();
  const double expect = 1.0 / (1.0 + std::exp(-2.0));  // softmax([2, 0])[0]
  EXPECT_NEAR(frac10, expect, 0.03);
}
