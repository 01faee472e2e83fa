// Resumable chunked retrieval, driven through the library with synthetic embedders (the teacher
// path through the app is in RetrieveAppTest). Checked against:
//  - brute force: the full score matrix + torch::topk, and the image features of the kept rows;
//  - an uninterrupted run: a run stopped after every few chunks (and after a stop mid-chunk) and
//    resumed gives bit-identical tensors and a byte-identical pairing.csv, and computes every
//    embedding exactly once over all its attempts (nothing redone, nothing skipped);
//  - changed inputs: a work folder of other inputs is discarded, never mixed in.
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/retrieval/Chunked.h"
#include "common/TestUtil.h"

using namespace biud;
using namespace biud::retrieval;

namespace {

constexpr std::int64_t kQ = 23, kDb = 57, kDim = 8, kDimX = 6;

/// Row `i` of a fixed random table, normalised (a stand-in for a text tower).
torch::Tensor row(std::uint64_t salt, std::int64_t i, std::int64_t dim) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(salt * 100003 + static_cast<std::uint64_t>(i));
  auto v = torch::randn({dim}, gen);
  return v / v.norm();
}
torch::Tensor rows(std::uint64_t salt, std::int64_t b, std::int64_t e, std::int64_t dim) {
  std::vector<torch::Tensor> r;
  for (auto i = b; i < e; ++i) r.push_back(row(salt, i, dim));
  return torch::stack(r);
}

struct Counts {
  std::int64_t query = 0, db = 0, images = 0;
};

ChunkedJob makeJob(Counts& c, std::uint64_t dbSalt = 2) {
  ChunkedJob j;
  j.nQueries = kQ;
  j.nDatabase = kDb;
  j.chunk = 5;
  j.textBatch = 2;  // batches inside chunks, and a chunk (5) that is not a multiple of them
  j.imageBatch = 3;
  j.topk.k = 3;
  j.topk.dbBlock = 16;
  j.progress = false;
  j.embedQueries = [&c](std::int64_t b, std::int64_t e) {
    c.query += e - b;
    return rows(1, b, e, kDim);
  };
  j.embedDatabase = [&c, dbSalt](std::int64_t b, std::int64_t e) {
    c.db += e - b;
    return rows(dbSalt, b, e, kDim);
  };
  j.embedImages = [&c](const std::vector<std::int64_t>& r) {
    c.images += static_cast<std::int64_t>(r.size());
    std::vector<torch::Tensor> v;
    for (auto x : r) v.push_back(row(3, x, kDimX));
    return torch::stack(v);
  };
  j.fingerprint.set("xray_manifest", std::to_string(dbSalt));
  return j;
}

void expectSame(const ChunkedResult& a, const ChunkedResult& b) {
  ASSERT_TRUE(a.complete && b.complete);
  EXPECT_TRUE(torch::equal(a.topk.indices, b.topk.indices));
  EXPECT_TRUE(torch::equal(a.topk.scores, b.topk.scores));
  EXPECT_TRUE(torch::equal(a.queryEmbedding, b.queryEmbedding));
  EXPECT_TRUE(torch::equal(a.imageFeatures, b.imageFeatures));
  EXPECT_EQ(a.distinctImages, b.distinctImages);
}

std::vector<std::string> ids(const std::string& p, std::int64_t n) {
  std::vector<std::string> v;
  for (std::int64_t i = 0; i < n; ++i) v.push_back(p + std::to_string(i));
  return v;
}

}  // namespace

