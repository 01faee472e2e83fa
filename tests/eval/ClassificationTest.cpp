// Classification metrics against scikit-learn (tests/reference/eval_classification.py) on the
// same inputs, DeLong against an independent O(m n) numpy implementation, bootstrap properties,
// and hand-worked cases.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"
#include "biud/eval/Classification.h"
#include "biud/eval/Clinical.h"
#include "biud/eval/DeLong.h"
#include "common/TestUtil.h"

using namespace biud::eval;
using nlohmann::json;

namespace {

const json& reference() {
  static json j = [] {
    biud::test::TempDir d("eval-ref");
    biud::test::runPython("eval_classification.py", biud::test::quote((d / "ref.json").string()));
    return json::parse(biud::test::readText(d / "ref.json"));
  }();
  return j;
}

std::vector<double> decode(const json& a) {
  std::vector<double> v;
  for (const auto& x : a) {
    if (x.is_string())
      v.push_back(std::numeric_limits<double>::infinity());
    else if (x.is_null())
      v.push_back(std::nan(""));
    else
      v.push_back(x.get<double>());
  }
  return v;
}

void expectVec(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]))
      EXPECT_TRUE(std::isinf(got[i])) << what << "[" << i << "]";
    else
      EXPECT_NEAR(got[i], want[i], 1e-12) << what << "[" << i << "]";
  }
}

}  // namespace

// DeLong against the O(m n) placement-value implementation of the reference script.
static void checkDeLongReference() {
  for (const auto& d : reference()["delong"]) {
    const auto y = d["labels"].get<std::vector<int>>();
    const auto r = delongTest(d["s1"].get<std::vector<double>>(), d["s2"].get<std::vector<double>>(), y);
    EXPECT_NEAR(r.auc1, d["auc1"].get<double>(), 1e-12);
    EXPECT_NEAR(r.auc2, d["auc2"].get<double>(), 1e-12);
    EXPECT_NEAR(r.variance, d["var"].get<double>(), 1e-12);
    EXPECT_NEAR(r.var1, d["var1"].get<double>(), 1e-12);
    EXPECT_NEAR(r.z, d["z"].get<double>(), 1e-9);
    EXPECT_NEAR(r.p, d["p"].get<double>(), 1e-9);
    EXPECT_NEAR(r.ciLo, d["ci"][0].get<double>(), 1e-9);
    EXPECT_NEAR(r.ciHi, d["ci"][1].get<double>(), 1e-9);
    EXPECT_NEAR(r.auc1, rocAuc(d["s1"].get<std::vector<double>>(), y), 1e-12);
  }
}

// Clinical efficacy against precision_recall_fscore_support (micro, macro; zero_division=0).
static void checkClinicalReference() {
  const auto& c = reference()["clinical"];
  std::vector<std::vector<double>> ref, pred;
  for (const auto& r : c["ref"]) ref.push_back(r.get<std::vector<double>>());
  for (const auto& r : c["pred"]) pred.push_back(r.get<std::vector<double>>());
  const auto s = clinicalEfficacy(pred, ref, {"a", "b", "c", "d", "e", "f"});
  EXPECT_NEAR(s.microP, c["micro"][0].get<double>(), 1e-12);
  EXPECT_NEAR(s.microR, c["micro"][1].get<double>(), 1e-12);
  EXPECT_NEAR(s.microF1, c["micro"][2].get<double>(), 1e-12);
  EXPECT_NEAR(s.macroP, c["macro"][0].get<double>(), 1e-12);
  EXPECT_NEAR(s.macroR, c["macro"][1].get<double>(), 1e-12);
  EXPECT_NEAR(s.macroF1, c["macro"][2].get<double>(), 1e-12);
}

