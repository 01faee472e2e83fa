// biud-x2ct-eval's pieces: the linear probe against scikit-learn's LogisticRegression on the same
// data, retrieval with several views per scan worked out by hand, and the few-shot subsets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "biud/core/Error.h"
#include "biud/evaluate/X2ctEval.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

TEST(X2ctEval, LinearProbeMatchesScikitLearn) {
  torch::manual_seed(5);
  const std::int64_t n = 60, d = 6, m = 25;
  auto x = torch::randn({n, d}, torch::kFloat64), xt = torch::randn({m, d}, torch::kFloat64);
  auto wTrue = torch::randn({d, 3}, torch::kFloat64);
  auto y = (torch::matmul(x, wTrue) + 0.8 * torch::randn({n, 3}, torch::kFloat64)).gt(0).to(torch::kFloat64);
  y.index_put_({torch::indexing::Slice(0, 7), 1}, NAN);  // unknown labels are left out
  y.index_put_({torch::indexing::Slice(), 2}, 1.0);      // one class: a constant
  y.index_put_({torch::indexing::Slice(0, 10), 2}, NAN);
  auto y4 = torch::cat({y, torch::zeros({n, 1}, torch::kFloat64)}, 1);
  y4.index_put_({3, 3}, 1.0);  // one positive in 60: still a proper fit
  TempDir tmp("probe");
  tensor::writeSafetensors((tmp / "in.safetensors").string(), {{"x_train", x}, {"y_train", y4}, {"x_test", xt}});
  for (double C : {1.0, 0.1}) {
    runPython("x2ct_probe.py", quote((tmp / "in.safetensors").string()) + " " + std::to_string(C) + " " +
                                   quote((tmp / "out.safetensors").string()));
    auto want = tensor::readSafetensors((tmp / "out.safetensors").string()).at("probs");
    auto got = evaluate::linearProbe(x.to(torch::kFloat32), y4.to(torch::kFloat32), xt.to(torch::kFloat32), C);
    ASSERT_EQ(got.sizes(), want.sizes());
    const double diff = (got.to(torch::kFloat64) - want).abs().max().item<double>();
    EXPECT_LE(diff, 2e-4) << "C = " << C;
    EXPECT_TRUE(torch::allclose(got.select(1, 2).to(torch::kFloat64), torch::ones({m}, torch::kFloat64)));
  }
}

TEST(X2ctEval, RetrievalWithViewsByHand) {
  // Scans s0, s1, s2 (latents e0, e1, e2); X-rays s0#a, s0#b, s1, s2. Report latents are the CT
  // latents rotated by one scan, so X-ray -> CT is perfect and X-ray -> report is off by one.
  train::X2ctLatents l;
  l.ids = {"s0", "s1", "s2"};
  l.ct = torch::eye(3);
  l.report = torch::tensor({{0.f, 1.f, 0.f}, {0.f, 0.f, 1.f}, {1.f, 0.f, 0.f}});
  for (std::int64_t i = 0; i < 3; ++i) l.index[l.ids[static_cast<size_t>(i)]] = i;
  auto x = torch::tensor({{1.f, 0.f, 0.f}, {0.9f, 0.1f, 0.f}, {0.f, 1.f, 0.f}, {0.f, 0.f, 1.f}});
  auto j = evaluate::x2ctRetrieval(x, {"s0#a", "s0#b", "s1", "s2"}, l);
  EXPECT_EQ(j["gallery"], 3);
  EXPECT_DOUBLE_EQ(j["xray_to_ct"]["recall@1"].get<double>(), 1.0);
  // X-ray -> report: s0#a scores reports (r0 = e1, r1 = e2, r2 = e0) as (0, 0, 1): its report r0
  // ties with r1 below r2 -> rank 3 (ties pessimistic); s0#b scores (0.1, 0, 0.9) -> rank 2;
  // s1 = e1 scores (1, 0, 0) -> r1 ranks 2 or 3 (tie with r2) -> 3; s2 = e2 scores (0, 1, 0) -> r2 ranks 3.
  EXPECT_DOUBLE_EQ(j["xray_to_report"]["recall@1"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["xray_to_report"]["recall@5"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["xray_to_report"]["mean_rank"].get<double>(), (3 + 2 + 3 + 3) / 4.0);
  // CT -> X-ray: s0's two views are both relevant; the best ranks first.
  EXPECT_DOUBLE_EQ(j["ct_to_xray"]["recall@1"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["chance_recall@5"].get<double>(), 1.0);
  // The frozen pair: CT e_k against the rotated reports puts its own report third every time.
  EXPECT_DOUBLE_EQ(j["ct_to_report"]["recall@1"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["ct_to_report"]["mean_rank"].get<double>(), 3.0);
  // An X-ray whose scan has no latents is an error naming it.
  EXPECT_THROW(evaluate::x2ctRetrieval(x.slice(0, 0, 1), {"s9"}, l), DataError);
  EXPECT_EQ(train::x2ctScanId("ct_1#lat"), "ct_1");
  EXPECT_EQ(train::x2ctScanId("ct_1"), "ct_1");
}

TEST(X2ctEval, FewShotSubsets) {
  auto a = evaluate::fewShotSubset(210, 0.01, 1);
  EXPECT_EQ(a.size(), 2u);  // at least two
  auto b = evaluate::fewShotSubset(210, 0.1, 1);
  EXPECT_EQ(b.size(), 21u);
  EXPECT_EQ(std::set<std::int64_t>(b.begin(), b.end()).size(), 21u);
  EXPECT_EQ(evaluate::fewShotSubset(210, 0.1, 1), b);   // seeded
  EXPECT_NE(evaluate::fewShotSubset(210, 0.1, 2), b);
  EXPECT_EQ(evaluate::fewShotSubset(210, 1.0, 3).size(), 210u);
  EXPECT_THROW(evaluate::fewShotSubset(10, 0.0, 1), ValueError);
}

}  // namespace
}  // namespace biud::test
