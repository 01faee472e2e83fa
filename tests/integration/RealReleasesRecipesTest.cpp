// The GPU recipes for real data, shrunk with --set to run on a CPU, over folders laid out exactly
// like the CT-RATE and MIMIC-CXR-JPG releases (built from pydicom's real CT and radiograph files:
// tests/reference/ctrate_release.py, mimic_release.py): import -> preprocess (configs/data/ct_rate.yaml,
// the one cache) -> X-ray expert (teacher-mimic-gpu) -> retrieval and BIUD (biud-ctrate-gpu) ->
// zero-shot with the CT-RATE prompts -> fine-tune (finetune-ctrate-gpu) -> report
// (report-ctrate-gpu) -> DRR and X2CT (x2ct-ctrate-gpu). What must hold exactly: every recipe
// reads the same cache (same preprocessing hash), zero-shot and fine-tuning score CT-RATE's own
// label columns, the DRRs are made from the metadata-corrected volumes.
#include <algorithm>
#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/image/CtCache.h"
#include "biud/image/Manifest.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;

std::string runOk(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out.substr(r.out.size() > 4000 ? r.out.size() - 4000 : 0);
  return r.out;
}

/// A stage that met the damaged volume: exit 3 (some items failed, the rest written).
std::string runPartial(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 3) << cmd << "\n" << r.out.substr(r.out.size() > 4000 ? r.out.size() - 4000 : 0);
  return r.out;
}

std::string recipe(const std::string& name) { return quote((biud::test::sourceDir() / "configs" / name).string()); }

}  // namespace