TEST(ChunkedRetrieval, UninterruptedEqualsBruteForce) {
  test::TempDir d("chunked");
  Counts c;
  auto r = runChunked(makeJob(c), d / "work");
  ASSERT_TRUE(r.complete);
  auto q = rows(1, 0, kQ, kDim), db = rows(2, 0, kDb, kDim);
  auto [refS, refI] = torch::matmul(q, db.t()).topk(3, 1);
  EXPECT_TRUE(torch::equal(r.topk.indices, refI));
  EXPECT_TRUE(torch::allclose(r.topk.scores, refS, 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(r.queryEmbedding, q));
  ASSERT_EQ(r.imageFeatures.sizes(), (std::vector<std::int64_t>{kQ, 3, kDimX}));
  for (std::int64_t i = 0; i < kQ; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      EXPECT_TRUE(torch::equal(r.imageFeatures[i][j], row(3, refI[i][j].item<std::int64_t>(), kDimX))) << i << "," << j;
  std::set<std::int64_t> distinct;
  for (std::int64_t i = 0; i < refI.numel(); ++i) distinct.insert(refI.flatten()[i].item<std::int64_t>());
  EXPECT_EQ(r.distinctImages, static_cast<std::int64_t>(distinct.size()));
  EXPECT_EQ(c.query, kQ);
  EXPECT_EQ(c.db, kDb);
  EXPECT_EQ(c.images, r.distinctImages);
  // chunks: 12 database text + 5 query text + 5 top-K + ceil(distinct / 5) image chunks
  EXPECT_EQ(r.chunksComputed, 12 + 5 + 5 + (r.distinctImages + 4) / 5);
  EXPECT_EQ(r.chunksResumed, 0);
}

TEST(ChunkedRetrieval, InterruptedAndResumedIsBitIdentical) {
  test::TempDir d("chunked");
  Counts c0;
  auto ref = runChunked(makeJob(c0), d / "ref");
  writePairing((d / "ref.csv").string(), ids("ct", kQ), ids("cxr", kDb), ref.topk);

  // Stop after every 4 newly computed chunks until done: every pass is cut somewhere.
  Counts c;
  ChunkedResult r;
  int attempts = 0;
  std::int64_t resumedBefore = 0;
  do {
    auto job = makeJob(c);
    job.stop = [](std::int64_t computed) { return computed >= 4; };
    r = runChunked(job, d / "work");
    ASSERT_LT(++attempts, 50);
    if (!r.complete) {
      EXPECT_EQ(r.chunksComputed, 4);
      EXPECT_EQ(r.chunksResumed, resumedBefore);  // every earlier chunk found on disk
      resumedBefore += 4;
    }
  } while (!r.complete);
  EXPECT_GT(attempts, 5);
  expectSame(r, ref);
  // Every embedding computed exactly once over all attempts.
  EXPECT_EQ(c.query, kQ);
  EXPECT_EQ(c.db, kDb);
  EXPECT_EQ(c.images, ref.distinctImages);
  writePairing((d / "resumed.csv").string(), ids("ct", kQ), ids("cxr", kDb), r.topk);
  EXPECT_EQ(test::readText(d / "resumed.csv"), test::readText(d / "ref.csv"));
}

TEST(ChunkedRetrieval, StopInsideAChunkDiscardsOnlyThatChunk) {
  test::TempDir d("chunked");
  Counts c0;
  auto ref = runChunked(makeJob(c0), d / "ref");
  // A signal arrives during the 3rd database chunk (after 11 text rows: chunk 2, second batch).
  Counts c;
  auto job = makeJob(c);
  job.stop = [&c](std::int64_t) { return c.db >= 11; };
  auto r = runChunked(job, d / "work");
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.chunksComputed, 2);  // chunks 0 and 1 whole; the partial chunk 2 is not on disk
  EXPECT_TRUE(std::filesystem::exists(d / "work/db_text_000001.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(d / "work/db_text_000002.safetensors"));
  Counts c2;
  auto again = runChunked(makeJob(c2), d / "work");
  EXPECT_EQ(again.chunksResumed, 2);
  EXPECT_EQ(c2.db, kDb - 10);
  expectSame(again, ref);
}

TEST(ChunkedRetrieval, ChangedInputsDiscardTheWorkFolder) {
  test::TempDir d("chunked");
  Counts c;
  auto job = makeJob(c);
  job.stop = [](std::int64_t computed) { return computed >= 14; };  // all database text chunks and some query chunks
  EXPECT_FALSE(runChunked(job, d / "work").complete);

  // Another X-ray corpus (other embeddings, other fingerprint): nothing of the old one is reused.
  Counts c2;
  auto other = runChunked(makeJob(c2, /*dbSalt=*/7), d / "work");
  EXPECT_EQ(other.chunksResumed, 0);
  EXPECT_EQ(c2.db, kDb);
  Counts c3;
  auto fresh = runChunked(makeJob(c3, 7), d / "fresh");
  expectSame(other, fresh);

  // A different top-K (a setting, not an input file) invalidates too; so does a damaged fingerprint.
  Counts c4;
  auto k2 = makeJob(c4, 7);
  k2.topk.k = 2;
  auto r2 = runChunked(k2, d / "work");
  EXPECT_EQ(r2.chunksResumed, 0);
  EXPECT_EQ(r2.topk.indices.size(1), 2);
  test::writeText(d / "work/fingerprint.json", "{not json");
  Counts c5;
  EXPECT_EQ(runChunked(makeJob(c5, 7), d / "work").chunksResumed, 0);
  // The same inputs again: everything resumed, nothing computed.
  Counts c6;
  auto same = runChunked(makeJob(c6, 7), d / "work");
  EXPECT_EQ(same.chunksComputed, 0);
  EXPECT_EQ(c6.db + c6.query + c6.images, 0);
  expectSame(same, fresh);
}

TEST(ChunkedRetrieval, DamagedChunkIsRecomputed) {
  test::TempDir d("chunked");
  Counts c0;
  auto ref = runChunked(makeJob(c0), d / "work");
  const auto f = d / "work/query_text_000002.safetensors";
  ASSERT_TRUE(std::filesystem::exists(f));
  test::writeText(f, "truncated");
  Counts c;
  auto r = runChunked(makeJob(c), d / "work");
  EXPECT_EQ(c.query, 5);  // that chunk only
  EXPECT_EQ(c.db, 0);
  expectSame(r, ref);
}

TEST(ChunkedRetrieval, FingerprintNamesWhatChanged) {
  Fingerprint a, b;
  a.set("teacher", "x").set("top_k", "5");
  b.set("teacher", "x").set("top_k", "3").set("chunk", "8");
  EXPECT_EQ(a.differences(b), (std::vector<std::string>{"top_k", "chunk"}));
  EXPECT_TRUE(Fingerprint::parse(a.json()).differences(a).empty());
  ContentHash h1, h2;
  h1.add("ab").add("c");
  h2.add("a").add("bc");
  EXPECT_NE(h1.hex(), h2.hex());
  // FNV-1a 64 of the empty input is its offset basis (hand-checked constant).
  EXPECT_EQ(ContentHash().hex(), "cbf29ce484222325");
}
