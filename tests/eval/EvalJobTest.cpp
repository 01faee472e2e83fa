// eval/EvalJob.h (what biud-eval computes), called in-process: classification against
// scikit-learn on tests/reference/eval_app.py's files, and alignment, thresholds, retrieval,
// DeLong and reader-study results against values worked out by hand or by sklearn.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/eval/Classification.h"
#include "biud/eval/EvalJob.h"
#include "common/TestUtil.h"

using namespace biud::eval;
using biud::test::quote;
using biud::test::readText;
using biud::test::TempDir;
using biud::test::writeText;
using nlohmann::json;

namespace {

template <class E>
std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error of the expected type>";
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/// eval_app.py's files (labels, two models, readers, embeddings) and sklearn's numbers on them.
struct SklearnCase {
  TempDir dir{"evaljob"};
  json expected;
  SklearnCase() {
    biud::test::runPython("eval_app.py", quote(dir.str()));
    expected = json::parse(readText(dir / "expected.json"));
  }
  std::string at(const std::string& f) const { return (dir / f).string(); }
};

}  // namespace

TEST(ValidationThresholds, YoudenPerFindingOnKnownLabelsElseHalf) {
  const double U = NAN;
  // Columns: a (Youden 0.6 by hand: tpr 1, fpr 0 there; the unknown row scoring 0.95 is left
  // out), b (one class: 0.5), c (no known label: 0.5), d (scores reversed: nothing beats chance,
  // so the highest score, 0.9, is the point -- youdenThreshold's rule).
  const std::vector<std::vector<double>> p = {
      {0.2, 0.1, 0.3, 0.9}, {0.5, 0.2, 0.3, 0.8}, {0.6, 0.3, 0.3, 0.2}, {0.9, 0.4, 0.3, 0.1}, {0.95, 0.5, 0.3, 0.5}};
  const std::vector<std::vector<double>> y = {{0, 0, U, 0}, {0, 0, U, 0}, {1, 0, U, 1}, {1, 0, U, 1}, {U, 0, U, U}};
  std::vector<std::string> warnings;
  const auto t = validationThresholds(p, y, {"a", "b", "c", "d"}, &warnings);
  EXPECT_DOUBLE_EQ(t.at("a"), 0.6);
  EXPECT_DOUBLE_EQ(t.at("b"), 0.5);
  EXPECT_DOUBLE_EQ(t.at("c"), 0.5);
  EXPECT_DOUBLE_EQ(t.at("d"), 0.9);
  EXPECT_EQ(warnings, (std::vector<std::string>{"finding `b`: validation set has one class; threshold 0.5",
                                                "finding `c`: validation set has one class; threshold 0.5"}));
  EXPECT_THROW(validationThresholds({{0.1}}, {}, {"a"}), biud::ValueError);
}

TEST(EvalJob, ThresholdRules) {
  ClassificationOptions o;
  applyThresholdRule("0.3", "", "", {"a"}, o);
  EXPECT_EQ(o.thresholdMode, "fixed");
  EXPECT_DOUBLE_EQ(o.fixedThreshold, 0.3);
  applyThresholdRule("youden", "", "", {"a"}, o);
  EXPECT_EQ(o.thresholdMode, "youden");
  EXPECT_TRUE(has(errorOf<biud::ConfigError>([&] { applyThresholdRule("best", "", "", {"a"}, o); }),
                  "--threshold `best`: use youden, val or a number"));
  EXPECT_TRUE(has(errorOf<biud::ConfigError>([&] { applyThresholdRule("val", "v.csv", "", {"a"}, o); }),
                  "--threshold val needs --val-pred and --val-labels"));
  EXPECT_TRUE(
      has(errorOf<biud::ConfigError>([&] { applyThresholdRule("inf", "", "", {"a"}, o); }), "--threshold `inf`"));
}

namespace {

void classificationMatchesSklearn(const SklearnCase& c) {
  ClassificationJob job;
  job.models = biud::app::parseRunList({c.at("pred.csv"), "other=" + c.at("pred2.csv")}, "--pred");
  job.labels = c.at("labels.csv");
  job.options.bootstrap = 0;
  job.options.progress = false;
  const json j = runClassificationEval(job);
  EXPECT_EQ(j["task"], "classification");
  EXPECT_EQ(j["n_cases"], 120);
  EXPECT_EQ(j["protocol"], "biud");
  EXPECT_FALSE(j.contains("ct_clip"));
  for (const auto& f : c.expected["findings"]) {
    const std::string name = f.get<std::string>();
    EXPECT_NEAR(j["per_label"][name]["auroc"].get<double>(), c.expected["auroc"][name].get<double>(), 1e-12) << name;
    EXPECT_NEAR(j["per_label"][name]["ap"].get<double>(), c.expected["ap"][name].get<double>(), 1e-12) << name;
  }
  // The first model is named after its file, the second as given; DeLong compares them.
  EXPECT_TRUE(j["models"].contains("pred"));
  EXPECT_NEAR(j["models"]["other"]["delong_vs_pred"]["cardiomegaly"]["auc2"].get<double>(),
              c.expected["auroc"]["cardiomegaly"].get<double>(), 1e-12);
  EXPECT_FALSE(std::filesystem::exists(c.dir / "plots"));
  // CT-CLIP's protocol adds its block.
  job.protocol = "ct-clip";
  job.models.resize(1);
  EXPECT_TRUE(runClassificationEval(job).contains("ct_clip"));
}

}  // namespace