// One test for every comparison with eval_classification.py: ctest runs each test in its own
// process, and each would otherwise run the Python reference again.
TEST(Classification, MatchesSklearnAndNumpyReferences) {
  {
    SCOPED_TRACE("DeLong");
    checkDeLongReference();
  }
  {
    SCOPED_TRACE("clinical efficacy");
    checkClinicalReference();
  }
  for (const auto& c : reference()["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto y = c["labels"].get<std::vector<int>>();
    const auto s = c["scores"].get<std::vector<double>>();
    if (c["auroc"].is_null())
      EXPECT_TRUE(std::isnan(rocAuc(s, y)));
    else
      EXPECT_NEAR(rocAuc(s, y), c["auroc"].get<double>(), 1e-12);
    if (c["ap"].is_null())
      EXPECT_TRUE(std::isnan(averagePrecision(s, y)));
    else
      EXPECT_NEAR(averagePrecision(s, y), c["ap"].get<double>(), 1e-12);
    if (!c.contains("roc")) {
      EXPECT_TRUE(std::isnan(youdenThreshold(s, y)));
      continue;
    }
    const RocCurve r = rocCurve(s, y, true), f = rocCurve(s, y, false);
    expectVec(r.fpr, decode(c["roc"]["fpr"]), "fpr");
    expectVec(r.tpr, decode(c["roc"]["tpr"]), "tpr");
    expectVec(r.thresholds, decode(c["roc"]["thresholds"]), "thresholds");
    expectVec(f.fpr, decode(c["roc_full"]["fpr"]), "fpr(full)");
    expectVec(f.thresholds, decode(c["roc_full"]["thresholds"]), "thresholds(full)");
    const double t = youdenThreshold(s, y);
    EXPECT_DOUBLE_EQ(t, c["youden"].get<double>());
    const ThresholdMetrics m = thresholdMetrics(confusionAt(s, y, t));
    const auto& w = c["at_youden"];
    EXPECT_NEAR(m.f1, w["f1"].get<double>(), 1e-12);
    EXPECT_NEAR(m.accuracy, w["accuracy"].get<double>(), 1e-12);
    EXPECT_NEAR(m.sensitivity, w["sensitivity"].get<double>(), 1e-12);
    EXPECT_NEAR(m.specificity, w["specificity"].get<double>(), 1e-12);
    EXPECT_NEAR(m.precision, w["precision"].get<double>(), 1e-12);
  }
}

TEST(Classification, HandWorkedTies) {
  // Positives {0.6, 0.6}, negatives {0.6, 0.2}: pairs (0.6>0.2) x2 = 1 each, (0.6=0.6) x2 = 0.5 each -> 3/4.
  EXPECT_DOUBLE_EQ(rocAuc({0.6, 0.6, 0.6, 0.2}, {1, 1, 0, 0}), 0.75);
  // AP: one threshold group holding both positives and one negative: recall 1 at precision 2/3.
  EXPECT_DOUBLE_EQ(averagePrecision({0.6, 0.6, 0.6, 0.2}, {1, 1, 0, 0}), 2.0 / 3.0);
  EXPECT_THROW(rocAuc({0.1, std::nan("")}, {0, 1}), biud::ValueError);
  EXPECT_THROW(rocAuc({0.1, 0.2}, {0, 2}), biud::ValueError);
}

TEST(Classification, ReportHandlesUnknownAndSingleClass) {
  const double U = std::nan("");
  // Finding a: 4 known labels (one unknown), finding b: only negatives.
  std::vector<std::vector<double>> p = {{0.9, 0.1}, {0.2, 0.3}, {0.7, 0.2}, {0.4, 0.8}, {0.5, 0.4}};
  std::vector<std::vector<double>> y = {{1, 0}, {0, 0}, {1, 0}, {U, 0}, {0, 0}};
  ClassificationOptions o;
  o.bootstrap = 50;
  o.progress = false;
  const auto rep = evaluateClassification(p, y, {"a", "b"}, o);
  const auto* a = rep.find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->nPos, 2);
  EXPECT_EQ(a->nNeg, 2);
  EXPECT_EQ(a->nUnknown, 1);
  EXPECT_DOUBLE_EQ(a->auroc, rocAuc({0.9, 0.2, 0.7, 0.5}, {1, 0, 1, 0}));
  const auto* b = rep.find("b");
  EXPECT_TRUE(std::isnan(b->auroc));
  ASSERT_FALSE(b->warnings.empty());
  EXPECT_NE(b->warnings[0].find("finding `b`"), std::string::npos);
  EXPECT_EQ(b->bootstrapUsed, 0);
  EXPECT_EQ(b->bootstrapSkipped, 50);
  // The macro AUROC averages only the findings where it is defined.
  EXPECT_DOUBLE_EQ(rep.macro.at("auroc"), a->auroc);
  EXPECT_DOUBLE_EQ(rep.macro.at("f1"), a->f1);
  EXPECT_DOUBLE_EQ(rep.macro.at("accuracy"), a->accuracy);
  const json j = rep.toJson();
  EXPECT_TRUE(j["per_label"]["b"]["auroc"].is_null());
  EXPECT_EQ(j["per_label"]["a"]["n_pos"], 2);
  EXPECT_TRUE(j["per_label"]["a"]["auroc_ci"].is_array());
  // A non-finite prediction for a known label is an error naming the finding.
  p[1][0] = std::nan("");
  try {
    evaluateClassification(p, y, {"a", "b"}, o);
    FAIL() << "no error";
  } catch (const biud::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("finding `a`, row 1"), std::string::npos) << e.what();
  }
}

