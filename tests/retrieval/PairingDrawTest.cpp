// Per-epoch top-K sampling of the teacher X-ray (METHOD §2 option) and the teacher-features file
// format 2 (h_star [N, K, d], scores [N, K]). Checked against:
//  - softmax(score / tau) computed independently with numpy (tests/reference/retrieval_softmax.py):
//    the frequencies of the drawn ranks over 20000 epochs lie within 5 standard errors;
//  - pairing_top_k = 1: exactly the rank-1 rows (today's h*), also from a format-1 file;
//  - determinism: a CT's draw depends on (seed, epoch, dataset index) only, not on the batch;
//  - a K = 1 file with pairing_top_k 5: a ConfigError naming the file and the fix.
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

using namespace biud;
using data::TeacherFeatures;

namespace {

/// 4 CTs, K = 5, d = 3; scores like real teacher report similarities (close to 0.96).
TeacherFeatures makeFeatures() {
  TeacherFeatures f;
  f.ids = {"ct0", "ct1", "ct2", "ct3"};
  f.scores = torch::tensor({{0.970f, 0.962f, 0.955f, 0.940f, 0.900f},
                            {0.990f, 0.989f, 0.988f, 0.987f, 0.986f},
                            {0.960f, 0.900f, 0.890f, 0.880f, 0.870f},
                            {0.950f, 0.950f, 0.930f, 0.920f, 0.910f}});
  f.candidates = torch::arange(4 * 5 * 3, torch::kFloat32).view({4, 5, 3});  // row (i, j) is unique
  f.h_star = f.candidates.select(1, 0);
  f.report_embedding = torch::randn({4, 3});
  for (size_t i = 0; i < f.ids.size(); ++i) f.row[f.ids[i]] = static_cast<std::int64_t>(i);
  return f;
}

std::string scoresArg(const torch::Tensor& s) {
  std::string out;
  for (std::int64_t i = 0; i < s.size(0); ++i) {
    if (i) out += ";";
    for (std::int64_t j = 0; j < s.size(1); ++j) out += (j ? "," : "") + fmt::format("{:.9g}", s[i][j].item<float>());
  }
  return out;
}

}  // namespace

TEST(PairingDraw, FrequenciesMatchNumpySoftmax) {
  test::TempDir d("draw");
  auto f = makeFeatures();
  f.save((d / "tf.safetensors").string());
  const auto g = TeacherFeatures::load((d / "tf.safetensors").string());
  for (auto [tau, k] : std::vector<std::pair<double, int>>{{0.02, 5}, {0.01, 3}, {0.05, 4}}) {
    const auto ref = nlohmann::json::parse(
        test::runPython("retrieval_softmax.py", fmt::format("{} {} '{}'", tau, k, scoresArg(g.scores))));
    constexpr int kEpochs = 20000;
    std::vector<std::vector<int>> hits(4, std::vector<int>(static_cast<size_t>(k), 0));
    const auto rows = torch::tensor({0L, 1L, 2L, 3L});
    for (int e = 0; e < kEpochs; ++e) {
      auto dr = g.draw(rows, {10, 11, 12, 13}, k, tau, /*seed=*/42, e);
      for (size_t i = 0; i < 4; ++i) {
        ASSERT_LT(dr.ranks[i], k);
        ++hits[i][static_cast<size_t>(dr.ranks[i])];
        // the drawn features are the candidate's
        ASSERT_TRUE(torch::equal(dr.h_star[static_cast<std::int64_t>(i)],
                                 g.candidates[static_cast<std::int64_t>(i)][dr.ranks[i]]));
      }
    }
    for (size_t i = 0; i < 4; ++i)
      for (int j = 0; j < k; ++j) {
        const double p = ref[i][static_cast<size_t>(j)].get<double>();
        const double freq = hits[i][static_cast<size_t>(j)] / static_cast<double>(kEpochs);
        const double se = std::sqrt(p * (1 - p) / kEpochs);
        EXPECT_NEAR(freq, p, 5 * se + 1e-4) << "tau " << tau << " CT " << i << " rank " << j;
      }
  }
  // Hand-worked: CT 3 has a tie at ranks 1-2, so they are equally likely: P = 1 / (2 + e^-1 + e^-1.5 + e^-2)
  // at tau = 0.02 (gaps 0.02, 0.03, 0.04 below the tie).
  const double tie = 1.0 / (2 + std::exp(-1.0) + std::exp(-1.5) + std::exp(-2.0));
  const auto ref =
      nlohmann::json::parse(test::runPython("retrieval_softmax.py", "0.02 5 '" + scoresArg(g.scores) + "'"));
  EXPECT_NEAR(ref[3][0].get<double>(), tie, 1e-5);
}

