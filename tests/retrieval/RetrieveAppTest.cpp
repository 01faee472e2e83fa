// biud-retrieve end to end with a tiny clip2d teacher (synth -> tokenizer -> clip2d, 1 step):
//  - a run stopped by --stop-after-chunks and resumed (twice) writes a byte-identical pairing.csv
//    and bit-identical teacher features to an uninterrupted run, and removes its work folder;
//  - the features of every kept X-ray equal the teacher image tower applied to that X-ray alone
//    (rank k of h_star is the X-ray that pairing.csv lists at rank k; the app embeds in batches);
//  - changed inputs (other report sections) discard the old work folder with a log line;
//  - biud training with data.pairing_top_k larger than the file's K stops with the fix; with
//    pairing_top_k 3 it trains, logs the per-epoch draws, and resumes bit-identically.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Csv.h"
#include "biud/core/Fs.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;

biud::test::CommandResult runRc(const std::string& cmd, int rc) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, rc) << cmd << "\n" << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  return r;
}

void expectSameFeatures(const std::string& a, const std::string& b) {
  std::map<std::string, std::string> ma, mb;
  const auto ta = biud::tensor::readSafetensors(a, &ma);
  const auto tb = biud::tensor::readSafetensors(b, &mb);
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [k, t] : ta) EXPECT_TRUE(torch::equal(t, tb.at(k))) << k;
  EXPECT_EQ(ma, mb);
}

}  // namespace

