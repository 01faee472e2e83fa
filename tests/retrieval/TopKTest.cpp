// Blocked top-K (retrieval/TopK.h) against tests/reference/retrieval_topk.py: PyTorch's torch.mm
// over the same tiles, then a stable descending sort of the full score matrix (equal scores keep
// the lower index first). Indices and scores must be identical, bit for bit, for:
//  - shapes whose tiles cross block boundaries in both directions, K larger than a block's
//    columns, both merges (the CPU scan and the tensor-op merge used on CUDA);
//  - d = 384 at blocks of 1024 / 128 and at the default 8192 / 4096, in fp32, bf16 and fp16;
//  - integer-valued features (every dot product exact, so many exact ties): the tie rule;
//  - K above the number of database rows (clamped to it).
// Plus: non-finite features are DataErrors naming the row, overflowing scores a ValueError.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/retrieval/TopK.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

using namespace biud;
using namespace biud::retrieval;

namespace {

struct Case {
  std::string name;
  torch::Tensor q, db;
  std::int64_t k, dbBlock, queryBlock;
  Precision precision = Precision::Float32;
};

torch::Tensor unitRows(torch::Tensor x) { return x / x.norm(2, 1, true); }

/// Run every case through the reference in one Python process; returns the reference results.
std::vector<tensor::TensorMap> reference(const std::vector<Case>& cases, const test::TempDir& d) {
  nlohmann::json spec = nlohmann::json::array();
  std::vector<std::string> outs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto in = (d / ("in" + std::to_string(i) + ".safetensors")).string();
    outs.push_back((d / ("ref" + std::to_string(i) + ".safetensors")).string());
    tensor::writeSafetensors(in, {{"q", cases[i].q}, {"db", cases[i].db}});
    spec.push_back({{"inputs", in},
                    {"k", cases[i].k},
                    {"db_block", cases[i].dbBlock},
                    {"query_block", cases[i].queryBlock},
                    {"precision", precisionName(cases[i].precision)},
                    {"out", outs.back()}});
  }
  test::writeText(d / "cases.json", spec.dump());
  test::runPython("retrieval_topk.py",
                  "cases " + test::quote(d.str()) + " --threads " + std::to_string(at::get_num_threads()));
  std::vector<tensor::TensorMap> r;
  for (const auto& o : outs) r.push_back(tensor::readSafetensors(o));
  return r;
}

void expectSame(const TopKResult& got, const tensor::TensorMap& ref, const std::string& what) {
  ASSERT_EQ(got.indices.sizes(), ref.at("indices").sizes()) << what;
  EXPECT_EQ(got.indices.scalar_type(), torch::kInt64);
  EXPECT_EQ(got.scores.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(got.indices, ref.at("indices")))
      << what << ": " << (got.indices != ref.at("indices")).sum().item<int64_t>() << " indices differ";
  EXPECT_TRUE(torch::equal(got.scores, ref.at("scores")))
      << what << ": max score difference " << (got.scores - ref.at("scores")).abs().max().item<float>();
}

TopKResult runCase(const Case& c, Merge merge, std::int64_t* blocks = nullptr) {
  TopKOptions o;
  o.k = c.k;
  o.dbBlock = c.dbBlock;
  o.queryBlock = c.queryBlock;
  o.precision = c.precision;
  o.merge = merge;
  if (blocks) o.onBlock = [blocks](std::int64_t) { ++*blocks; };
  return blockedTopK(c.q, c.db, o);
}

}  // namespace

