// biud-import-weights ct-clip as a function (evaluate/ImportWeights.h): a small CT-CLIP state
// dict becomes a run folder that loadRun() reads back bit for bit, with CT-CLIP's preprocessing
// and tokenizer in its config; a folder that already holds checkpoints is refused.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/evaluate/ImportWeights.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

TEST(ImportWeights, CtClipStateDictBecomesARunLoadRunReadsBack) {
  TempDir t("import_ctclip");
  models::CtClipOptions o;
  o.image.dim = 16, o.image.heads = 2, o.image.dim_head = 8, o.image.codebook_size = 4, o.image.image_size = 40;
  o.image.spatial_depth = o.image.temporal_depth = 1;
  o.text = models::BertOptions::preset("tiny");
  o.text.vocab_size = 20;
  o.latent_dim = 8;
  torch::manual_seed(3);
  models::CtClip model(o);
  const auto sd = tensor::stateDict(*model);
  tensor::writeSafetensors((t / "ctclip.safetensors").string(), sd);
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (int i = 5; i < 20; ++i) vocab += "w" + std::to_string(i) + "\n";
  stdfs::create_directories(t / "bert");
  writeText(t / "bert/vocab.txt", vocab);

  evaluate::CtClipImportOptions io;
  io.ckpt = (t / "ctclip.safetensors").string();
  io.tokenizer = (t / "bert").string();  // the folder: its vocab.txt
  io.hints.text_heads = 4;
  io.frames = 20;
  io.batch = 2;
  io.spacing = {1.0, 1.0, 2.0};
  const auto out = t / "run";
  io.prepareOut = [&] {
    stdfs::create_directories(out);
    return out.string();
  };
  Config cfg;
  const auto j = evaluate::importCtClip(io, cfg);
  std::int64_t params = 0;
  for (const auto& [k, v] : sd) params += v.numel();
  EXPECT_EQ(j["tensors"].get<std::size_t>(), sd.size());
  EXPECT_EQ(j["parameters"].get<std::int64_t>(), params);
  EXPECT_EQ(j["vocab_tokens"].get<std::int64_t>(), 20);
  EXPECT_EQ(readText(out / "vocab.txt"), vocab);

  auto run = evaluate::loadRun(out.string(), torch::kCPU, false);
  ASSERT_TRUE(run.model);
  EXPECT_EQ(run.model->task(), "ct-clip");
  EXPECT_TRUE(run.model->can(evaluate::Capability::kCt) && run.model->can(evaluate::Capability::kText));
  EXPECT_EQ(run.cfg.data.ct.size, (std::vector<int>{40, 40, 20}));
  EXPECT_EQ(run.cfg.data.ct.spacing, (std::vector<double>{1.0, 1.0, 2.0}));
  EXPECT_EQ(run.cfg.data.ct.grid, "torch");
  EXPECT_TRUE(run.cfg.data.ct.clip_before_resample);  // --loader zeroshot by default
  EXPECT_EQ(run.cfg.data.loader.batch_size, 2);
  EXPECT_EQ(run.cfg.eval.zeroshot_protocol, "ct-clip");
  EXPECT_EQ(run.cfg.text.max_length, 512);
  const auto back = tensor::stateDict(run.model->module());
  ASSERT_EQ(back.size(), sd.size());
  for (const auto& [k, v] : sd) {
    ASSERT_TRUE(back.count(k)) << k;
    EXPECT_TRUE(torch::equal(back.at(k), v)) << k;
  }

  // Importing again into the same --out is refused before anything is read.
  io.givenOut = out.string();
  EXPECT_THROW(evaluate::importCtClip(io, cfg), ConfigError);
  // frames must be whole temporal patches.
  io.givenOut.clear();
  io.frames = 25;
  EXPECT_THROW(evaluate::importCtClip(io, cfg), ConfigError);
}

}  // namespace
}  // namespace biud::test
