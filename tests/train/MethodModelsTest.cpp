// The BIUD model's EFM path cuts padding columns and projects only the selected tokens onto the
// vocabulary: it must give the same logits (and gradients) as the full-width computation indexed
// afterwards, which is what it replaced.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/data/TextBatch.h"
#include "biud/models/MethodModels.h"
#include "biud/text/Tokenizer.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

TEST(BiudModel, EfmLogitsEqualFullWidthLogitsAtTheSelectedTokens) {
  TempDir dir;
  Config cfg;
  cfg.text.tokenizer = "wordpiece";
  cfg.text.vocab = writeTinyVocab(
      dir.path() / "vocab.txt", {"no", "nodule", "effusion", "small", "large", "right", "left", "lung", "is", "seen"});
  cfg.model.embed_dim = 16;
  cfg.model.ct_encoder.arch = "resnet3d18";
  cfg.model.text_encoder.arch = "bert";
  cfg.model.fusion.arch = "fusion";
  cfg.loss.efm.weight = 0.5;
  auto tok = text::makeTokenizer(cfg.text);
  torch::manual_seed(5);
  models::BiudModel m(cfg, tok->vocabSize(), 8);
  m->eval();  // no dropout: both paths must see the same network

  // Padded to max_length (as the biud task does): every row ends in padding columns.
  auto tb = data::tokenizeBatch(*tok, {"small nodule right lung.", "no effusion.", "large left effusion is seen."}, 24,
                                nullptr, /*padToMax=*/true);
  ASSERT_EQ(tb.ids.size(1), 24);
  auto ids = tb.ids.clone();
  auto selected = torch::zeros_like(tb.mask, torch::kBool);
  selected.index_put_({0, 2}, true);
  selected.index_put_({1, 1}, true);
  selected.index_put_({2, 5}, true);
  selected.index_put_({2, 1}, true);
  ids.index_put_({selected}, 4);  // [MASK]
  auto ct = m->encodeCt(torch::randn({3, 1, 16, 16, 16})).tokens;

  auto got = m->efmLogits(ids, tb.mask, ct, selected);
  ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{4, tok->vocabSize()}));
  auto gradGot = torch::autograd::grad({got.square().sum()}, {ct}, {}, /*retain_graph=*/true)[0];

  // Reference: the whole padded width through text encoder, fusion and MLM head, then indexed.
  auto hidden = m->text_encoder->encode(ids, tb.mask).hidden;
  auto full = m->fusion->mlmLogits(m->fusion->forward(hidden, tb.mask, ct, {}));
  ASSERT_EQ(full.size(1), 24);
  auto want = full.index({selected});
  auto gradWant = torch::autograd::grad({want.square().sum()}, {ct}, {}, /*retain_graph=*/true)[0];
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_LT((gradGot - gradWant).abs().max().item<double>(), 1e-5);
  EXPECT_GT(gradWant.abs().sum().item<double>(), 0.0);

  // A selection of another shape is refused with the shapes named.
  EXPECT_THROW(m->efmLogits(ids, tb.mask, ct, selected.index({torch::indexing::Slice(0, 2)})), ValueError);
}

}  // namespace
}  // namespace biud::test
