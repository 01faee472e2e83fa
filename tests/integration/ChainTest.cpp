// The whole chain on a tiny synthetic set, through the apps: synth -> tokenizer -> cache ->
// clip2d -> retrieval -> biud -> zero-shot -> embed. Checks what must hold exactly: training is
// deterministic, and a BIUD run stopped at step 2 and resumed equals an uninterrupted one bit for
// bit (model, optimizer, loader position, EFM masking seeds, RNG all restored).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;
using biud::test::tinyQuickstartFlags;

std::string runOk(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  return r.out;
}

}  // namespace

TEST(Chain, SynthToZeroShotDeterministicAndResumable) {
  biud::test::TempDir d("chain");
  const std::string D = d.str();
  const std::string cfg = (biud::test::sourceDir() / "configs" / "quickstart.yaml").string();
  const std::string common =
      " --config " + quote(cfg) + " --set threads=1 --set data.manifest=" + D + "/data/ct/manifest.csv" +
      " --set data.xray_manifest=" + D + "/data/cxr/manifest.csv --set data.cache_dir=" + D + "/cache" +
      " --set data.pairing=" + D + "/retrieval/pairing.csv --set text.vocab=" + D + "/tok/vocab.txt" +
      " --set model.teacher=" + D + "/teacher --set data.loader.batch_size=8 --set schedule.name=constant" +
      " --set schedule.warmup_steps=0 --set trainer.val_every=0 --set eval.bootstrap=0 --quiet" + tinyQuickstartFlags();
  runOk(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=40 --set synth.n_external=0" +
        " --set synth.n_cxr=64 --set synth.size=[48,48,24] --set synth.xray_size=64 --out " + D + "/data --quiet");
  runOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 400 --input " + D +
        "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet");
  runOk(app("biud-preprocess") + common + " --manifest " + D + "/data/ct/manifest.csv --out " + D + "/cache");
  runOk(app("biud-train") + common + " --set task=clip2d --set trainer.steps=3 --out " + D + "/teacher");
  runOk(app("biud-retrieve") + common + " --out " + D + "/retrieval");

  // BIUD: 4 steps straight, twice (determinism), and 2 steps + resume to 4 (exact resume).
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=4 --out " + D + "/biud_a");
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=4 --out " + D + "/biud_b");
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=2 --out " + D + "/biud_c");
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=4 --resume latest --out " + D + "/biud_c");
  // Resuming the finished run trains nothing and says so; its progress line once read "loss nan".
  {
    std::string loud = common;  // with the progress bar
    loud.erase(loud.find(" --quiet"), 8);
    const auto again = biud::test::run(app("biud-train") + loud +
                                       " --set task=biud --set trainer.steps=4 --resume latest --out " + D + "/biud_c");
    EXPECT_EQ(again.rc, 0) << again.out;
    EXPECT_NE(again.out.find("already at step 4 of trainer.steps = 4: nothing to train"), std::string::npos)
        << again.out;
    EXPECT_NE(again.out.find("no step taken"), std::string::npos) << again.out;
    EXPECT_EQ(again.out.find("loss nan"), std::string::npos) << again.out;
  }
  const auto a = biud::tensor::readSafetensors(D + "/biud_a/checkpoints/step_000004/model.safetensors");
  const auto b = biud::tensor::readSafetensors(D + "/biud_b/checkpoints/step_000004/model.safetensors");
  const auto c = biud::tensor::readSafetensors(D + "/biud_c/checkpoints/step_000004/model.safetensors");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), c.size());
  const auto init = biud::tensor::readSafetensors(D + "/biud_c/checkpoints/step_000002/model.safetensors");
  bool moved = false;
  for (const auto& [k, t] : a) {
    EXPECT_TRUE(torch::equal(t, b.at(k))) << "not deterministic: " << k;
    EXPECT_TRUE(torch::equal(t, c.at(k))) << "resume differs: " << k;
    moved = moved || !torch::equal(t, init.at(k));
  }
  EXPECT_TRUE(moved) << "steps 3-4 changed no weight";

  // model.text_init = teacher: the CT model's text encoder starts as the X-ray teacher's. With its
  // learning rate at 0 for one step, its transformer layers still equal the teacher's.
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=1 --set model.text_init=teacher" +
        " --set \"optimizer.module_lr={text_encoder: 0}\" --out " + D + "/biud_t");
  {
    const auto t = biud::tensor::readSafetensors(D + "/biud_t/checkpoints/step_000001/model.safetensors");
    const auto teacher = biud::tensor::readSafetensors(D + "/teacher/checkpoints/step_000003/model.safetensors");
    int same = 0;
    for (const auto& [k, v] : t) {
      if (k.rfind("text_encoder.encoder.", 0) != 0) continue;
      EXPECT_TRUE(torch::equal(v, teacher.at(k))) << k;
      ++same;
    }
    EXPECT_GT(same, 10);
    // With text_init = none the text encoder is a fresh one.
    runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=1 --set model.text_init=none" +
          " --set \"optimizer.module_lr={text_encoder: 0}\" --out " + D + "/biud_n");
    const auto n = biud::tensor::readSafetensors(D + "/biud_n/checkpoints/step_000001/model.safetensors");
    const auto k0 = std::string("text_encoder.encoder.layer.0.attention.self.query.weight");
    ASSERT_TRUE(n.count(k0) && teacher.count(k0));
    EXPECT_FALSE(torch::equal(n.at(k0), teacher.at(k0)));
  }

  // Zero-shot writes the metrics of every finding that has prompts.
  runOk(app("biud-zeroshot") + common + " --run " + D + "/biud_a --split train --out " + D + "/zs");
  const auto zs = nlohmann::json::parse(biud::fs::readFile(D + "/zs/zeroshot.json"));
  EXPECT_EQ(zs["per_label"].size(), 10u);
  EXPECT_TRUE(zs["macro"].contains("auroc"));

  // biud-embed reads a raw NIfTI with the run's preprocessing into the shared space.
  const std::string vol = D + "/data/ct/volumes/ct_000000.nii.gz";
  runOk(app("biud-embed") + " --run " + D + "/biud_a --volumes " + vol + " --out " + D + "/emb --quiet");
  const auto e = biud::tensor::readSafetensors(D + "/emb/embeddings.safetensors");
  ASSERT_TRUE(e.count("volume_embedding"));
  EXPECT_EQ(e.at("volume_embedding").size(0), 1);
  EXPECT_NEAR(e.at("volume_embedding").norm().item<double>(), 1.0, 1e-4);  // shared space, L2-normalised
}
