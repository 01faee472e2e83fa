// X2CT-CLIP through the apps on a tiny synthetic set: synth -> tokenizer -> cache -> clip2d ->
// retrieval -> biud (the frozen towers) -> biud-drr -> x2ct (tri-modal, and X-ray-report only) ->
// biud-x2ct-eval and biud-zeroshot on the X-ray runs. Checks that the cached CT latents of the x2ct
// run are the CT embeddings biud-embed computes independently from the raw volume with the biud run,
// and that the evaluation reports every direction, finding, fraction and the external split.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/data/X2ctLatents.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/X2ctTask.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;

std::string runOk(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  return r.out;
}

}  // namespace

TEST(X2ctChain, SynthToX2ctEval) {
  biud::test::TempDir d("x2ctchain");
  const std::string D = d.str();
  const std::string cfg = (biud::test::sourceDir() / "configs" / "x2ct.yaml").string();
  const std::string common =
      " --config " + quote(cfg) + " --set threads=1 --set data.manifest=" + D + "/data/ct/manifest.csv" +
      " --set data.cache_dir=" + D + "/cache --set data.pairing=" + D + "/retrieval/pairing.csv" +
      " --set text.vocab=" + D + "/tok/vocab.txt --set model.teacher=" + D + "/teacher" +
      " --set data.loader.batch_size=8 --set schedule.name=constant --set schedule.warmup_steps=0" +
      " --set trainer.val_every=0 --set eval.bootstrap=0 --set x2ct.pretrained=" + D + "/biud --quiet" +
      biud::test::tinyQuickstartFlags();
  const std::string cxr = " --set data.xray_manifest=" + D + "/data/cxr/manifest.csv";
  const std::string drr = " --set data.xray_manifest=" + D + "/drr/manifest.csv --set data.xray.size=32";
  runOk(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=40 --set synth.n_external=8" +
        " --set synth.n_cxr=64 --set synth.size=[48,48,24] --set synth.xray_size=64 --out " + D + "/data --quiet");
  runOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 400 --input " + D +
        "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet");
  runOk(app("biud-preprocess") + common + " --manifest " + D + "/data/ct/manifest.csv --out " + D + "/cache");
  runOk(app("biud-train") + common + cxr + " --set task=clip2d --set trainer.steps=2 --out " + D + "/teacher");
  runOk(app("biud-retrieve") + common + cxr + " --out " + D + "/retrieval");
  runOk(app("biud-train") + common + " --set task=biud --set trainer.steps=2 --out " + D + "/biud");

  // Simulated X-rays of every CT (train/val/test/external), ids = CT ids.
  runOk(app("biud-drr") + common + " --manifest " + D + "/data/ct/manifest.csv --iso-spacing 4 --out " + D + "/drr");
  const auto ct = biud::fs::readFile(D + "/data/ct/manifest.csv");
  const auto xr = biud::fs::readFile(D + "/drr/manifest.csv");
  EXPECT_EQ(std::count(ct.begin(), ct.end(), '\n'), std::count(xr.begin(), xr.end(), '\n'));

  runOk(app("biud-train") + common + drr + " --set trainer.steps=3 --out " + D + "/tri");
  runOk(app("biud-train") + common + drr + " --set trainer.steps=3 --set loss.trimodal.gamma=0 --out " + D + "/xr");

  // The cached CT latents are the biud run's CT embeddings (biud-embed reads the raw NIfTI; the
  // cache stores int16-quantised voxels, hence the tolerance).
  runOk(app("biud-embed") + " --run " + D + "/biud --volumes " + D + "/data/ct/volumes/ct_000000.nii.gz --out " + D +
        "/emb --quiet");
  const auto e = biud::tensor::readSafetensors(D + "/emb/embeddings.safetensors").at("volume_embedding")[0];
  const auto lat = biud::data::readX2ctLatents(D + "/tri/latents.safetensors");
  const auto row = lat.row("ct_000000");
  ASSERT_GE(row, 0);
  EXPECT_GT(torch::dot(lat.ct[row], e.to(torch::kFloat32)).item<double>(), 0.999);
  EXPECT_EQ(lat.ids.size(), 48u);  // every CT, external ones included

  runOk(app("biud-x2ct-eval") + common + drr + " --run tri=" + D + "/tri --run xr=" + D +
        "/xr --fewshot-seeds 1 --out " + D + "/eval");
  const auto j = nlohmann::json::parse(biud::fs::readFile(D + "/eval/x2ct-eval.json"));
  for (const char* m : {"tri", "xr"}) {
    const auto& r = j["models"][m];
    for (const char* dir : {"xray_to_report", "report_to_xray", "xray_to_ct", "ct_to_xray"})
      for (const char* k : {"recall@1", "recall@5", "recall@10"}) {
        const double v = r["retrieval"][dir][k].get<double>();
        EXPECT_TRUE(v >= 0 && v <= 1) << m << " " << dir << " " << k;
      }
    EXPECT_EQ(r["zeroshot"]["per_label"].size(), 10u);
    EXPECT_EQ(r["fewshot"].size(), 5u);
    EXPECT_TRUE(r["fewshot"].contains("0.025"));
    EXPECT_EQ(r["external"]["split"], "external");
  }
  EXPECT_EQ(j["models"]["xr"]["loss"]["gamma"].get<double>(), 0.0);
  EXPECT_NE(biud::fs::readFile(D + "/eval/x2ct-eval.md").find("| xray_to_ct recall@5 |"), std::string::npos);

  // biud-zeroshot takes an x2ct run as an X-ray model (its data.xray_manifest = the DRR manifest).
  runOk(app("biud-zeroshot") + common + " --run " + D + "/tri --split test --out " + D + "/zs");
  const auto zs = nlohmann::json::parse(biud::fs::readFile(D + "/zs/zeroshot.json"));
  EXPECT_EQ(zs["per_label"].size(), 10u);
}
