// biud-x2ct-eval's pieces: the linear probe against scikit-learn's LogisticRegression on the same
// data, retrieval with several views per scan worked out by hand, the few-shot subsets, the few-shot
// protocol against the same probes scored pair by pair, and the AUROC JSON and Markdown table by hand.
#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"
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
  data::X2ctLatents l;
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
  EXPECT_EQ(data::x2ctScanId("ct_1#lat"), "ct_1");
  EXPECT_EQ(data::x2ctScanId("ct_1"), "ct_1");
}

TEST(X2ctEval, FewShotSubsets) {
  auto a = evaluate::fewShotSubset(210, 0.01, 1);
  EXPECT_EQ(a.size(), 2u);  // at least two
  auto b = evaluate::fewShotSubset(210, 0.1, 1);
  EXPECT_EQ(b.size(), 21u);
  EXPECT_EQ(std::set<std::int64_t>(b.begin(), b.end()).size(), 21u);
  EXPECT_EQ(evaluate::fewShotSubset(210, 0.1, 1), b);  // seeded
  EXPECT_NE(evaluate::fewShotSubset(210, 0.1, 2), b);
  EXPECT_EQ(evaluate::fewShotSubset(210, 1.0, 3).size(), 210u);
  EXPECT_THROW(evaluate::fewShotSubset(10, 0.0, 1), ValueError);
}

/// AUROC by counting pairs (ties 1/2), NaN labels skipped.
double pairAuroc(const torch::Tensor& s, const torch::Tensor& y) {
  double right = 0;
  int pairs = 0;
  for (std::int64_t i = 0; i < s.size(0); ++i)
    for (std::int64_t j = 0; j < s.size(0); ++j) {
      const double yi = y[i].item<double>(), yj = y[j].item<double>();
      if (yi != 1.0 || yj != 0.0) continue;
      const double a = s[i].item<double>(), b = s[j].item<double>();
      right += a > b ? 1.0 : a == b ? 0.5 : 0.0;
      ++pairs;
    }
  return right / pairs;
}

TEST(X2ctEval, AurocJsonSplitsCtOnlyAndVisibleFindings) {
  // a 0.9, b 0.6 (CT-only), c NaN (CT-only), d 0.5: macro over finite values (0.9+0.6+0.5)/3.
  const std::map<std::string, double> m{{"auroc/a", 0.9}, {"auroc/b", 0.6}, {"auroc/c", NAN}, {"auroc/d", 0.5}};
  const auto j = evaluate::x2ctAurocJson(m, {"a", "b", "c", "d"}, {"b", "c", "z"});
  EXPECT_DOUBLE_EQ(j["macro"].get<double>(), (0.9 + 0.6 + 0.5) / 3);
  EXPECT_DOUBLE_EQ(j["macro_ct_only"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(j["macro_xray_visible"].get<double>(), (0.9 + 0.5) / 2);
  EXPECT_TRUE(j["per_label"]["c"].is_null());
  EXPECT_EQ(j["ct_only_findings"], (std::vector<std::string>{"b", "c"}));
  const auto none = evaluate::x2ctAurocJson({{"auroc/c", NAN}}, {"c"}, {});
  EXPECT_TRUE(none["macro"].is_null());
  EXPECT_TRUE(none["macro_ct_only"].is_null());
}

TEST(X2ctEval, FewShotProbeAveragesTheSubsetsAurocs) {
  torch::manual_seed(7);
  const std::int64_t n = 40, m = 30, d = 4;
  auto x = torch::randn({n, d}), xt = torch::randn({m, d});
  auto w = torch::randn({d, 2});
  auto y = (torch::matmul(x, w) + 0.5 * torch::randn({n, 2})).gt(0).to(torch::kFloat32);
  auto yt = (torch::matmul(xt, w) + 0.5 * torch::randn({m, 2})).gt(0).to(torch::kFloat32);
  evaluate::FewShotOptions o;
  o.fractions = {0.25, 1.0};
  o.subsets = 2;
  o.C = 0.5;
  o.seed = 42;
  o.ctOnly = {"b"};
  const auto j = evaluate::fewShotProbe(x, y, xt, yt, {"a", "b"}, o);
  ASSERT_TRUE(j.contains("0.25") && j.contains("1"));
  EXPECT_EQ(j["1"]["labelled_xrays"], n);
  EXPECT_EQ(j["1"]["subsets"], 1);
  EXPECT_EQ(j["0.25"]["labelled_xrays"], 10);
  EXPECT_EQ(j["0.25"]["subsets"], 2);
  // The same by hand: the probe on each subset, AUROCs counted pair by pair, averaged.
  for (const std::string col : {"a", "b"}) {
    const std::int64_t c = col == "a" ? 0 : 1;
    const auto all = evaluate::linearProbe(x, y, xt, o.C);
    EXPECT_NEAR(j["1"]["per_label"][col].get<double>(), pairAuroc(all.select(1, c), yt.select(1, c)), 1e-12);
    double sum = 0;
    for (int s = 0; s < 2; ++s) {
      auto idx = torch::tensor(evaluate::fewShotSubset(n, 0.25, deriveSeed(42, fmt::format("fewshot-{}-{}", 0.25, s))));
      auto p = evaluate::linearProbe(x.index_select(0, idx), y.index_select(0, idx), xt, o.C);
      sum += pairAuroc(p.select(1, c), yt.select(1, c));
    }
    EXPECT_NEAR(j["0.25"]["per_label"][col].get<double>(), sum / 2, 1e-12) << col;
  }
  EXPECT_DOUBLE_EQ(j["1"]["macro_ct_only"].get<double>(), j["1"]["per_label"]["b"].get<double>());
}

TEST(X2ctEval, MarkdownTableByHand) {
  nlohmann::json r;
  r["models"]["A"]["loss"] = {{"alpha", 1.0}, {"beta", 0.5}, {"gamma", 0.25}};
  r["models"]["A"]["zeroshot"]["per_label"]["f"] = 0.75;
  r["models"]["A"]["fewshot"]["0.5"]["macro"] = 0.6;
  r["models"]["B"]["loss"] = {{"alpha", 2.0}, {"beta", 0.0}, {"gamma", 1.0}};
  const auto md = evaluate::x2ctMarkdown(r, {"A", "B"}, {"f"});
  EXPECT_EQ(md.substr(0, md.find('\n', md.find('\n') + 1) + 1), "| metric | A | B |\n|---|---|---|\n");
  EXPECT_NE(md.find("| loss weight alpha (CT-report) | 1.000 | 2.000 |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| zero-shot AUROC f | 0.750 | – |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| linear probe 50 % labels: AUROC macro | 0.600 | – |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| external: xray_to_ct recall@5 | – | – |\n"), std::string::npos) << md;
}

}  // namespace
}  // namespace biud::test
