// biud-finetune and biud-report end to end on the tiny synthetic chain of ChainTest (synth ->
// tokenizer -> cache -> clip2d -> retrieval -> biud), from the BIUD run folder:
// - full fine-tuning with 100% of the labels reaches a higher macro AUROC than zero-shot of the
//   same run on the same cases (both computed here), and its AUROCs equal scikit-learn's on the
//   written probabilities;
// - a label fraction trains on the stratified seeded subset it writes;
// - report generation writes reports side by side whose BLEU/ROUGE-L equal nltk's / rouge-score's
//   on the written file, whose clinical-efficacy F1 equals the count from the written finding
//   columns, and whose BLEU/ROUGE-L are far above those of the same decoder after one step;
// - zero-shot finds the prompts of label columns named as a data set names them (`Lung nodule`),
//   with the same AUROCs, adds CT-CLIP's metrics with --protocol ct-clip, and stops with both
//   lists when no column has prompts;
// - bad input (a label column missing, a manifest without labels, a run folder without a
//   checkpoint) fails with a message naming the problem;
// - biud-embed --run on a finetune run embeds CT volumes with its fine-tuned encoder: equal to
//   that encoder rebuilt here from the pretrained run's config and the finetune checkpoint.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/config/Config.h"
#include "biud/core/Csv.h"
#include "biud/core/Fs.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;
using biud::test::tinyQuickstartFlags;

// Where and how long (measured on the tiny chain; see docs/eval-apps.md for larger runs).
constexpr const char* kSplit = "train";  // fine-tuning vs zero-shot: the labelled cases trained on
// Full fine-tuning, ~13 s: macro AUROC 0.78 vs zero-shot 0.54 on the training split. A linear probe
// of this 4-step encoder (~5 s) reached only 0.60 vs 0.54 with the quickstart's 3-slice stem
// (0.59 vs 0.47 with the 7-slice one; 0.69 vs 0.50 before the session-3 generator), too close to
// tell the app apart from noise; 1000 steps or lr 0.1 did not lift it.
constexpr int kFinetuneSteps = 300;
constexpr double kMargin = 0.1;
constexpr const char* kReportSplit = "train";
constexpr int kReportSteps = 150;  // ~25 s; BLEU-4 0.14 vs 0.00 after one step

std::string runOk(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out.substr(r.out.size() > 4000 ? r.out.size() - 4000 : 0);
  return r.out;
}

nlohmann::json readJson(const std::string& p) { return nlohmann::json::parse(biud::fs::readFile(p)); }

/// The chain, built once for all tests of this file.
class EvalApps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new biud::test::TempDir("evalapps");
    const std::string D = dir_->str();
    const std::string cfg = (biud::test::sourceDir() / "configs" / "quickstart.yaml").string();
    common_ = " --config " + quote(cfg) + " --set threads=2 --set data.manifest=" + D + "/data/ct/manifest.csv" +
              " --set data.xray_manifest=" + D + "/data/cxr/manifest.csv --set data.cache_dir=" + D + "/cache" +
              " --set data.pairing=" + D + "/retrieval/pairing.csv --set text.vocab=" + D + "/tok/vocab.txt" +
              " --set model.teacher=" + D + "/teacher --set data.loader.batch_size=8 --set schedule.name=constant" +
              " --set schedule.warmup_steps=0 --set trainer.val_every=0 --set eval.bootstrap=0 --set eval.plots=false "
              "--quiet" +
              tinyQuickstartFlags();
    runOk(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=40 --set synth.n_external=0" +
          " --set synth.n_cxr=64 --set synth.size=[48,48,24] --set synth.xray_size=64 --out " + D + "/data --quiet");
    runOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 400 --input " + D +
          "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet");
    runOk(app("biud-preprocess") + common_ + " --manifest " + D + "/data/ct/manifest.csv --out " + D + "/cache");
    runOk(app("biud-train") + common_ + " --set task=clip2d --set trainer.steps=3 --out " + D + "/teacher");
    runOk(app("biud-retrieve") + common_ + " --out " + D + "/retrieval");
    runOk(app("biud-train") + common_ + " --set task=biud --set trainer.steps=4 --out " + D + "/biud");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string D() { return dir_->str(); }

  static biud::test::TempDir* dir_;
  static std::string common_;
};
biud::test::TempDir* EvalApps::dir_ = nullptr;
std::string EvalApps::common_;

