// NLG metrics against nltk (BLEU), rouge-score (ROUGE-L), pycocoevalcap Cider (CIDEr-D) and the
// METEOR 1.5 jar through pycocoevalcap (tolerance: our METEOR has no synonym/paraphrase stages).
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/eval/Nlg.h"
#include "common/TestUtil.h"

using namespace biud::eval;
using nlohmann::json;

namespace {
struct Corpus {
  json ref;
  std::vector<std::string> hyps;
  std::vector<std::vector<std::string>> refs;
  std::vector<Tokens> h;
  std::vector<std::vector<Tokens>> r;
};

/// The reference corpus and scores; `withMeteor` also runs the METEOR jar (about 20 s of JVM and
/// paraphrase-table start-up, so only the METEOR test asks for it).
Corpus load(bool withMeteor) {
  Corpus c;
  biud::test::TempDir d("eval-nlg");
  biud::test::runPython("eval_nlg.py", biud::test::quote((d / "ref.json").string()) + (withMeteor ? " --meteor" : ""));
  c.ref = json::parse(biud::test::readText(d / "ref.json"));
  c.hyps = c.ref["hyps"].get<std::vector<std::string>>();
  c.refs = c.ref["refs"].get<std::vector<std::vector<std::string>>>();
  for (const auto& s : c.hyps) c.h.push_back(tokenize(s));
  for (const auto& rs : c.refs) {
    std::vector<Tokens> t;
    for (const auto& s : rs) t.push_back(tokenize(s));
    c.r.push_back(t);
  }
  return c;
}

const Corpus& corpus() {
  static const Corpus c = load(false);
  return c;
}
}  // namespace

TEST(Nlg, MatchesNltkRougeScoreAndPycocoevalcap) {
  const auto& c = corpus();
  EXPECT_EQ(c.h[0], c.ref["tokens0"].get<Tokens>());
  EXPECT_EQ(tokenize("A 2.5cm Nodule; no-effusion!"), (Tokens{"a", "2", "5cm", "nodule", "no", "effusion"}));
  // (One test for all corpus comparisons: ctest runs each test in its own process, and each would
  // otherwise run the Python reference again.)
  for (int n = 1; n <= 4; ++n)
    EXPECT_NEAR(corpusBleu(c.h, c.r, n), c.ref["bleu" + std::to_string(n)].get<double>(), 1e-12) << n;
  // Zero 4-gram matches: nltk's DBL_MIN convention gives a tiny positive number, not 0 or NaN.
  const double z = corpusBleu({{"a", "b", "c", "x", "d", "e"}}, {{{"a", "b", "c", "d", "e"}}}, 4);
  EXPECT_NEAR(z / c.ref["bleu4_nomatch"].get<double>(), 1.0, 1e-9);
  // ROUGE-L vs rouge-score.
  const auto items = c.ref["rouge_l_items"].get<std::vector<double>>();
  for (std::size_t i = 0; i < c.h.size(); ++i) {
    double best = 0;
    for (const auto& r : c.r[i]) best = std::max(best, rougeL(c.h[i], r));
    EXPECT_NEAR(best, items[i], 1e-12) << i;
  }
  EXPECT_NEAR(evaluateNlg(c.hyps, c.refs).rougeL, c.ref["rouge_l"].get<double>(), 1e-12);
  // CIDEr-D vs pycocoevalcap.
  std::vector<double> citems;
  EXPECT_NEAR(ciderD(c.h, c.r, &citems), c.ref["cider"].get<double>(), 1e-9);
  const auto want = c.ref["cider_items"].get<std::vector<double>>();
  ASSERT_EQ(citems.size(), want.size());
  for (std::size_t i = 0; i < citems.size(); ++i) EXPECT_NEAR(citems[i], want[i], 1e-9) << i;
}

TEST(Nlg, MeteorCloseToJar) {
  const Corpus c = load(true);
  if (c.ref["meteor"].is_null()) GTEST_SKIP() << "java not found: METEOR comparison with the METEOR 1.5 jar skipped";
  std::vector<double> items;
  const double m = meteor(c.h, c.r, &items);
  const double want = c.ref["meteor"].get<double>();
  const auto wantItems = c.ref["meteor_items"].get<std::vector<double>>();
  double maxDiff = 0, meanAbs = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    maxDiff = std::max(maxDiff, std::fabs(items[i] - wantItems[i]));
    meanAbs += std::fabs(items[i] - wantItems[i]);
  }
  meanAbs /= static_cast<double>(items.size());
  std::printf("METEOR corpus: ours %.4f, jar %.4f (diff %+.4f); per segment mean |diff| %.4f, max %.4f\n", m, want,
              m - want, meanAbs, maxDiff);
  EXPECT_NEAR(m, want, 0.03);
  EXPECT_LT(meanAbs, 0.05);
}

TEST(Nlg, PorterStemmerKnownStems) {
  // Examples from Porter (1980).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"caresses", "caress"},  {"ponies", "poni"},        {"cats", "cat"},
      {"feed", "feed"},        {"agreed", "agre"},        {"plastered", "plaster"},
      {"motoring", "motor"},   {"sing", "sing"},          {"conflated", "conflat"},
      {"hopping", "hop"},      {"filing", "file"},        {"happy", "happi"},
      {"relational", "relat"}, {"conditional", "condit"}, {"generalization", "gener"},
      {"effusions", "effus"},  {"opacities", "opac"},     {"controlling", "control"},
      {"roll", "roll"},        {"adjustment", "adjust"}};
  for (const auto& [w, s] : cases) EXPECT_EQ(porterStem(w), s) << w;
}

TEST(Nlg, EdgeCases) {
  // Identical texts: BLEU 1, ROUGE-L 1; empty hypothesis: 0.
  const std::vector<Tokens> h = {{"no", "pleural", "effusion", "is", "seen"}};
  const std::vector<std::vector<Tokens>> r = {{{"no", "pleural", "effusion", "is", "seen"}}};
  EXPECT_NEAR(corpusBleu(h, r, 4), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(rougeL(h[0], r[0][0]), 1.0);
  EXPECT_NEAR(meteor(h, r), 1.0, 1e-12);  // P = R = 1 and one chunk covering everything: no penalty
  EXPECT_DOUBLE_EQ(corpusBleu({{}}, r, 1), 0.0);
  EXPECT_DOUBLE_EQ(rougeL({}, r[0][0]), 0.0);
}
