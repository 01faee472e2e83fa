// makeReportDecoder with a tokenizer's own special ids: a 40-token vocabulary (BERT's 101/102
// would lie outside it) builds, generation starts from the given BOS and ends at the given EOS.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/models/Registry.h"

using namespace biud;

namespace {
NetConfig decoderConfig() {
  NetConfig c;
  c.arch = "report_decoder";
  c.preset = "tiny";
  c.max_len = 16;
  return c;
}
}  // namespace

TEST(ReportDecoderIds, SmallVocabularyBuildsWithTheGivenIds) {
  // BERT's defaults do not fit 40 tokens: a ConfigError that names the ids and the fix.
  try {
    models::makeReportDecoder(decoderConfig(), 8, 40);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("101/102/0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("40 tokens"), std::string::npos) << e.what();
  }
  EXPECT_THROW(models::makeReportDecoder(decoderConfig(), 8, 40, {1, 40, 0}), ConfigError);  // eos == vocab size
  auto d = models::makeReportDecoder(decoderConfig(), 8, 40, {1, 2, 0});
  EXPECT_EQ(d->opt.vocab_size, 40);
  EXPECT_EQ(d->opt.bos_id, 1);
  EXPECT_EQ(d->opt.eos_id, 2);
  EXPECT_EQ(d->opt.pad_id, 0);
  EXPECT_EQ(d->opt.dim, 64);  // the tiny preset
  EXPECT_EQ(d->opt.depth, 2);
  EXPECT_EQ(d->opt.max_len, 16);
  EXPECT_EQ(d->opt.memory_dim, 8);
  EXPECT_EQ(d->lm_bias.size(0), 40);
}

TEST(ReportDecoderIds, GenerationStartsWithBosAndStopsAtEos) {
  torch::manual_seed(4);
  auto d = models::makeReportDecoder(decoderConfig(), 8, 40, {5, 2, 0});
  d->eval();
  auto mem = torch::randn({1, 3, 8});
  // One greedy step: its token and log-probability are those of teacher forcing from [BOS=5]
  // (and not from another start token).
  torch::Tensor fromBos, fromOther;
  {
    torch::NoGradGuard ng;
    fromBos = torch::log_softmax(d->forward(torch::tensor({{5L}}), mem).to(torch::kFloat64), -1)[0][0];
    fromOther = torch::log_softmax(d->forward(torch::tensor({{1L}}), mem).to(torch::kFloat64), -1)[0][0];
  }
  auto g = d->greedy(mem, {}, 1);
  ASSERT_EQ(g.tokens.size(), 1u);
  ASSERT_EQ(g.tokens[0].size(), 1u);
  EXPECT_EQ(g.tokens[0][0], fromBos.argmax().item<std::int64_t>());
  EXPECT_NEAR(g.scores[0], fromBos.max().item<double>(), 1e-5);
  EXPECT_GT((fromBos - fromOther).abs().max().item<double>(), 1e-4);

  // A bias that makes token 7 certain: without EOS, generation runs to maxLen ...
  {
    torch::NoGradGuard ng;
    d->lm_bias[7] = 1000.0;
  }
  g = d->greedy(mem, {}, 6);
  EXPECT_EQ(g.tokens[0], (std::vector<std::int64_t>(6, 7)));
  // ... and when EOS (2) is the certain token, it stops right after it (greedy and beam search).
  {
    torch::NoGradGuard ng;
    d->lm_bias[7] = 0.0;
    d->lm_bias[2] = 1000.0;
  }
  g = d->greedy(mem, {}, 6);
  EXPECT_EQ(g.tokens[0], (std::vector<std::int64_t>{2}));
  auto b = d->beamSearch(mem, {}, 3, 1.0, 6);
  EXPECT_EQ(b.tokens[0], (std::vector<std::int64_t>{2}));
}
