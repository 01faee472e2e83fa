// Cached features of a frozen text encoder equal a fresh eval-mode pass over each report alone
// (no padding), whatever batch the report was cached in, and are computed once per report.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/data/TextBatch.h"
#include "biud/data/TextCache.h"
#include "biud/models/Registry.h"
#include "biud/text/Tokenizer.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

struct World {
  TempDir dir;
  std::unique_ptr<text::Tokenizer> tok;
  models::BertModel bert{nullptr};
  explicit World(bool frozen, std::uint64_t seed = 3) {
    Config cfg;
    cfg.text.tokenizer = "wordpiece";
    cfg.text.vocab = writeTinyVocab(dir.path() / "vocab.txt", {"no", "nodule", "effusion", "small", "large", "right",
                                                               "left", "lung", "is", "seen"});
    tok = text::makeTokenizer(cfg.text);
    NetConfig n;
    n.arch = "bert";
    n.preset = "tiny";
    n.vocab_size = tok->vocabSize();
    n.pool = "mean";
    n.frozen = frozen;
    n.dropout = 0.3;  // dropout must be off in the cached pass (eval mode)
    torch::manual_seed(seed);
    bert = models::makeTextEncoder(n);
  }
};

TEST(FrozenTextFeatures, EqualEvalPassPerReportAndComputeOnce) {
  World w(/*frozen=*/true);
  const std::vector<std::string> texts{"small nodule right lung.", "no effusion.",
                                       "large left effusion is seen. small right nodule is seen.", "no nodule."};
  data::FrozenTextFeatures cache(w.bert, *w.tok, 32, torch::kCPU, /*batch=*/3);  // batches of 3 and 1: padding differs
  w.bert->train();  // the trainer puts the whole model in train mode; the cache must not depend on it
  cache.precompute(texts, "test");
  EXPECT_EQ(cache.size(), texts.size());
  // Reference: each report alone (no padding), eval mode.
  w.bert->eval();
  torch::NoGradGuard ng;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto tb = data::tokenizeBatch(*w.tok, {texts[i]}, 32);
    auto ref = w.bert->encode(tb.ids, tb.mask).pooled[0];
    auto got = cache.get({texts[i]})[0];
    EXPECT_LT((got - ref).abs().max().item<double>(), 1e-5) << texts[i];
  }
  // Order and repeats are kept; nothing is encoded again.
  auto g = cache.get({texts[2], texts[0], texts[2]});
  EXPECT_EQ(g.size(0), 3);
  EXPECT_TRUE(torch::equal(g[0], g[2]));
  EXPECT_EQ(cache.size(), texts.size());
  // A report first met during training is encoded on the fly.
  cache.get({"left lung is seen."});
  EXPECT_EQ(cache.size(), texts.size() + 1);
}

TEST(FrozenTextFeatures, FileKeepsRowsForTheSameFingerprintOnly) {
  World a(/*frozen=*/true);
  const std::vector<std::string> texts{"small nodule right lung.", "no effusion."};
  const auto file = (a.dir.path() / "tf" / "x.safetensors").string();
  data::FrozenTextFeatures first(a.bert, *a.tok, 32, torch::kCPU);
  first.attachFile(file, "fp-1");
  first.precompute(texts, "test");  // writes the file
  const auto want = first.get(texts);
  // Another (differently initialised) encoder with the same fingerprint reads the rows from the
  // file instead of encoding: it returns the first encoder's features.
  World b(/*frozen=*/true, /*seed=*/99);
  data::FrozenTextFeatures second(b.bert, *a.tok, 32, torch::kCPU);
  second.attachFile(file, "fp-1");
  EXPECT_EQ(second.size(), 2u);
  EXPECT_TRUE(torch::equal(second.get(texts), want));
  // With another fingerprint the file is ignored: the second encoder's own features.
  data::FrozenTextFeatures third(b.bert, *a.tok, 32, torch::kCPU);
  third.attachFile(file, "fp-2", /*write=*/false);
  EXPECT_EQ(third.size(), 0u);
  EXPECT_GT((third.get(texts) - want).abs().max().item<double>(), 1e-3);
  // A truncated file is ignored with a warning, not a crash.
  fs::atomicWrite(file, "garbage");
  data::FrozenTextFeatures fourth(a.bert, *a.tok, 32, torch::kCPU);
  fourth.attachFile(file, "fp-1");
  EXPECT_EQ(fourth.size(), 0u);
  // The file name depends on the weights, vocabulary, length and pooling.
  const auto [f1, p1] = data::FrozenTextFeatures::fileFor("/c", "/w", "/v", 128, "mean");
  const auto [f2, p2] = data::FrozenTextFeatures::fileFor("/c", "/w", "/v", 256, "mean");
  EXPECT_NE(f1, f2);
  EXPECT_TRUE(data::FrozenTextFeatures::fileFor("/c", "", "/v", 128, "mean").first.empty());  // no weights: no file
}

TEST(FrozenTextFeatures, RefuseTrainableEncoder) {
  World w(/*frozen=*/false);
  EXPECT_THROW(data::FrozenTextFeatures(w.bert, *w.tok, 32, torch::kCPU), ConfigError);
}

}  // namespace
}  // namespace biud::test
