// biud-eval end to end: outputs against scikit-learn / numpy on the same files
// (tests/reference/eval_app.py), plots written as PNG, and the errors a user sees on bad input.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/TestUtil.h"

using biud::test::quote;
using biud::test::readText;
using biud::test::TempDir;
using biud::test::writeText;
using nlohmann::json;

namespace {

biud::test::CommandResult evalApp(const std::string& args) {
  return biud::test::run(quote(biud::test::app("biud-eval")) + " " + args);
}

/// Width and height from a PNG's IHDR (after checking the signature).
std::pair<int, int> pngSize(const std::string& path) {
  const std::string s = readText(path);
  if (s.size() < 24 || s.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return {0, 0};
  auto be = [&](std::size_t o) {
    return (static_cast<unsigned char>(s[o]) << 24) | (static_cast<unsigned char>(s[o + 1]) << 16) |
           (static_cast<unsigned char>(s[o + 2]) << 8) | static_cast<unsigned char>(s[o + 3]);
  };
  return {static_cast<int>(be(16)), static_cast<int>(be(20))};
}

}  // namespace

TEST(EvalApp, ClassificationMatchesSklearnAndWritesPlots) {
  TempDir d("eval-app");
  biud::test::runPython("eval_app.py", quote(d.str()));
  const json exp = json::parse(readText(d / "expected.json"));
  const auto r = evalApp("classification --pred " + quote((d / "pred.csv").string()) + " --pred other=" +
                         quote((d / "pred2.csv").string()) + " --labels " + quote((d / "labels.csv").string()) +
                         " --bootstrap 100 --out " + quote((d / "out").string()) + " -q");
  ASSERT_EQ(r.rc, 0) << r.out;
  const json j = json::parse(readText(d / "out" / "eval.json"));
  for (const auto& f : exp["findings"]) {
    const std::string name = f.get<std::string>();
    const auto& o = j["per_label"][name];
    EXPECT_NEAR(o["auroc"].get<double>(), exp["auroc"][name].get<double>(), 1e-12) << name;
    EXPECT_NEAR(o["ap"].get<double>(), exp["ap"][name].get<double>(), 1e-12) << name;
    for (const char* k :
         {"f1", "accuracy", "sensitivity", "specificity", "threshold", "n_pos", "n_neg", "auroc_ci", "f1_ci"})
      EXPECT_TRUE(o.contains(k)) << name << " " << k;
    EXPECT_LE(o["auroc_ci"][0].get<double>(), o["auroc"].get<double>());
  }
  EXPECT_TRUE(j["macro"].contains("auroc"));
  EXPECT_TRUE(j["models"].contains("other"));
  // DeLong of the second model against the first, per finding.
  const auto& dv = j["models"]["other"]["delong_vs_pred"]["cardiomegaly"];
  EXPECT_NEAR(dv["auc2"].get<double>(), exp["auroc"]["cardiomegaly"].get<double>(), 1e-12);
  EXPECT_TRUE(dv.contains("p"));
  EXPECT_EQ(pngSize((d / "out" / "plots" / "roc.png").string()), std::make_pair(3 * 440, 440));
  EXPECT_GT(pngSize((d / "out" / "plots" / "violin_pred.png").string()).first, 0);
  EXPECT_GT(pngSize((d / "out" / "plots" / "violin_other.png").string()).first, 0);

  // Retrieval from an .npy and a CSV embedding file, both directions, against numpy.
  const auto rr = evalApp("retrieval --emb-a " + quote((d / "emb_a.npy").string()) + " --emb-b " +
                          quote((d / "emb_b.csv").string()) + " --out " + quote((d / "ret").string()) + " -q");
  ASSERT_EQ(rr.rc, 0) << rr.out;
  const json jr = json::parse(readText(d / "ret" / "eval.json"));
  for (const char* dir : {"a_to_b", "b_to_a"})
    for (const char* k : {"recall@1", "recall@5", "recall@10", "map", "median_rank"})
      EXPECT_NEAR(jr[dir][k].get<double>(), exp[dir][k].get<double>(), 1e-12) << dir << " " << k;

  // DeLong per finding.
  const auto rd =
      evalApp("delong --pred1 " + quote((d / "pred.csv").string()) + " --pred2 " + quote((d / "pred2.csv").string()) +
              " --labels " + quote((d / "labels.csv").string()) + " --out " + quote((d / "dl").string()) + " -q");
  ASSERT_EQ(rd.rc, 0) << rd.out;
  const json jd = json::parse(readText(d / "dl" / "eval.json"));
  EXPECT_NEAR(jd["per_label"]["cardiomegaly"]["auc1"].get<double>(), exp["auroc"]["cardiomegaly"].get<double>(), 1e-12);
  EXPECT_TRUE(jd["per_label"]["cardiomegaly"].contains("p"));

  // Reader study: model sensitivity at each reader's specificity, from sklearn's roc_curve.
  const auto rs =
      evalApp("readers --pred " + quote((d / "pred.csv").string()) + " --labels " + quote((d / "labels.csv").string()) +
              " --readers " + quote((d / "readers.csv").string()) + " --out " + quote((d / "rd").string()) + " -q");
  ASSERT_EQ(rs.rc, 0) << rs.out;
  const json jrd = json::parse(readText(d / "rd" / "eval.json"));
  const auto& readers = jrd["per_label"]["cardiomegaly"]["readers"];
  ASSERT_EQ(readers.size(), 3u);
  for (const auto& r : readers)
    EXPECT_NEAR(r["model_sensitivity_at_reader_specificity"].get<double>(),
                exp["readers"][r["reader"].get<std::string>()].get<double>(), 1e-12);
  EXPECT_GT(pngSize((d / "rd" / "plots" / "readers_cardiomegaly.png").string()).first, 0);
}

TEST(EvalApp, ClinicalEfficacyHandWorked) {
  TempDir d("eval-ce");
  // effusion: a tp, c fp -> P 1/2, R 1; nodule: a fn, b tp, c unknown -> P 1, R 1/2.
  writeText(d / "pred.csv", "id,effusion,nodule\na,1,0\nb,0,1\nc,1,1\n");
  writeText(d / "ref.csv", "id,effusion,nodule\nc,0,\nb,0,1\na,1,1\n");
  const auto r = evalApp("clinical --pred " + quote((d / "pred.csv").string()) + " --ref " +
                         quote((d / "ref.csv").string()) + " --out " + quote((d / "o").string()) + " -q");
  ASSERT_EQ(r.rc, 0) << r.out;
  const json j = json::parse(readText(d / "o" / "eval.json"));
  EXPECT_DOUBLE_EQ(j["micro"]["precision"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["micro"]["recall"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["macro"]["precision"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["macro"]["recall"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["per_finding"]["effusion"]["f1"].get<double>(), 2.0 / 3.0);
}

TEST(EvalApp, ValidationThresholdIsYoudenOnValidationSet) {
  TempDir d("eval-val");
  // Validation: Youden's J is maximal at threshold 0.6 (tpr 1, fpr 0). Test data differ.
  writeText(d / "val_labels.csv", "id,a\nv1,0\nv2,0\nv3,1\nv4,1\n");
  writeText(d / "val_pred.csv", "id,a\nv1,0.2\nv2,0.5\nv3,0.6\nv4,0.9\n");
  writeText(d / "labels.csv", "id,a\nt1,0\nt2,1\nt3,1\nt4,0\n");
  writeText(d / "pred.csv", "id,a\nt1,0.55\nt2,0.58\nt3,0.7\nt4,0.1\n");
  const auto r = evalApp(
      "classification --pred " + quote((d / "pred.csv").string()) + " --labels " + quote((d / "labels.csv").string()) +
      " --threshold val --val-pred " + quote((d / "val_pred.csv").string()) + " --val-labels " +
      quote((d / "val_labels.csv").string()) + " --bootstrap 0 --no-plots --out " + quote((d / "o").string()) + " -q");
  ASSERT_EQ(r.rc, 0) << r.out;
  const json j = json::parse(readText(d / "o" / "eval.json"));
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["threshold"].get<double>(), 0.6);
  // At 0.6 on the test set: t3 positive (tp), t2 missed (fn), t1/t4 negative -> sens 0.5, spec 1.
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["sensitivity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["per_label"]["a"]["specificity"].get<double>(), 1.0);
  EXPECT_FALSE(std::filesystem::exists(d / "o" / "plots"));
}

TEST(EvalApp, BadInputNamesFileIdAndColumn) {
  TempDir d("eval-bad");
  writeText(d / "labels.csv", "id,effusion,nodule\na,1,0\nb,0,1\nc,1,\n");
  writeText(d / "pred_ids.csv", "id,effusion,nodule\na,0.9,0.1\nb,0.2,0.8\nx,0.5,0.5\n");
  writeText(d / "pred_nan.csv", "id,effusion,nodule\na,0.9,0.1\nb,nan,0.8\nc,0.5,0.5\n");
  writeText(d / "pred_col.csv", "id,effusion\na,0.9\nb,0.2\nc,0.5\n");
  writeText(d / "pred_text.csv", "id,effusion,nodule\na,0.9,high\nb,0.2,0.8\nc,0.5,0.5\n");
  const std::string L = quote((d / "labels.csv").string()), out = " --out " + quote((d / "o").string());
  auto r = evalApp("classification --pred " + quote((d / "pred_ids.csv").string()) + " --labels " + L + out);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("id `x` is in " + (d / "pred_ids.csv").string() + " but not in " + (d / "labels.csv").string()),
            std::string::npos)
      << r.out;
  r = evalApp("classification --pred " + quote((d / "pred_nan.csv").string()) + " --labels " + L + out);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find((d / "pred_nan.csv").string() + ": id `b`, column `effusion`: probability is empty or NaN"),
            std::string::npos)
      << r.out;
  r = evalApp("classification --pred " + quote((d / "pred_col.csv").string()) + " --labels " + L + out);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find((d / "pred_col.csv").string() + ": column `nodule` missing"), std::string::npos) << r.out;
  r = evalApp("classification --pred " + quote((d / "pred_text.csv").string()) + " --labels " + L + out);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("id `a`, column `nodule`: `high` is not a number"), std::string::npos) << r.out;
  // No --out: usage error.
  r = evalApp("classification --pred " + quote((d / "pred_col.csv").string()) + " --labels " + L);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_FALSE(std::filesystem::exists(d / "o" / "eval.json"));
}

TEST(EvalApp, NlgFromTextAndCsv) {
  TempDir d("eval-nlg-app");
  writeText(d / "hyp.txt", "No pleural effusion.\nThe heart is enlarged.\n");
  writeText(d / "ref.csv",
            "id,text\n1,\"No effusion, no pneumothorax.\"\n2,Heart size is enlarged.\n2,Cardiomegaly.\n");
  const auto r = evalApp("nlg --hyp " + quote((d / "hyp.txt").string()) + " --ref " + quote((d / "ref.csv").string()) +
                         " --out " + quote((d / "o").string()) + " -q");
  ASSERT_EQ(r.rc, 0) << r.out;
  const json j = json::parse(readText(d / "o" / "eval.json"));
  for (const char* k : {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"})
    EXPECT_TRUE(j.contains(k)) << k;
  // BLEU-1 by hand: hyp tokens {no pleural effusion | the heart is enlarged} = 7; clipped matches
  // no, effusion | heart, is, enlarged = 5; closest ref lengths 4 (ref 1), 4 (vs 1) -> r = 8 > c = 7.
  EXPECT_NEAR(j["bleu1"].get<double>(), 5.0 / 7.0 * std::exp(1.0 - 8.0 / 7.0), 1e-12);
}