TEST(RealReleasesRecipes, CtRateAndMimicThroughEveryGpuRecipeOnCpu) {
  biud::test::TempDir d("recipes");
  const std::string D = d.str();
  biud::test::runPython("ctrate_release.py", "make " + quote(D + "/CT-RATE") + " 8");
  biud::test::runPython("mimic_release.py", "make " + quote(D + "/mimic-cxr-jpg") + " 12");
  runOk(app("biud-import") + " ct-rate --root " + D + "/CT-RATE --val-fraction 0.2 --out " + D + "/ct_rate --quiet");
  runOk(app("biud-import") + " mimic-cxr --root " + D + "/mimic-cxr-jpg --require-report --out " + D +
        "/mimic_cxr --quiet");
  // One CT of the test split (CT-RATE valid) is damaged after the import: a truncated download.
  // Every stage that reads it skips it, lists it and exits 3; everything else is written.
  const std::string broken = D + "/CT-RATE/dataset/valid/valid_3/valid_3_a/valid_3_a_1.nii.gz";
  {
    const std::string whole = biud::test::readText(broken);
    biud::test::writeText(broken, whole.substr(0, whole.size() / 2));
  }
  runOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 300 --input " + D +
        "/ct_rate/manifest.csv --input " + D + "/mimic_cxr/manifest.csv --out " + D + "/tok --quiet");

  // What a CPU needs instead of GPUs and paper-size networks; the recipes' data choices stay
  // (1.6 x 1.6 x 3 mm, CT-CLIP's grid, HU window, splits, report sections, prompts, lexicon).
  // BIUD_TEST_DEVICE=cuda (scripts/gpu-check.sh) runs every recipe's steps on the GPU in bf16.
  const char* dev = std::getenv("BIUD_TEST_DEVICE");
  const std::string device = dev && *dev ? dev : "cpu";
  const std::string precision = device == "cpu" ? "fp32" : "bf16";
  const std::string shrink =
      " --set device=" + device + " --set threads=1 --set text.vocab=" + D +
      "/tok/vocab.txt --set text.max_length=64"
      " --set model.embed_dim=32"
      " --set \"model.ct_encoder={arch: vit3d, preset: tiny, image_size: [32, 64, 64], patch: [8, 16, 16], pool: cls, "
      "checkpointing: false}\""
      " --set \"model.xray_encoder={arch: resnet50, preset: tiny, weights: ''}\""
      " --set \"model.text_encoder={arch: bert, preset: tiny, weights: '', pool: cls}\""
      " --set \"model.fusion={arch: fusion, preset: tiny}\""
      " --set \"model.decoder={arch: report_decoder, preset: tiny, max_len: 128}\""
      " --set data.ct.size=[64,64,32] --set data.xray.size=64"
      " --set data.loader.batch_size=2 --set data.loader.workers=0 --set data.loader.prefetch=1"
      " --set trainer.steps=2 --set trainer.save_every=2 --set trainer.val_every=0 --set trainer.precision=" +
      precision +
      " --set schedule.warmup_steps=0 --set eval.bootstrap=0 --set logging.every_steps=1 --quiet"
      " --set data.manifest=" +
      D + "/ct_rate/manifest.csv --set data.cache_dir=" + D +
      "/cache/ct_rate"
      " --set data.xray_manifest=" +
      D + "/mimic_cxr/manifest.csv --set data.pairing=" + D +
      "/retrieval/pairing.csv"
      " --set model.teacher=" +
      D + "/teacher";

  // The one CT-RATE cache, with the recipes' own preprocessing (data/ct_rate.yaml).
  // (no --manifest: the recipe's data.manifest names the import's, as docs/your-data.md shows)
  runPartial(app("biud-preprocess") + " --config " + recipe("data/ct_rate.yaml") + shrink + " --out " + D +
             "/cache/ct_rate");
  const auto pre = nlohmann::json::parse(biud::test::readText(D + "/cache/ct_rate/biud-preprocess.json"));
  EXPECT_EQ(pre["done"], 14);
  EXPECT_EQ(pre["failed"], 1);
  EXPECT_EQ(pre["hu_implausible"], 0);  // the metadata intercept made them HU
  EXPECT_NE(pre["preprocess"].get<std::string>().find("spacing [1.6, 1.6, 3] mm"), std::string::npos) << pre.dump();
  EXPECT_NE(pre["preprocess"].get<std::string>().find("grid torch"), std::string::npos) << pre.dump();

  runOk(app("biud-train") + " --config " + recipe("teacher-mimic-gpu.yaml") + shrink + " --out " + D + "/teacher");
  runOk(app("biud-retrieve") + " --config " + recipe("biud-ctrate-gpu.yaml") + shrink + " --out " + D + "/retrieval");
  runOk(app("biud-train") + " --config " + recipe("biud-ctrate-gpu.yaml") + shrink + " --out " + D + "/biud");

  // Zero-shot with the CT-RATE prompts on CT-RATE's own label columns (test split = CT-RATE valid).
  runPartial(app("biud-zeroshot") + " --config " + recipe("biud-ctrate-gpu.yaml") + shrink + " --run " + D +
             "/biud --out " + D + "/zeroshot");
  EXPECT_NE(biud::test::readText(D + "/zeroshot/failures.jsonl").find("valid_3_a_1"), std::string::npos);
  {
    const auto zs = nlohmann::json::parse(biud::test::readText(D + "/zeroshot/zeroshot.json"));
    const auto m = biud::image::readManifest(D + "/ct_rate/manifest.csv");
    ASSERT_TRUE(zs.contains("per_label")) << zs.dump().substr(0, 1000);
    std::vector<std::string> keys;
    int scored = 0;
    for (const auto& [name, v] : zs["per_label"].items()) {
      keys.push_back(name);
      scored += v.contains("auroc") && v["auroc"].is_number();
    }
    auto want = m.labelNames;
    std::sort(want.begin(), want.end());
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, want);  // every CT-RATE column has its prompts, under the release's names
    // The labels with both classes in the test split (CT-RATE valid): arterial wall calcification,
    // lung nodule, pleural effusion in the fixture.
    EXPECT_EQ(scored, 3) << zs["per_label"].dump();
  }

  // External validation on a RAD-ChestCT-like folder (.npz volumes, head-first slices, its own
  // label table mapped onto the CT-RATE names): the same run and prompts; the evaluated CTs are
  // preprocessed once with the run's settings into the output folder.
  biud::test::runPython("radchest_release.py", "make " + quote(D + "/rad-chestct"));
  runOk(app("biud-import") + " rad-chestct --root " + D + "/rad-chestct --label-names ct-rate --all-test --out " + D +
        "/rad_chestct --quiet");
  runOk(app("biud-zeroshot") + " --config " + recipe("biud-ctrate-gpu.yaml") + shrink + " --run " + D +
        "/biud --manifest " + D + "/rad_chestct/manifest.csv --split test --set eval.bootstrap=0 --out " + D +
        "/zeroshot_rad");
  {
    const auto zs = nlohmann::json::parse(biud::test::readText(D + "/zeroshot_rad/zeroshot.json"));
    const auto ct = biud::image::readManifest(D + "/ct_rate/manifest.csv");
    ASSERT_TRUE(zs.contains("per_label"));
    for (const auto& [name, v] : zs["per_label"].items())
      EXPECT_NE(std::find(ct.labelNames.begin(), ct.labelNames.end(), name), ct.labelNames.end()) << name;
    EXPECT_GE(zs["per_label"].size(), 10u);
  }

  // Fine-tuning and report generation from the BIUD run, on the same cache.
  runPartial(app("biud-finetune") + " --config " + recipe("finetune-ctrate-gpu.yaml") + shrink +
             " --set finetune.run=" + D + "/biud --out " + D + "/finetune");
  EXPECT_NE(biud::test::readText(D + "/finetune/failures.jsonl").find("valid_3_a_1"), std::string::npos);
  {
    const auto ft = nlohmann::json::parse(biud::test::readText(D + "/finetune/finetune.json"));
    EXPECT_TRUE(ft["per_label"].contains("Pleural effusion")) << ft.dump().substr(0, 1000);
  }
  runPartial(app("biud-report") + " --config " + recipe("report-ctrate-gpu.yaml") + shrink + " --set report.run=" + D +
             "/biud --out " + D + "/report");
  {
    const auto rep = nlohmann::json::parse(biud::test::readText(D + "/report/report.json"));
    EXPECT_EQ(rep["failed"], 1);
  }

  // X2CT: DRRs of the metadata-corrected volumes, then the trimodal stage on the BIUD run.
  runPartial(app("biud-drr") + " --config " + recipe("x2ct-ctrate-gpu.yaml") + shrink +
             " --set x2ct.drr.size=64 --set x2ct.drr.spacing=2.0 --threads 1 --out " + D + "/drr");
  {
    const auto drr = biud::image::readManifest(D + "/drr/manifest.csv");
    EXPECT_EQ(drr.items.size(), 14u);
  }
  runOk(app("biud-train") + " --config " + recipe("x2ct-ctrate-gpu.yaml") + shrink + " --set x2ct.drr.size=64" +
        " --set x2ct.pretrained=" + D + "/biud --set data.xray_manifest=" + D + "/drr/manifest.csv" +
        " --set \"model.xray_encoder={arch: resnet50, preset: tiny, in_channels: 1}\" --out " + D + "/x2ct");

  // One cache served every recipe: nothing wrote a second one, and its hash is the recipes'.
  biud::image::CacheReader cache(D + "/cache/ct_rate");
  EXPECT_EQ(cache.size(), 14u);
}