TEST(Classification, BootstrapIsSeededAndCoversThePointEstimate) {
  biud::Rng rng(7);
  const std::size_t n = 2000;
  std::vector<std::vector<double>> p(n, std::vector<double>(2)), y(n, std::vector<double>(2));
  for (std::size_t i = 0; i < n; ++i)
    for (int k = 0; k < 2; ++k) {
      y[i][k] = rng.bernoulli(0.3) ? 1 : 0;
      p[i][k] = 1.0 / (1.0 + std::exp(-(rng.normal() + 1.2 * y[i][k] * (k + 1))));
    }
  ClassificationOptions o;
  o.bootstrap = 200;
  o.progress = false;
  o.seed = 11;
  const auto r1 = evaluateClassification(p, y, {"x", "y"}, o), r2 = evaluateClassification(p, y, {"x", "y"}, o);
  o.seed = 12;
  const auto r3 = evaluateClassification(p, y, {"x", "y"}, o);
  for (std::size_t l = 0; l < 2; ++l) {
    const auto& a = r1.labels[l];
    EXPECT_EQ(a.ci.at("auroc").lo, r2.labels[l].ci.at("auroc").lo);
    EXPECT_EQ(a.ci.at("auroc").hi, r2.labels[l].ci.at("auroc").hi);
    EXPECT_NE(a.ci.at("auroc").lo, r3.labels[l].ci.at("auroc").lo);
    for (const auto& m : classificationMetricNames()) {
      EXPECT_LE(a.ci.at(m).lo, a.ci.at(m).hi) << m;
    }
    EXPECT_LT(a.ci.at("auroc").lo, a.auroc);
    EXPECT_GT(a.ci.at("auroc").hi, a.auroc);
    EXPECT_LT(a.ci.at("auroc").hi - a.ci.at("auroc").lo, 0.1);
    EXPECT_LT(a.ci.at("f1").lo, a.f1);
    EXPECT_GT(a.ci.at("f1").hi, a.f1);
  }
  EXPECT_LT(r1.macroCi.at("auroc").lo, r1.macro.at("auroc"));
  EXPECT_GT(r1.macroCi.at("auroc").hi, r1.macro.at("auroc"));
}

TEST(Classification, PercentileMatchesNumpyLinear) {
  // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.025), 1.075, 1e-12);
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.5), 2.5, 1e-12);
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.975), 3.925, 1e-12);
}

TEST(DeLong, HandWorkedExample) {
  // Positives x = {3, 2}, negatives y = {1, 2}. Model 1 psi matrix [[1,1],[1,0.5]] -> AUC 0.875,
  // V10 = {1, 0.75}, V01 = {1, 0.75}; var = 0.03125/2 + 0.03125/2 = 0.03125.
  const std::vector<int> lab = {1, 1, 0, 0};
  EXPECT_NEAR(delongVariance({3, 2, 1, 2}, lab), 0.03125, 1e-15);
  // Identical models: difference 0, p = 1.
  const auto r = delongTest({3, 2, 1, 2}, {3, 2, 1, 2}, lab);
  EXPECT_DOUBLE_EQ(r.diff, 0.0);
  EXPECT_DOUBLE_EQ(r.p, 1.0);
  EXPECT_NEAR(normalQuantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_THROW(delongTest({1, 2}, {1, 2}, {1, 1}), biud::ValueError);
  const auto m = midranks({5, 1, 5, 3});
  EXPECT_EQ(m, (std::vector<double>{3.5, 1, 3.5, 2}));
}

TEST(Clinical, LabelSets) {
  // Report 1: pred {effusion, nodule}, ref {effusion}; report 2: pred {}, ref {nodule}.
  const auto s = clinicalEfficacy({{"effusion", "nodule"}, {}}, {{"effusion"}, {"nodule"}});
  // effusion tp 1; nodule fp 1, fn 1 -> micro P 1/2, R 1/2.
  EXPECT_DOUBLE_EQ(s.microP, 0.5);
  EXPECT_DOUBLE_EQ(s.microR, 0.5);
  EXPECT_DOUBLE_EQ(s.macroF1, 0.5);  // (1 + 0) / 2
}
