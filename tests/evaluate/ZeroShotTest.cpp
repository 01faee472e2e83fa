// Zero-shot scoring by hand: prompt ensembles, p = softmax([<x,e+>, <x,e->] / tau)[0], and the
// prompts -> zero-shot -> AUROC sequence that the in-training validations and biud-x2ct-eval share.
#include <cmath>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/evaluate/ZeroShot.h"
#include "biud/text/Prompts.h"

namespace biud::test {
namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

/// One finding `a` (name `A`): positive prompts p1 -> (1, 0) and p2 -> (0, 1) (ensemble: their
/// mean, renormalised: (1, 1) / sqrt 2), negative prompt n1 -> (-1, 0).
text::PromptSet promptSet() {
  text::PromptSet ps;
  ps.name = "hand";
  ps.findings.push_back({"a", "A", {"p1", "p2"}, {"n1"}});
  return ps;
}

torch::Tensor encodeByHand(const std::vector<std::string>& texts) {
  const std::map<std::string, std::vector<float>> v{{"p1", {1, 0}}, {"p2", {0, 1}}, {"n1", {-1, 0}}};
  std::vector<torch::Tensor> rows;
  for (const auto& t : texts) rows.push_back(torch::tensor(v.at(t)));
  return torch::stack(rows);
}

// Images (1,0), (0,1), (-1,0), (0,-1) at tau = 0.5: <x,e+> - <x,e-> = s+1, s, -s-1, -s (s = 1/sqrt 2),
// so p = sigmoid(2 (s+1)), sigmoid(2 s), sigmoid(-2 (s+1)), sigmoid(-2 s).
torch::Tensor kImages() { return torch::tensor({1.f, 0.f, 0.f, 1.f, -1.f, 0.f, 0.f, -1.f}).view({4, 2}); }

TEST(ZeroShot, ProbabilitiesByHand) {
  const auto pe = evaluate::embedPrompts(promptSet(), {"a"}, encodeByHand);
  const double s = 1.0 / std::sqrt(2.0);
  EXPECT_NEAR(pe.positive[0][0].item<double>(), s, 1e-6);
  EXPECT_NEAR(pe.positive[0][1].item<double>(), s, 1e-6);
  EXPECT_NEAR(pe.negative[0][0].item<double>(), -1.0, 1e-6);
  const auto p = evaluate::zeroShotProbabilities(kImages(), pe, 0.5);
  ASSERT_EQ(p.sizes(), (std::vector<std::int64_t>{4, 1}));
  const double want[] = {sigmoid(2 * (s + 1)), sigmoid(2 * s), sigmoid(-2 * (s + 1)), sigmoid(-2 * s)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i][0].item<double>(), want[i], 1e-6) << i;
}

TEST(ZeroShot, PromptsToAurocSequenceByHand) {
  // Label columns `x` (no prompts) and `A` (finding a, matched by name). Column A = 1, 0, 0, 1:
  // positives score p0 > p3, negatives p1 > p2; pairs (p0,p1) (p0,p2) (p3,p2) right, (p3,p1)
  // wrong: AUROC 3/4. Column x is not scored.
  const auto ps = promptSet();
  const auto cols = evaluate::promptedColumns({"x", "A"}, ps);
  ASSERT_EQ(cols.findings, (std::vector<std::string>{"A"}));
  const auto labels = torch::tensor({0.f, 1.f, 1.f, 0.f, 1.f, 0.f, 0.f, 1.f}).view({4, 2});
  std::map<std::string, double> m{{"loss", 1.0}};
  evaluate::addZeroShotAuroc(kImages(), labels, ps, cols, encodeByHand, 0.5, m);
  EXPECT_DOUBLE_EQ(m.at("auroc/A"), 0.75);
  EXPECT_DOUBLE_EQ(m.at("auroc_macro"), 0.75);
  EXPECT_EQ(m.at("loss"), 1.0);  // added to, not replaced
  EXPECT_EQ(m.size(), 3u);

  // An unknown label (NaN) is left out: without case 3 (a positive), 2 of 2 pairs are right.
  const auto withNan = torch::tensor({0.f, 1.f, 1.f, 0.f, 1.f, 0.f, 0.f, NAN}).view({4, 2});
  std::map<std::string, double> m2;
  evaluate::addZeroShotAuroc(kImages(), withNan, ps, cols, encodeByHand, 0.5, m2);
  EXPECT_DOUBLE_EQ(m2.at("auroc/A"), 1.0);

  // No column with prompts: nothing added (a task without matching columns logs no AUROC).
  std::map<std::string, double> none;
  evaluate::addZeroShotAuroc(kImages(), labels, ps, evaluate::PromptedColumns{}, encodeByHand, 0.5, none);
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace biud::test