TEST(EvalJob, ValidationThresholdFromFiles) {
  TempDir d("evaljob-val");
  writeText(d / "val_labels.csv", "id,a\nv1,0\nv2,0\nv3,1\nv4,1\n");
  writeText(d / "val_pred.csv", "id,a\nv1,0.2\nv2,0.5\nv3,0.6\nv4,0.9\n");
  writeText(d / "labels.csv", "id,a\nt1,0\nt2,1\nt3,1\nt4,0\n");
  writeText(d / "pred.csv", "id,a\nt1,0.55\nt2,0.58\nt3,0.7\nt4,0.1\n");
  ClassificationJob job;
  job.models = {{"m", (d / "pred.csv").string()}};
  job.labels = (d / "labels.csv").string();
  job.threshold = "val";
  job.valPred = (d / "val_pred.csv").string();
  job.valLabels = (d / "val_labels.csv").string();
  job.options.bootstrap = 0;
  job.options.progress = false;
  const json j = runClassificationEval(job);
  // Youden on the validation set: 0.6; on the test set then t3 is a tp, t2 a fn -> sens 0.5, spec 1.
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["threshold"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["sensitivity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["specificity"].get<double>(), 1.0);
  // A test finding without a validation column names the validation labels file.
  writeText(d / "val_labels_b.csv", "id,b\nv1,0\nv2,0\nv3,1\nv4,1\n");
  writeText(d / "val_pred_b.csv", "id,b\nv1,0.2\nv2,0.5\nv3,0.6\nv4,0.9\n");
  job.valPred = (d / "val_pred_b.csv").string();
  job.valLabels = (d / "val_labels_b.csv").string();
  EXPECT_EQ(errorOf<biud::DataError>([&] { runClassificationEval(job); }),
            job.valLabels + ": column `a` missing (needed for the validation threshold)");
}

TEST(EvalJob, ReportsAlignOnTheGeneratedIds) {
  Texts hyp{{"2", "1"}, {{"heart enlarged"}, {"no effusion"}}};
  Texts ref{{"1", "2", "3"}, {{"no effusion seen"}, {"cardiomegaly", "heart is enlarged"}, {"unused"}}};
  const auto a = alignReports(hyp, ref, "h.csv", "r.csv");
  EXPECT_EQ(a.hyps, (std::vector<std::string>{"heart enlarged", "no effusion"}));
  EXPECT_EQ(a.refs,
            (std::vector<std::vector<std::string>>{{"cardiomegaly", "heart is enlarged"}, {"no effusion seen"}}));
  hyp.ids.push_back("9");
  hyp.texts.push_back({"x"});
  EXPECT_EQ(errorOf<biud::DataError>([&] { alignReports(hyp, ref, "h.csv", "r.csv"); }),
            "id `9` is in h.csv but not in r.csv (every generated report needs a reference)");
  Texts twice{{"1"}, {{"a", "b"}}};
  EXPECT_EQ(errorOf<biud::DataError>([&] { alignReports(twice, ref, "h.csv", "r.csv"); }),
            "h.csv: id `1` appears 2 times (one generated report per id)");
}

TEST(EvalJob, NlgBleu1ByHand) {
  TempDir d("evaljob-nlg");
  writeText(d / "hyp.txt", "No pleural effusion.\nThe heart is enlarged.\n");
  writeText(d / "ref.csv",
            "id,text\n1,\"No effusion, no pneumothorax.\"\n2,Heart size is enlarged.\n2,Cardiomegaly.\n");
  const json j = runNlgEval((d / "hyp.txt").string(), (d / "ref.csv").string(), "biud");
  EXPECT_EQ(j["task"], "nlg");
  EXPECT_EQ(j["protocol"], "biud");
  // 7 hypothesis tokens, 5 clipped matches; closest reference lengths 4 + 4 = 8 > 7 (brevity).
  EXPECT_NEAR(j["bleu1"].get<double>(), 5.0 / 7.0 * std::exp(1.0 - 8.0 / 7.0), 1e-12);
}

TEST(EvalJob, ClinicalEfficacyByHand) {
  TempDir d("evaljob-ce");
  // effusion: a tp, c fp -> P 1/2, R 1; nodule: a fn, b tp, c unknown -> P 1, R 1/2.
  writeText(d / "pred.csv", "id,effusion,nodule,extra\na,1,0,1\nb,0,1,1\nc,1,1,0\n");
  writeText(d / "ref.csv", "id,effusion,nodule\nc,0,\nb,0,1\na,1,1\n");
  const json j = runClinicalEval((d / "pred.csv").string(), (d / "ref.csv").string());
  EXPECT_EQ(j["task"], "clinical");
  EXPECT_DOUBLE_EQ(j["micro"]["precision"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["macro"]["recall"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["per_finding"]["effusion"]["f1"].get<double>(), 2.0 / 3.0);
  // Alignment follows the references' rows and columns (the extra column is ignored).
  const auto a = alignFindings(readNumericTable((d / "pred.csv").string()), readNumericTable((d / "ref.csv").string()));
  EXPECT_EQ(a.findings, (std::vector<std::string>{"effusion", "nodule"}));
  EXPECT_EQ(a.pred, (std::vector<std::vector<double>>{{1, 1}, {0, 1}, {1, 0}}));
  writeText(d / "bad.csv", "id,effusion,nodule\na,1,0\nb,2,1\nc,1,1\n");
  EXPECT_EQ(errorOf<biud::DataError>([&] { runClinicalEval((d / "bad.csv").string(), (d / "ref.csv").string()); }),
            (d / "bad.csv").string() + ": id `b`, column `effusion`: 2 must be 0 or 1");
  writeText(d / "short.csv", "id,effusion,nodule\na,1,0\nb,0,1\n");
  EXPECT_EQ(errorOf<biud::DataError>([&] { runClinicalEval((d / "short.csv").string(), (d / "ref.csv").string()); }),
            "id `c` is in " + (d / "ref.csv").string() + " but not in " + (d / "short.csv").string());
}

TEST(EvalJob, MatrixIdsFallBackToTheDiagonal) {
  const Matrix S = {{1, 2}, {3, 4}};
  std::vector<std::string> q{"x", "y"}, g{"y", "x"};
  matchMatrixIds(S, q, g);  // shared ids: kept
  EXPECT_EQ(g, (std::vector<std::string>{"y", "x"}));
  q = {"x", "y"};
  g = {"c0", "c1"};  // header names that are not ids
  matchMatrixIds(S, q, g);
  EXPECT_EQ(q, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(g, (std::vector<std::string>{"0", "1"}));
  q = {"x", "y"};
  g = {"x"};  // wrong width
  matchMatrixIds(S, q, g);
  EXPECT_EQ(g, (std::vector<std::string>{"0", "1"}));
}

TEST(EvalJob, RetrievalRanksByHandWithPessimisticTies) {
  TempDir d("evaljob-ret");
  // Rows match columns by position. A->B ranks: row 0 -> 1, row 1 -> 2 (0.8 > 0.5), row 2 -> 3.
  // B->A (columns as queries): col 0 -> 1, col 1 -> 1, col 2 -> 3 (0.2 above, the tie 0.1 ahead).
  writeText(d / "sim.csv", "c0,c1,c2\n0.9,0.1,0.2\n0.8,0.5,0.1\n0.3,0.2,0.1\n");
  RetrievalJob job;
  job.sim = (d / "sim.csv").string();
  job.ks = {1, 2};
  const json j = runRetrievalEval(job);
  EXPECT_EQ(j["task"], "retrieval");
  EXPECT_NEAR(j["a_to_b"]["recall@1"].get<double>(), 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(j["a_to_b"]["recall@2"].get<double>(), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(j["a_to_b"]["map"].get<double>(), (1 + 0.5 + 1.0 / 3.0) / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(j["a_to_b"]["median_rank"].get<double>(), 2.0);
  EXPECT_NEAR(j["b_to_a"]["recall@1"].get<double>(), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(j["b_to_a"]["map"].get<double>(), (1 + 1 + 1.0 / 3.0) / 3.0, 1e-15);
  job.embA = job.sim;
  EXPECT_THROW(runRetrievalEval(job), biud::ConfigError);
  EXPECT_THROW(runRetrievalEval(RetrievalJob{}), biud::ConfigError);
}

namespace {

void retrievalFromEmbeddingsMatchesNumpy(const SklearnCase& c) {
  RetrievalJob job;
  job.embA = c.at("emb_a.npy");
  job.embB = c.at("emb_b.csv");
  const json j = runRetrievalEval(job);
  for (const char* dir : {"a_to_b", "b_to_a"})
    for (const char* k : {"recall@1", "recall@5", "recall@10", "map", "median_rank"})
      EXPECT_NEAR(j[dir][k].get<double>(), c.expected[dir][k].get<double>(), 1e-12) << dir << " " << k;
}

void delongMatchesSklearnAuroc(const SklearnCase& c) {
  const json j = runDeLongEval(c.at("pred.csv"), c.at("pred2.csv"), c.at("labels.csv"), 0.9);
  EXPECT_EQ(j["task"], "delong");
  EXPECT_EQ(j["ci"], 0.9);
  for (const auto& f : c.expected["findings"]) {
    const std::string name = f.get<std::string>();
    EXPECT_NEAR(j["per_label"][name]["auc1"].get<double>(), c.expected["auroc"][name].get<double>(), 1e-12) << name;
    const auto& ci = j["per_label"][name]["diff_ci"];
    EXPECT_LE(ci[0].get<double>(), j["per_label"][name]["diff"].get<double>());
    EXPECT_GE(ci[1].get<double>(), j["per_label"][name]["diff"].get<double>());
  }
}

void readerStudyMatchesSklearnRoc(const SklearnCase& c) {
  const std::string plots = c.at("plots");
  const json j = runReaderStudy(c.at("pred.csv"), c.at("labels.csv"), c.at("readers.csv"), plots);
  EXPECT_EQ(j["task"], "readers");
  const auto& card = j["per_label"]["cardiomegaly"];
  EXPECT_NEAR(card["auroc"].get<double>(), c.expected["auroc"]["cardiomegaly"].get<double>(), 1e-12);
  ASSERT_EQ(card["readers"].size(), 3u);
  for (const auto& r : card["readers"]) {
    const double se = c.expected["readers"][r["reader"].get<std::string>()].get<double>();
    EXPECT_NEAR(r["model_sensitivity_at_reader_specificity"].get<double>(), se, 1e-12);
    EXPECT_NEAR(r["model_minus_reader"].get<double>(), se - r["sensitivity"].get<double>(), 1e-12);
  }
  EXPECT_TRUE(std::filesystem::exists(c.dir / "plots" / "readers_cardiomegaly.png"));
  // A reader without a finding while the labels have three, and an unknown finding.
  writeText(c.dir / "r2.csv", "reader,sensitivity,specificity\nR1,0.5,0.5\n");
  EXPECT_TRUE(
      has(errorOf<biud::DataError>([&] { runReaderStudy(c.at("pred.csv"), c.at("labels.csv"), c.at("r2.csv"), ""); }),
          "reader `R1` has no finding but " + c.at("labels.csv") + " has 3 findings"));
  writeText(c.dir / "r3.csv", "reader,finding,sensitivity,specificity\nR1,goitre,0.5,0.5\n");
  EXPECT_TRUE(
      has(errorOf<biud::DataError>([&] { runReaderStudy(c.at("pred.csv"), c.at("labels.csv"), c.at("r3.csv"), ""); }),
          "reader `R1`: finding `goitre` is not a column of " + c.at("labels.csv")));
}

}  // namespace

// One run of the Python reference (about 8 s) serves every file-based job.
TEST(EvalJob, FileJobsMatchSklearnAndNumpy) {
  const SklearnCase c;
  classificationMatchesSklearn(c);
  retrievalFromEmbeddingsMatchesNumpy(c);
  delongMatchesSklearnAuroc(c);
  readerStudyMatchesSklearnRoc(c);
}

TEST(EvalJob, DeLongByHandAndNullForOneClass) {
  TempDir d("evaljob-dl");
  writeText(d / "labels.csv", "id,a,b\n1,0,1\n2,0,0\n3,0,1\n");
  writeText(d / "p1.csv", "id,a,b\n1,0.1,0.9\n2,0.2,0.1\n3,0.3,0.7\n");
  writeText(d / "p2.csv", "id,a,b\n1,0.3,0.2\n2,0.2,0.4\n3,0.1,0.6\n");
  const json k = runDeLongEval((d / "p1.csv").string(), (d / "p2.csv").string(), (d / "labels.csv").string(), 0.95);
  EXPECT_TRUE(k["per_label"]["a"].is_null());  // one class
  // b: model 1 ranks both positives (0.9, 0.7) above the negative (0.1): AUC 1; model 2 one of
  // them (0.6 > 0.4 > 0.2): AUC 1/2.
  EXPECT_DOUBLE_EQ(k["per_label"]["b"]["auc1"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(k["per_label"]["b"]["auc2"].get<double>(), 0.5);
  EXPECT_EQ(k["per_label"]["b"]["n_pos"], 2);
  EXPECT_EQ(k["per_label"]["b"]["n_neg"], 1);
}