TEST(RetrieveApp, InterruptedResumedEqualsUninterrupted) {
  biud::test::TempDir d("retrieve-app");
  const std::string D = d.str();
  const std::string cfg = (biud::test::sourceDir() / "configs" / "quickstart.yaml").string();
  const std::string common = " --config " + quote(cfg) + " --set threads=1 --set data.manifest=" + D +
                             "/data/ct/manifest.csv --set data.xray_manifest=" + D +
                             "/data/cxr/manifest.csv --set text.vocab=" + D +
                             "/tok/vocab.txt --set model.teacher=" + D + "/teacher --set data.pairing=" + D +
                             "/full/pairing.csv" + biud::test::tinyQuickstartFlags();
  const std::string quiet = " --quiet";
  runRc(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=14 --set synth.n_external=0" +
            " --set synth.n_cxr=30 --set synth.size=[32,32,16] --set synth.xray_size=32 --out " + D + "/data --quiet",
        0);
  runRc(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 300 --input " + D +
            "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet",
        0);
  runRc(app("biud-train") + common + " --set task=clip2d --set trainer.steps=1 --set data.loader.batch_size=8" +
            " --set trainer.val_every=0 --set schedule.warmup_steps=0 --out " + D + "/teacher" + quiet,
        0);
  const std::string verbose = app("biud-retrieve") + common + " --top-k 3 --chunk 4";
  const std::string retrieve = verbose + quiet;

  runRc(retrieve + " --out " + D + "/full", 0);
  EXPECT_FALSE(biud::fs::stdfs::exists(D + "/full/retrieve-work")) << "work folder not removed";
  // Interrupted twice (after 3 chunks, then 5 more), resumed to the end.
  auto r1 = runRc(retrieve + " --stop-after-chunks 3 --out " + D + "/part", 130);
  EXPECT_TRUE(biud::fs::stdfs::exists(D + "/part/retrieve-work/fingerprint.json"));
  EXPECT_FALSE(biud::fs::stdfs::exists(D + "/part/pairing.csv"));
  runRc(retrieve + " --stop-after-chunks 5 --out " + D + "/part", 130);
  auto r3 = runRc(verbose + " --keep-work --out " + D + "/part", 0);
  EXPECT_NE(r3.out.find("resuming"), std::string::npos) << r3.out;
  EXPECT_TRUE(biud::fs::stdfs::exists(D + "/part/retrieve-work")) << "--keep-work";
  EXPECT_EQ(biud::test::readText(D + "/part/pairing.csv"), biud::test::readText(D + "/full/pairing.csv"));
  expectSameFeatures(D + "/part/teacher_features.safetensors", D + "/full/teacher_features.safetensors");

  // h_star[i, k] is the teacher image tower applied (here, alone, batch 1) to the X-ray that
  // pairing.csv lists at rank k+1 for CT i; the scores are the CSV's.
  const auto tf = biud::data::TeacherFeatures::load(D + "/full/teacher_features.safetensors");
  ASSERT_EQ(tf.topK(), 3);
  const auto table = biud::csv::read(D + "/full/pairing.csv");
  ASSERT_EQ(table.rows.size(), tf.ids.size() * 3);
  auto teacher = biud::evaluate::loadRun(D + "/teacher", torch::kCPU);
  const auto cxr = biud::image::readManifest(D + "/data/cxr/manifest.csv");
  std::map<std::string, const biud::image::ManifestItem*> items;
  for (const auto& it : cxr.items) items[it.id] = &it;
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto i = static_cast<std::int64_t>(r / 3), k = static_cast<std::int64_t>(r % 3);
    EXPECT_EQ(table.rows[r][0], tf.ids[static_cast<size_t>(i)]);
    EXPECT_EQ(table.rows[r][3], std::to_string(k + 1));
    EXPECT_NEAR(std::stod(table.rows[r][2]), tf.scores[i][k].item<double>(), 1e-6);
    ASSERT_TRUE(items.count(table.rows[r][1])) << table.rows[r][1];
    auto img = biud::image::preprocessXray(biud::image::readImage2D(items.at(table.rows[r][1])->images.front()),
                                           teacher.cfg.data.xray);
    torch::NoGradGuard ng;
    auto x = torch::from_blob(img.data.data(), {1, 1, img.size[1], img.size[0]}, torch::kFloat32).clone();
    auto want = teacher.model->encodeXray(x).squeeze(0);
    EXPECT_TRUE(torch::allclose(tf.candidates[i][k], want, 1e-4, 1e-5)) << "CT " << i << " rank " << k + 1;
  }
  EXPECT_TRUE(torch::equal(tf.h_star, tf.candidates.select(1, 0)));

  // Other inputs (report sections) with the kept work folder: discarded, with a line saying why.
  auto r4 = runRc(retrieve + " --set data.report_sections=[impression] --out " + D + "/part", 0);
  EXPECT_NE(r4.out.find("different inputs (changed: ct_manifest, xray_manifest, report_sections)"), std::string::npos)
      << r4.out;
  runRc(retrieve + " --set data.report_sections=[impression] --out " + D + "/imp", 0);
  EXPECT_EQ(biud::test::readText(D + "/part/pairing.csv"), biud::test::readText(D + "/imp/pairing.csv"));

  // BIUD with pairing_top_k above the file's K: a clear error before any training.
  runRc(app("biud-retrieve") + common + " --top-k 1 --out " + D + "/k1" + quiet, 0);
  auto bad = runRc(app("biud-train") + common + " --set task=biud --set trainer.steps=1 --set data.pairing=" + D +
                       "/k1/pairing.csv --set data.pairing_top_k=3 --out " + D + "/biud" + quiet,
                   2);
  EXPECT_NE(bad.out.find("re-run biud-retrieve --top-k 3"), std::string::npos) << bad.out;

  // BIUD drawing each CT's X-ray from its top 3 every epoch: trains, logs the draws of each
  // finished epoch, and a run stopped at step 2 and resumed to step 4 equals an uninterrupted one
  // (the draws follow the restored loader epoch, not the process).
  const std::string biud = app("biud-train") + common +
                           " --set task=biud --set data.pairing_top_k=3 --set data.pairing_tau=0.02" +
                           " --set data.loader.batch_size=4 --set trainer.val_every=0 --set schedule.name=constant" +
                           " --set schedule.warmup_steps=0 --set eval.bootstrap=0 --set data.cache_dir=";
  auto a = runRc(biud + " --set trainer.steps=4 --out " + D + "/biud_a", 0);
  EXPECT_NE(a.out.find("epoch 0: "), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("used a non-rank-1 X-ray"), std::string::npos) << a.out;
  runRc(biud + " --set trainer.steps=2 --out " + D + "/biud_b" + quiet, 0);
  runRc(biud + " --set trainer.steps=4 --resume latest --out " + D + "/biud_b" + quiet, 0);
  const auto ma = biud::tensor::readSafetensors(D + "/biud_a/checkpoints/step_000004/model.safetensors");
  const auto mb = biud::tensor::readSafetensors(D + "/biud_b/checkpoints/step_000004/model.safetensors");
  ASSERT_FALSE(ma.empty());
  ASSERT_EQ(ma.size(), mb.size());
  for (const auto& [k, t] : ma) EXPECT_TRUE(torch::equal(t, mb.at(k))) << "resume differs: " << k;
}
