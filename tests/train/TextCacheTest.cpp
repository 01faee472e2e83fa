// Cached features of a frozen text encoder equal a fresh eval-mode pass over each report alone
// (no padding), whatever batch the report was cached in, and are computed once per report.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/models/Registry.h"
#include "biud/text/Tokenizer.h"
#include "biud/train/TextBatch.h"
#include "biud/train/TextCache.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

struct World {
  TempDir dir;
  std::unique_ptr<text::Tokenizer> tok;
  models::BertModel bert{nullptr};
  explicit World(bool frozen) {
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n.\n";
    for (auto* w : {"no", "nodule", "effusion", "small", "large", "right", "left", "lung", "is", "seen"})
      vocab += std::string(w) + "\n";
    fs::atomicWrite(dir.path() / "vocab.txt", vocab);
    Config cfg;
    cfg.text.tokenizer = "wordpiece";
    cfg.text.vocab = (dir.path() / "vocab.txt").string();
    tok = text::makeTokenizer(cfg.text);
    NetConfig n;
    n.arch = "bert";
    n.preset = "tiny";
    n.vocab_size = tok->vocabSize();
    n.pool = "mean";
    n.frozen = frozen;
    n.dropout = 0.3;  // dropout must be off in the cached pass (eval mode)
    torch::manual_seed(3);
    bert = models::makeTextEncoder(n);
  }
};

TEST(FrozenTextFeatures, EqualEvalPassPerReportAndComputeOnce) {
  World w(/*frozen=*/true);
  const std::vector<std::string> texts{"small nodule right lung.", "no effusion.",
                                       "large left effusion is seen. small right nodule is seen.", "no nodule."};
  train::FrozenTextFeatures cache(w.bert, *w.tok, 32, torch::kCPU, /*batch=*/3);  // batches of 3 and 1: padding differs
  w.bert->train();  // the trainer puts the whole model in train mode; the cache must not depend on it
  cache.precompute(texts, "test");
  EXPECT_EQ(cache.size(), texts.size());
  // Reference: each report alone (no padding), eval mode.
  w.bert->eval();
  torch::NoGradGuard ng;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto tb = train::tokenizeBatch(*w.tok, {texts[i]}, 32);
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

TEST(FrozenTextFeatures, RefuseTrainableEncoder) {
  World w(/*frozen=*/false);
  EXPECT_THROW(train::FrozenTextFeatures(w.bert, *w.tok, 32, torch::kCPU), ConfigError);
}

}  // namespace
}  // namespace biud::test