double macroOver(const nlohmann::json& j, const std::vector<std::string>& labels) {
  double s = 0;
  int n = 0;
  for (const auto& l : labels) {
    const auto& v = j["per_label"][l]["auroc"];
    if (v.is_number()) s += v.get<double>(), ++n;
  }
  return n ? s / n : NAN;
}

}  // namespace

TEST_F(EvalApps, FinetuneWithAllLabelsBeatsZeroShot) {
  const std::string split = kSplit;
  runOk(app("biud-zeroshot") + common_ + " --run " + D() + "/biud --split " + split + " --out " + D() + "/zs");
  runOk(app("biud-finetune") + common_ + " --run " + D() + "/biud --mode full --label-fraction 1 --split " + split +
        " --set optimizer.lr=0.03 --set trainer.steps=" + std::to_string(kFinetuneSteps) + " --out " + D() + "/ft");
  const auto zs = readJson(D() + "/zs/zeroshot.json");
  const auto ft = readJson(D() + "/ft/finetune.json");
  std::vector<std::string> common;
  for (auto it = zs["per_label"].begin(); it != zs["per_label"].end(); ++it)
    if (ft["per_label"].contains(it.key())) common.push_back(it.key());
  ASSERT_GE(common.size(), 5u);
  const double a = macroOver(zs, common), b = macroOver(ft, common);
  std::cout << "macro AUROC over " << common.size() << " findings, split " << split << ": zero-shot " << a
            << ", fine-tuned (100% labels) " << b << "\n";
  EXPECT_GT(b, a + kMargin);

  // Every metric of the zero-shot report, for every label column of the manifest.
  EXPECT_EQ(ft["per_label"].size(), 10u);
  for (const char* k : {"auroc", "ap", "accuracy", "f1", "sensitivity", "specificity"})
    EXPECT_TRUE(ft["macro"].contains(k)) << k;
  const auto m = biud::csv::read(D() + "/data/ct/manifest.csv");
  int train = 0;
  for (const auto& r : m.rows) train += r.at(m.require("split")) == "train";
  EXPECT_EQ(ft["n_train"].get<int>(), train);  // 100% of the labels
  // The AUROCs are scikit-learn's on the written probabilities and the manifest's labels.
  const auto ref = nlohmann::json::parse(biud::test::runPython(
      "train_finetune_check.py",
      "auroc " + quote(D() + "/data/ct/manifest.csv") + " " + quote(D() + "/ft/probabilities.csv")));
  int compared = 0;
  for (auto it = ref["auroc"].begin(); it != ref["auroc"].end(); ++it) {
    const auto& mine = ft["per_label"][it.key()]["auroc"];
    if (it.value().is_null()) {
      EXPECT_TRUE(mine.is_null()) << it.key();
      continue;
    }
    // probabilities.csv holds 6 decimals: ties can differ from the full-precision scores.
    EXPECT_NEAR(mine.get<double>(), it.value().get<double>(), 0.02) << it.key();
    ++compared;
  }
  EXPECT_GE(compared, 5);
  // The run folder of the trainer: checkpoints, metrics, the subset (all training cases).
  EXPECT_TRUE(biud::fs::stdfs::exists(D() + "/ft/checkpoints/latest"));
  EXPECT_TRUE(biud::fs::stdfs::exists(D() + "/ft/metrics.jsonl"));
  const auto subset = biud::csv::read(D() + "/ft/train_subset.csv");
  EXPECT_EQ(static_cast<int>(subset.rows.size()), ft["n_train"].get<int>());
}

// An evaluation written into a training run's folder leaves the run's config.resolved.yaml (what
// loads the run) as it was, and writes its own config beside it.
TEST_F(EvalApps, ZeroShotIntoARunFolderKeepsTheRunsConfig) {
  const std::string run = D() + "/biud_copy";
  biud::fs::stdfs::remove_all(run);
  biud::fs::stdfs::copy(D() + "/biud", run, biud::fs::stdfs::copy_options::recursive);
  const auto before = biud::test::readText(run + "/config.resolved.yaml");
  const std::string zs =
      app("biud-zeroshot") + common_ + " --run " + run + " --split " + kSplit + " --set eval.bootstrap=0";
  runOk(zs + " --set seed=5 --out " + run);
  EXPECT_EQ(biud::test::readText(run + "/config.resolved.yaml"), before);
  EXPECT_NE(biud::test::readText(run + "/config.biud-zeroshot.yaml").find("seed: 5"), std::string::npos);
  // The run still loads, and gives the same AUROCs.
  const auto first = readJson(run + "/zeroshot.json");
  runOk(zs + " --out " + D() + "/zs_copy");
  EXPECT_EQ(readJson(D() + "/zs_copy/zeroshot.json")["macro"]["auroc"], first["macro"]["auroc"]);
}

