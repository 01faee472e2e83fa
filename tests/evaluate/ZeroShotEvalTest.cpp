// biud-zeroshot's evaluation as a function (evaluate/ZeroShotEval.h) on TinyWorld's biud run: the
// AUROC in zeroshot.json equals the one counted by hand from the probabilities it wrote, runs
// compared side by side score alike when they are the same run, and NAME=DIR names the outputs.
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/RunList.h"
#include "biud/evaluate/ZeroShotEval.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

struct Csv {
  std::vector<std::string> header, ids;
  std::vector<std::vector<double>> rows;
};

Csv readCsv(const stdfs::path& p) {
  Csv c;
  std::istringstream in(readText(p));
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (first) {
      c.header = f;
      first = false;
      continue;
    }
    c.ids.push_back(f.at(0));
    std::vector<double> r;
    for (size_t i = 1; i < f.size(); ++i) r.push_back(std::stod(f[i]));
    c.rows.push_back(r);
  }
  return c;
}

/// AUROC by counting pairs (ties count 1/2).
double pairAuroc(const std::vector<double>& s, const std::vector<int>& y) {
  double right = 0;
  int pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) right += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0, ++pairs;
  return right / pairs;
}

TEST(ZeroShotEval, AurocEqualsTheOneCountedFromTheWrittenProbabilities) {
  TinyWorld w;
  Config cfg = w.cfg;
  cfg.eval.bootstrap = 0;
  cfg.eval.plots = false;
  const auto out = w.dir.path() / "zs";
  evaluate::ZeroShotOptions o;
  o.runs = app::parseRunList({w.pretrained});
  o.split = "val";
  o.prompts = (sourceDir() / "configs/prompts/synthetic.yaml").string();
  o.progress = false;
  o.prepareOut = [&] {
    stdfs::create_directories(out);
    return out.string();
  };
  const auto r = evaluate::runZeroShot(o, cfg, torch::kCPU);
  EXPECT_EQ(r.findings, (std::vector<std::string>{"lung_nodule"}));
  EXPECT_EQ(r.cases, 4u);
  EXPECT_EQ(r.firstName, "pre");
  EXPECT_TRUE(r.failures.empty());
  const auto probs = readCsv(out / "probabilities.csv");
  EXPECT_EQ(probs.header, (std::vector<std::string>{"id", "lung_nodule"}));
  EXPECT_EQ(probs.ids, (std::vector<std::string>{"ct08", "ct09", "ct10", "ct11"}));
  std::vector<double> s;
  for (const auto& row : probs.rows) {
    ASSERT_EQ(row.size(), 1u);
    EXPECT_GT(row[0], 0.0);
    EXPECT_LT(row[0], 1.0);
    s.push_back(row[0]);
  }
  // TinyWorld: lung_nodule = n % 2 for ct<n>.
  const double want = pairAuroc(s, {0, 1, 0, 1});
  const auto j = nlohmann::json::parse(readText(out / "zeroshot.json"));
  EXPECT_NEAR(j["per_label"]["lung_nodule"]["auroc"].get<double>(), want, 1e-6);
  EXPECT_NEAR(r.json["per_label"]["lung_nodule"]["auroc"].get<double>(), want, 1e-6);
  EXPECT_EQ(j["split"], "val");
  EXPECT_EQ(j["protocol"], "biud");
  EXPECT_EQ(j["failed"], 0);

  // The same run twice under two names: one probabilities file per name, equal.
  const auto out2 = w.dir.path() / "zs2";
  o.runs = app::parseRunList({"a=" + w.pretrained, "b=" + w.pretrained});
  o.prepareOut = [&] {
    stdfs::create_directories(out2);
    return out2.string();
  };
  const auto r2 = evaluate::runZeroShot(o, cfg, torch::kCPU);
  EXPECT_EQ(r2.firstName, "a");
  const auto pa = readCsv(out2 / "probabilities_a.csv"), pb = readCsv(out2 / "probabilities_b.csv");
  EXPECT_EQ(pa.rows, pb.rows);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(pa.rows[i][0], s[i], 1e-7);
  EXPECT_FALSE(stdfs::exists(out2 / "probabilities.csv"));
}

}  // namespace
}  // namespace biud::test