TEST(PairingDraw, TopK1IsExactlyRank1AndFormat1StillLoads) {
  test::TempDir d("draw");
  auto f = makeFeatures();
  f.save((d / "tf.safetensors").string());
  const auto g = TeacherFeatures::load((d / "tf.safetensors").string());
  EXPECT_EQ(g.topK(), 5);
  const auto rows = torch::tensor({2L, 0L, 3L});
  auto dr = g.draw(rows, {7, 8, 9}, /*k=*/1, 0.02, 42, 3);
  EXPECT_TRUE(torch::equal(dr.h_star, f.candidates.select(1, 0).index_select(0, rows)));
  EXPECT_EQ(dr.ranks, (std::vector<std::int64_t>{0, 0, 0}));
  // A format-1 file (what biud-retrieve wrote before: h_star [N, d], no scores) loads as K = 1.
  tensor::writeSafetensors((d / "v1.safetensors").string(),
                           {{"h_star", f.h_star.contiguous()}, {"report_embedding", f.report_embedding}},
                           {{"ct_ids", "ct0\nct1\nct2\nct3"}, {"format", "biud-teacher-features-1"}});
  const auto v1 = TeacherFeatures::load((d / "v1.safetensors").string());
  EXPECT_EQ(v1.topK(), 1);
  EXPECT_TRUE(torch::equal(v1.h_star, f.h_star));
  EXPECT_TRUE(torch::equal(v1.draw(rows, {7, 8, 9}, 1, 0.02, 42, 3).h_star, dr.h_star));
  // A format-2 file written from h_star alone (K = 1) round-trips too.
  TeacherFeatures one;
  one.ids = f.ids;
  one.h_star = f.h_star.contiguous();
  one.report_embedding = f.report_embedding;
  one.save((d / "one.safetensors").string());
  const auto o = TeacherFeatures::load((d / "one.safetensors").string());
  EXPECT_EQ(o.topK(), 1);
  EXPECT_TRUE(torch::equal(o.h_star, f.h_star));
}

TEST(PairingDraw, DependsOnSeedEpochAndIndexOnlyNotOnTheBatch) {
  const auto f = makeFeatures();
  // Same CTs in two orders, split over different "batches": the same rank for each CT.
  auto a = f.draw(torch::tensor({0L, 1L, 2L, 3L}), {100, 101, 102, 103}, 5, 0.02, 7, 4);
  auto b1 = f.draw(torch::tensor({3L, 1L}), {103, 101}, 5, 0.02, 7, 4);
  auto b2 = f.draw(torch::tensor({2L, 0L}), {102, 100}, 5, 0.02, 7, 4);
  EXPECT_EQ(b1.ranks[0], a.ranks[3]);
  EXPECT_EQ(b1.ranks[1], a.ranks[1]);
  EXPECT_EQ(b2.ranks[0], a.ranks[2]);
  EXPECT_EQ(b2.ranks[1], a.ranks[0]);
  EXPECT_EQ(data::pairingSeed(7, 4, 101), data::pairingSeed(7, 4, 101));
  // Other epochs / seeds / indices give other seeds (and, over many epochs, other draws).
  EXPECT_NE(data::pairingSeed(7, 4, 101), data::pairingSeed(7, 5, 101));
  EXPECT_NE(data::pairingSeed(7, 4, 101), data::pairingSeed(8, 4, 101));
  EXPECT_NE(data::pairingSeed(7, 4, 101), data::pairingSeed(7, 4, 102));
  std::set<std::int64_t> seen;
  for (int e = 0; e < 50; ++e) seen.insert(f.draw(torch::tensor({1L}), {101}, 5, 0.02, 7, e).ranks[0]);
  EXPECT_EQ(seen.size(), 5u);  // CT 1's five scores are within 0.004: every rank turns up
  // tau -> 0: rank 1 always (the argmax, METHOD's default).
  for (int e = 0; e < 50; ++e) EXPECT_EQ(f.draw(torch::tensor({0L}), {100}, 5, 1e-6, 7, e).ranks[0], 0);
}

TEST(PairingDraw, TooFewCandidatesIsAClearConfigError) {
  test::TempDir d("draw");
  TeacherFeatures one;
  one.ids = {"a", "b"};
  one.h_star = torch::randn({2, 3});
  one.report_embedding = torch::randn({2, 3});
  const auto path = (d / "teacher_features.safetensors").string();
  one.save(path);
  const auto g = TeacherFeatures::load(path);
  g.requireTopK(1, path);  // fine
  try {
    g.requireTopK(5, path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("re-run biud-retrieve --top-k 5"), std::string::npos) << m;
    EXPECT_NE(m.find("data.pairing_top_k"), std::string::npos) << m;
  }
  EXPECT_THROW(data::drawRank(g.scores.data_ptr<float>(), 1, 0.0, 1), ValueError);
}