TEST(BlockedTopK, EqualsPyTorchReferenceAcrossBlocksPrecisionsAndTies) {
  test::TempDir d("topk");
  torch::manual_seed(3);
  std::vector<Case> cases;
  const auto q16 = unitRows(torch::randn({37, 16})), db16 = unitRows(torch::randn({501, 16}));
  // Tiles crossing block boundaries both ways; K = 7 above the 3 and 5 columns of the small blocks.
  for (auto [dbBlock, qBlock] : std::vector<std::pair<int, int>>{{1000, 100}, {64, 5}, {7, 37}, {3, 4}, {5, 1}})
    cases.push_back({fmt::format("random d16 blocks {}x{}", qBlock, dbBlock), q16, db16, 7, dbBlock, qBlock});
  // The real width, at small and at the default blocks (one partial tile), in every precision.
  const auto q384 = unitRows(torch::randn({300, 384})), db384 = unitRows(torch::randn({9000, 384}));
  for (auto p : {Precision::Float32, Precision::BFloat16, Precision::Float16}) {
    cases.push_back({"d384 1024/128 " + precisionName(p), q384, db384, 5, 1024, 128, p});
    cases.push_back({"d384 8192/4096 " + precisionName(p), q384, db384, 5, 8192, 4096, p});
  }
  // Integer features in {-1, 0, 1}: exact dot products, so equal scores abound (and straddle the
  // K-th place inside tiles); duplicated database rows on top.
  auto qi = torch::randint(-1, 2, {20, 8}).to(torch::kFloat32);
  auto dbi = torch::randint(-1, 2, {300, 8}).to(torch::kFloat32);
  dbi.slice(0, 200, 300).copy_(dbi.slice(0, 0, 100));
  for (auto [dbBlock, qBlock] : std::vector<std::pair<int, int>>{{7, 3}, {64, 20}, {300, 20}, {1, 1}})
    cases.push_back({fmt::format("ties blocks {}x{}", qBlock, dbBlock), qi, dbi, 10, dbBlock, qBlock});
  // K above the database rows: clamped to them.
  cases.push_back({"k above rows", q16, db16.slice(0, 0, 6), 10, 4, 16});

  const auto ref = reference(cases, d);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::int64_t blocks = 0;
    expectSame(runCase(c, Merge::Scan, &blocks), ref[i], c.name + " (scan)");
    EXPECT_EQ(blocks, (c.db.size(0) + c.dbBlock - 1) / c.dbBlock) << c.name;
    if (c.precision == Precision::Float32) expectSame(runCase(c, Merge::Sort), ref[i], c.name + " (sort merge)");
  }
  // The tie cases do tie: some rows hold equal scores within their top 10, with indices ascending.
  const auto& tie = ref[cases.size() - 5];
  auto s = tie.at("scores");
  auto eq = s.slice(1, 1) == s.slice(1, 0, -1);
  EXPECT_GT(eq.sum().item<int64_t>(), 20);
  auto ix = tie.at("indices");
  EXPECT_TRUE(((ix.slice(1, 1) > ix.slice(1, 0, -1)) | ~eq).all().item<bool>());
  // And the clamp is a clamp.
  EXPECT_EQ(ref.back().at("indices").size(1), 6);
}

TEST(BlockedTopK, TiesGoToTheLowerIndexAndKIsCapped) {
  // Worked by hand: scores 0, 1, 1, 0.5 -> rows 1, 2 (tie, lower first), 3, 0.
  auto q = torch::tensor({{1.0f, 0.0f}});
  auto db = torch::tensor({{0.0f, 1.0f}, {1.0f, 0.0f}, {1.0f, 0.0f}, {0.5f, 0.0f}});
  for (auto merge : {Merge::Scan, Merge::Sort}) {
    TopKOptions o;
    o.k = 10;  // more than the database
    o.dbBlock = 2;
    o.merge = merge;
    auto r = blockedTopK(q, db, o);
    ASSERT_EQ(r.indices.size(1), 4);
    EXPECT_TRUE(torch::equal(r.indices, torch::tensor({{1L, 2L, 3L, 0L}})));
    EXPECT_TRUE(torch::equal(r.scores, torch::tensor({{1.0f, 1.0f, 0.5f, 0.0f}})));
  }
}

TEST(BlockedTopK, NonFiniteFeaturesAndOverflowAreErrors) {
  auto q = unitRows(torch::randn({4, 8}));
  auto db = unitRows(torch::randn({300, 8}));
  TopKOptions o;
  o.dbBlock = 64;
  db[123][5] = std::numeric_limits<float>::quiet_NaN();
  try {
    blockedTopK(q, db, o);
    FAIL() << "NaN accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("database row 123"), std::string::npos) << e.what();
  }
  db[123][5] = 0.0f;
  auto big = q.clone();
  big[2] *= 3e19f;  // products of 3e19 x ~0.3 and sums overflow float32
  auto bigDb = db * 3e19f;
  for (auto merge : {Merge::Scan, Merge::Sort}) {
    o.merge = merge;
    EXPECT_THROW(blockedTopK(big, bigDb, o), ValueError);
  }
  EXPECT_THROW(parsePrecision("int8"), ValueError);
  EXPECT_EQ(parsePrecision("bfloat16"), Precision::BFloat16);
}

TEST(BlockedTopK, SamplingFollowsSoftmaxOfScores) {
  TopKResult r{torch::tensor({{1.0f, 0.0f}}).repeat({4000, 1}), torch::tensor({{10L, 20L}}).repeat({4000, 1})};
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(5);
  auto pick = sampleFromTopK(r, 0.5, gen);
  const double frac10 = (pick == 10).to(torch::kFloat64).mean().item<double>();
  const double expect = 1.0 / (1.0 + std::exp(-2.0));  // softmax([2, 0])[0]
  EXPECT_NEAR(frac10, expect, 0.03);
}