// Label columns under the names a data set really uses (`Lung nodule` for `lung_nodule`, as
// CT-RATE writes its columns) find their prompts: the same AUROCs as the id-named manifest, keyed
// by the data set's names. `--protocol ct-clip` adds CT-CLIP's metrics on the same probabilities.
// Columns that match no prompt stop the app with both lists.
TEST_F(EvalApps, ZeroShotMatchesLabelColumnsByTheirNames) {
  const auto m = biud::csv::read(D() + "/data/ct/manifest.csv");
  const std::set<std::string> fixed{"id", "image", "patient", "split", "findings", "impression", "report"};
  auto renamed = [&](const std::string& file, const std::function<std::string(const std::string&)>& name) {
    auto header = m.header;
    for (auto& h : header)
      if (!fixed.count(h)) h = name(h);
    biud::csv::write(D() + "/data/ct/" + file, header, m.rows);  // beside the original: image paths are relative
    return D() + "/data/ct/" + file;
  };
  std::map<std::string, std::string> asNamed;
  const std::string named = renamed("named.csv", [&](const std::string& id) {
    std::string n = id;
    for (auto& c : n) c = c == '_' ? ' ' : c;
    n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
    asNamed[id] = n;
    return n;
  });
  const std::string zs = app("biud-zeroshot") + common_ + " --run " + D() + "/biud --split " + kSplit;
  runOk(zs + " --out " + D() + "/zs_ids");
  runOk(zs + " --manifest " + named + " --out " + D() + "/zs_named");
  runOk(zs + " --manifest " + named + " --protocol ct-clip --out " + D() + "/zs_ctclip");
  const auto ids = readJson(D() + "/zs_ids/zeroshot.json"), byName = readJson(D() + "/zs_named/zeroshot.json");
  const auto ctClip = readJson(D() + "/zs_ctclip/zeroshot.json");
  ASSERT_EQ(asNamed.size(), 10u);
  for (const auto& [id, n] : asNamed) {
    ASSERT_TRUE(byName["per_label"].contains(n)) << n;
    EXPECT_EQ(byName["per_label"][n]["auroc"], ids["per_label"][id]["auroc"]) << n;
    // CT-CLIP's block: its own prompts give other probabilities, but its AUROC is the usual one
    // on them, and its threshold is one of the 100 grid values.
    const auto& cc = ctClip["ct_clip"]["per_label"][n];
    EXPECT_EQ(cc["auroc"], ctClip["per_label"][n]["auroc"]) << n;
    if (cc["threshold"].is_number()) {
      const double k = cc["threshold"].get<double>() * 99;
      EXPECT_NEAR(k, std::round(k), 1e-9) << n;
    }
  }
  EXPECT_EQ(ctClip["protocol"], "ct-clip");
  EXPECT_EQ(ids["protocol"], "biud");
  // Nothing matches: one error naming the manifest, its columns and the prompt findings.
  int k = 0;
  const std::string odd = renamed("odd.csv", [&k](const std::string&) { return "Column " + std::to_string(k++); });
  auto r = biud::test::run(zs + " --manifest " + odd + " --out " + D() + "/zs_odd");
  EXPECT_NE(r.rc, 0);
  for (const char* w : {"no label column of", "odd.csv", "`Column 0`, `Column 1`", "lung_nodule", "`id` or `name`"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << " not in: " << r.out;
}

TEST_F(EvalApps, LabelFractionTrainsOnTheSeededStratifiedSubset) {
  auto run = [&](const std::string& out, int seed) {
    runOk(app("biud-finetune") + common_ + " --run " + D() + "/biud --label-fraction 0.25 --seed " +
          std::to_string(seed) + " --set trainer.steps=1 --split val --out " + D() + "/" + out);
    return biud::csv::read(D() + "/" + out + "/train_subset.csv").rows;
  };
  const auto a = run("frac_a", 1), b = run("frac_b", 1);
  EXPECT_EQ(a, b);  // deterministic by seed
  const auto ft = readJson(D() + "/frac_a/finetune.json");
  const int nTrain = ft["n_train"].get<int>();
  EXPECT_EQ(static_cast<int>(a.size()), nTrain);
  // Each training case of the manifest's train split is counted; 25% of them, rounded.
  const auto m = biud::csv::read(D() + "/data/ct/manifest.csv");
  int train = 0;
  for (const auto& r : m.rows) train += r.at(m.require("split")) == "train";
  EXPECT_EQ(nTrain, static_cast<int>(std::max(1L, std::lround(0.25 * train))));
}

TEST_F(EvalApps, ReportGenerationScoresAgreeWithReferencesAndLearn) {
  runOk(app("biud-report") + common_ + " --run " + D() + "/biud --finetune-encoder --beam 2 --split " +
        std::string(kReportSplit) +
        " --set optimizer.lr=0.002 --set model.decoder.dim=64 --set eval.max_new_tokens=95 --set report.val_reports=0" +
        " --set trainer.steps=" + std::to_string(kReportSteps) + " --out " + D() + "/rep");
  const auto j = readJson(D() + "/rep/report.json");
  for (const char* k : {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"})
    EXPECT_TRUE(j["nlg"].contains(k)) << k;
  ASSERT_TRUE(j["clinical"]["micro"].contains("f1"));
  const auto t = biud::csv::read(D() + "/rep/reports.csv");
  ASSERT_EQ(static_cast<int>(t.rows.size()), j["n"].get<int>());
  ASSERT_GT(t.rows.size(), 3u);
  EXPECT_TRUE(biud::fs::stdfs::exists(D() + "/rep/reports.txt"));

  // BLEU and ROUGE-L equal nltk's and rouge-score's on the side-by-side file.
  const auto ref = nlohmann::json::parse(
      biud::test::runPython("train_finetune_check.py", "bleu " + quote(D() + "/rep/reports.csv")));
  for (const char* k : {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"})
    EXPECT_NEAR(j["nlg"][k].get<double>(), ref[k].get<double>(), 1e-9) << k;

  // Clinical efficacy from the written finding columns, by hand: micro F1 = 2tp / (2tp + fp + fn).
  auto sets = [&](size_t row, const char* col) {
    std::set<std::string> s;
    std::stringstream ss(t.rows[row].at(t.require(col)));
    for (std::string x; std::getline(ss, x, ';');)
      if (!x.empty()) s.insert(x);
    return s;
  };
  auto microF1 = [&](size_t shift) {
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const auto g = sets(i, "generated_findings"), r = sets((i + shift) % t.rows.size(), "reference_findings");
      for (const auto& f : g) (r.count(f) ? tp : fp) += 1;
      for (const auto& f : r) fn += g.count(f) ? 0 : 1;
    }
    return 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
  };
  const double f1 = microF1(0);
  EXPECT_NEAR(j["clinical"]["micro"]["f1"].get<double>(), f1, 1e-12);
  // The chance level (reports paired with other cases' references), by hand. On this tiny chain
  // the decoder learns the common report first (the same text for every CT, so F1 = chance);
  // docs/eval-apps.md has the quickstart-size numbers, where the reports differ by CT.
  double shuffled = 0;
  const size_t K = std::min<size_t>(t.rows.size() - 1, 20);
  for (size_t s = 1; s <= K; ++s) shuffled += microF1(s);
  shuffled /= static_cast<double>(K);
  EXPECT_NEAR(j["clinical"]["chance_micro_f1"].get<double>(), shuffled, 1e-12);
  std::cout << "clinical-efficacy micro F1 on split " << kReportSplit << ": " << f1
            << " (other cases' references: " << shuffled << "), BLEU-4 " << j["nlg"]["bleu4"] << "\n";

  // Training learned the reports: the same app after one step (greedy) scores far lower.
  runOk(app("biud-report") + common_ + " --run " + D() + "/biud --beam 1 --split " + std::string(kReportSplit) +
        " --set model.decoder.dim=64 --set eval.max_new_tokens=95 --set report.val_reports=0 --set trainer.steps=1 "
        "--out " +
        D() + "/rep1");
  const auto j1 = readJson(D() + "/rep1/report.json");
  EXPECT_GT(j["nlg"]["bleu4"].get<double>(), j1["nlg"]["bleu4"].get<double>() + 0.05);
  EXPECT_GT(j["nlg"]["rouge_l"].get<double>(), j1["nlg"]["rouge_l"].get<double>() + 0.1);
}

TEST_F(EvalApps, FullFinetuningWithLayerDecayResumesExactly) {
  // 10 steps straight vs 5 steps + --resume latest to 10: the same weights bit for bit (model,
  // optimizer with the per-layer rates, loader position, best-validation tracking restored).
  const std::string f = common_ + " --run " + D() +
                        "/biud --mode full --set optimizer.layer_decay=0.5 --set trainer.val_every=5" +
                        " --set eval.bootstrap=0 --split val --set threads=1";
  runOk(app("biud-finetune") + f + " --set trainer.steps=10 --out " + D() + "/res_a");
  runOk(app("biud-finetune") + f + " --set trainer.steps=5 --out " + D() + "/res_b");
  runOk(app("biud-finetune") + f + " --set trainer.steps=10 --resume latest --out " + D() + "/res_b");
  const auto a = biud::tensor::readSafetensors(D() + "/res_a/checkpoints/step_000010/model.safetensors");
  const auto b = biud::tensor::readSafetensors(D() + "/res_b/checkpoints/step_000010/model.safetensors");
  const auto init = biud::tensor::readSafetensors(D() + "/res_b/checkpoints/step_000005/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  bool encoderMoved = false;
  for (const auto& [k, t] : a) {
    EXPECT_TRUE(torch::equal(t, b.at(k))) << "resume differs: " << k;
    if (k.rfind("ct_encoder.", 0) == 0) encoderMoved = encoderMoved || !torch::equal(t, init.at(k));
  }
  EXPECT_TRUE(encoderMoved) << "--mode full left the encoder unchanged";
  EXPECT_EQ(readJson(D() + "/res_a/finetune.json")["per_label"], readJson(D() + "/res_b/finetune.json")["per_label"]);
  // buildOptimizer made the per-layer rates (no module_lr entries for the encoder). The logged lr is
  // the first group's, that of the encoder's first parameter (the stem, layer 0): lr * 0.5^L with
  // L = 5 for the 3D ResNet-18 (stem, layer1..layer4, then the head) and L = 3 for a 2-block ViT
  // (constant schedule, no warmup).
  const auto resolved =
      biud::config::parse<biud::Config>(biud::config::Document::fromFile(D() + "/res_a/config.resolved.yaml"));
  for (const auto& [prefix, lr] : resolved.optimizer.module_lr)
    EXPECT_EQ(prefix.rfind("ct_encoder", 0), std::string::npos);
  const auto pre = biud::config::parse<biud::Config>(
      biud::config::Document::fromFile(resolved.finetune.run + "/config.resolved.yaml"));
  const double factor = pre.model.ct_encoder.arch == "resnet3d18" ? 1.0 / 32 : 1.0 / 8;
  ASSERT_TRUE(pre.model.ct_encoder.arch == "resnet3d18" || pre.model.ct_encoder.arch == "vit3d")
      << pre.model.ct_encoder.arch;
  std::istringstream jl(biud::fs::readFile(D() + "/res_a/metrics.jsonl"));
  int seen = 0;
  for (std::string line; std::getline(jl, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("lr")) continue;
    EXPECT_NEAR(j["lr"].get<double>(), resolved.optimizer.lr * factor, 1e-12 * resolved.optimizer.lr) << line;
    ++seen;
  }
  EXPECT_GT(seen, 0);
}

TEST_F(EvalApps, EmbedOfAFinetuneRunUsesItsFineTunedEncoder) {
  runOk(app("biud-finetune") + common_ + " --run " + D() +
        "/biud --mode full --set trainer.steps=3 --split val --set "
        "threads=1 --out " +
        D() + "/emb_ft");
  // One CT of the manifest, preprocessed as the pretrained run does (the finetune run's own
  // data.ct may differ: loadRun takes the pretrained run's), also written as a tensor file.
  const auto pre =
      biud::config::parse<biud::Config>(biud::config::Document::fromFile(D() + "/biud/config.resolved.yaml"));
  const auto manifest = biud::image::readManifest(D() + "/data/ct/manifest.csv");
  const auto& nifti = manifest.items.at(0).images.at(0);
  auto vol = biud::image::preprocessCt(biud::image::readVolume(nifti), pre.data.ct);
  auto v = torch::from_blob(vol.data.data(), {1, vol.size[2], vol.size[1], vol.size[0]}, torch::kFloat32).clone();
  biud::tensor::writeSafetensors(D() + "/emb_vol.safetensors", {{"volume", v}});
  runOk(app("biud-embed") + " --run " + D() + "/emb_ft --volumes " + quote(nifti) + " --volumes " + D() +
        "/emb_vol.safetensors --threads 1 --out " + D() + "/emb_out --quiet");
  const auto out = biud::tensor::readSafetensors(D() + "/emb_out/embeddings.safetensors");
  ASSERT_TRUE(out.count("volume_embedding"));
  EXPECT_EQ(out.count("volume_adapted"), 0u);  // no BIUD adapter in a finetune run
  const auto got = out.at("volume_embedding");

  // Reference: the pretrained run's encoder architecture with the finetune checkpoint's ct_encoder.* weights.
  auto encoderFrom = [&](const std::string& checkpoint) {
    biud::NetConfig n = pre.model.ct_encoder;
    n.weights.clear();
    n.frozen = false;
    auto enc = biud::models::makeVisualEncoder(n);
    biud::tensor::LoadOptions lo;
    lo.selectPrefix = "ct_encoder.";
    biud::tensor::loadModule(*enc, checkpoint, lo);
    enc->eval();
    torch::NoGradGuard ng;
    return enc->encode(v.unsqueeze(0)).pooled;
  };
  const auto want = encoderFrom(D() + "/emb_ft/checkpoints/step_000003/model.safetensors");
  ASSERT_EQ(got.sizes().vec(), (std::vector<int64_t>{2, want.size(1)}));
  EXPECT_LT((got[0] - want[0]).abs().max().item<double>(), 1e-5);  // the NIfTI, preprocessed by biud-embed
  EXPECT_LT((got[1] - want[0]).abs().max().item<double>(), 1e-5);  // the same volume as a tensor
  // ... and not the pretrained encoder (--mode full moved it).
  std::string pretrainedCkpt;
  for (const auto& e : std::filesystem::directory_iterator(D() + "/biud/checkpoints"))
    pretrainedCkpt = std::max(pretrainedCkpt, e.path().string());
  const auto before = encoderFrom(pretrainedCkpt + "/model.safetensors");
  EXPECT_GT((want - before).abs().max().item<double>(), 1e-6);
  // Texts need a text encoder: a clear error, not a crash.
  biud::fs::atomicWrite(D() + "/emb_texts.txt", "no pleural effusion\n");
  auto r = biud::test::run(app("biud-embed") + " --run " + D() + "/emb_ft --texts " + D() + "/emb_texts.txt --out " +
                           D() + "/emb_bad --quiet");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("needs a biud or clip2d run"), std::string::npos) << r.out;
}

TEST_F(EvalApps, BadInputFailsWithClearErrors) {
  // A label column that is not in the manifest.
  auto r = biud::test::run(app("biud-finetune") + common_ + " --run " + D() +
                           "/biud --label-columns pleural_effusion --label-columns no_such" +
                           " --set trainer.steps=1 --out " + D() + "/bad1");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("`no_such` is not a label column"), std::string::npos) << r.out;
  // A manifest without label columns.
  const auto m = biud::csv::read(D() + "/data/ct/manifest.csv");
  std::vector<std::string> keep = {"id", "image", "patient", "split", "findings", "impression"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : m.rows) {
    std::vector<std::string> x;
    for (const auto& k : keep) x.push_back(row.at(m.require(k)));
    rows.push_back(x);
  }
  // Image paths are relative to the manifest's folder: write it next to the original.
  const std::string nolab = D() + "/data/ct/nolabels.csv";
  biud::csv::write(nolab, keep, rows);
  r = biud::test::run(app("biud-finetune") + common_ + " --run " + D() + "/biud --manifest " + nolab +
                      " --set trainer.steps=1 --out " + D() + "/bad2");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("has no label columns"), std::string::npos) << r.out;
  // A run folder without a checkpoint (the data folder), for both apps, before any output.
  for (const char* a : {"biud-finetune", "biud-report"}) {
    r = biud::test::run(app(a) + common_ + " --run " + D() + "/data --out " + D() + "/bad3");
    EXPECT_NE(r.rc, 0) << a;
    EXPECT_NE(r.out.find("holds no checkpoint"), std::string::npos) << a << r.out;
    r = biud::test::run(app(a) + common_ + " --run " + D() + "/nonexistent --out " + D() + "/bad3");
    EXPECT_NE(r.rc, 0) << a;
    EXPECT_NE(r.out.find("no such folder"), std::string::npos) << a << r.out;
  }
  EXPECT_FALSE(biud::fs::stdfs::exists(D() + "/bad3"));
}
