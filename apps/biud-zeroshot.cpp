// biud-zeroshot: prompt-ensemble zero-shot classification of every finding (METHOD §4) with one
// or more trained runs, on the labelled split of a manifest; metrics with bootstrap CIs, per-case
// probabilities, ROC and violin plots.
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "biud/core/App.h"
#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/data/CtDataset.h"
#include "biud/data/CtLoader.h"
#include "biud/eval/Figures.h"
#include "biud/eval/Protocols.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"
#include "biud/tensor/Runtime.h"
#include "biud/text/Prompts.h"
#include "biud/train/TextBatch.h"
#include "biud/train/XraySet.h"

using namespace biud;
namespace stdfs = std::filesystem;

namespace {

struct Scored {
  std::vector<std::string> ids;
  torch::Tensor probs;   // [N, F]
  torch::Tensor labels;  // [N, L] manifest order
};

Scored scoreRun(evaluate::LoadedRun& run, const image::Manifest& manifest, const std::string& split,
                const text::PromptSet& prompts, const std::vector<std::string>& findings, const c10::Device& dev,
                const std::string& cacheDir) {
  torch::NoGradGuard ng;
  Scored s;
  torch::Tensor img;
  auto encodeText = [&](const std::vector<std::string>& t) {
    auto tb = train::tokenizeBatch(*run.tokenizer, t, run.cfg.text.max_length);
    if (run.ctclip) return run.ctclip->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
    return run.clip ? run.clip->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu()
                    : run.biud->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
  };
  if (run.clip) {
    auto set = train::loadXraySet(manifest, split, run.cfg.data, run.cfg.threads);
    std::vector<torch::Tensor> parts;
    for (std::int64_t b = 0; b < set.size(); b += 64)
      parts.push_back(run.clip->encodeImage(set.images.slice(0, b, std::min(set.size(), b + 64)).to(dev)).cpu());
    img = torch::cat(parts);
    s.ids = set.ids;
    s.labels = set.labels;
  } else {
    auto ds = evaluate::splitDataset(std::make_shared<image::Manifest>(manifest), split, run.cfg.data, cacheDir);
    std::vector<torch::Tensor> parts, labels;
    evaluate::forEachEvalBatch(ds, run.cfg.data.loader, [&](data::CtBatch& b) {
      parts.push_back(run.ctclip ? run.ctclip->encodeImage(b.volume.to(dev)).cpu()
                                 : run.biud->encodeCt(b.volume.to(dev)).ct.cpu());
      labels.push_back(b.labels);
      s.ids.insert(s.ids.end(), b.ids.begin(), b.ids.end());
    }, "encode " + split);
    img = torch::cat(parts);
    s.labels = torch::cat(labels);
  }
  auto pe = evaluate::embedPrompts(prompts, findings, encodeText);
  // CT-CLIP multiplies the similarities by exp(temperature): tau = 1 / exp(temperature).
  const double tau = run.ctclip ? 1.0 / run.ctclip->logitScale()
                     : run.clip ? run.clip->temperature->forward().item<double>()
                                : run.biud->temperature->forward().item<double>();
  s.probs = evaluate::zeroShotProbabilities(img, pe, tau);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  app::App app("biud-zeroshot",
               "Zero-shot classification with prompt ensembles: for each finding, p = softmax([<x,e+>, <x,e->]/tau)[0]\n"
               "with e+/e- the averaged embeddings of its positive/negative prompts (eval.prompts). Runs on the\n"
               "labelled split of a manifest (CT for biud runs, X-ray for clip2d runs) and writes <out>/zeroshot.json\n"
               "(per_label.<finding>.auroc|ap|f1|..., macro.*, bootstrap CIs), probabilities.csv and plots/*.png.\n"
               "CTs are read from a cache with the run's preprocessing (data.cache_dir, the run's, or one built in\n"
               "<out>/cache-<hash> on the first call); a CT that cannot be read is left out, listed in\n"
               "<out>/failures.jsonl, and the exit code is 3.");
  app.addCommon(app::kConfig | app::kOut | app::kManifest | app::kThreads | app::kDevice | app::kSeed | app::kWeights);
  std::vector<std::string> runs;
  std::string split, prompts;
  app.cli()
      .add_option("--run", runs,
                  "trained run folder, or one made by biud-import-weights (CT-CLIP: docs/baselines.md); repeatable: NAME=DIR "
                  "compares models side by side, each with its own preprocessing and tokenizer; DeLong vs the first")
      ->required();
  app.cli().add_option("--split", split, "split to evaluate (default: data.test_split of the first run, `test`)");
  app.cli().add_option("--prompts", prompts, "prompt sets YAML (default: eval.prompts of the first run)");
  std::string protocol;
  app.cli()
      .add_option("--protocol", protocol,
                  "biud (prompt ensembles of --prompts) or ct-clip: CT-CLIP's evaluation, one prompt pair per label column\n"
                  "(\"<finding> is present.\" / \"<finding> is not present.\", <finding> = the `name` of the matching prompt\n"
                  "finding, else the column name), plus its threshold rule, weighted F1, accuracy and precision under `ct_clip` in\n"
                  "zeroshot.json (docs/eval.md) (default: eval.zeroshot_protocol)")
      ->check(CLI::IsMember({"biud", "ct-clip"}));
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    std::vector<std::pair<std::string, evaluate::LoadedRun>> loaded;
    for (const auto& r : runs) {
      const auto eq = r.find('=');
      const std::string name = eq == std::string::npos ? stdfs::path(r).filename().string() : r.substr(0, eq);
      loaded.emplace_back(name, evaluate::loadRun(eq == std::string::npos ? r : r.substr(eq + 1), dev, cfg.eval.ema));
      BIUD_CHECK(loaded.back().second.clip || loaded.back().second.biud || loaded.back().second.ctclip, ConfigError,
                 "--run `{}` is a {} run; zero-shot classification needs a biud, clip2d or imported CT-CLIP run (image and "
                 "text encoders)",
                 r, loaded.back().second.cfg.task);
    }
    auto& first = loaded.front().second;
    if (split.empty()) split = first.cfg.data.test_split;
    if (prompts.empty()) prompts = first.cfg.eval.prompts;
    std::string manifestPath = app.manifest();
    if (manifestPath.empty()) manifestPath = first.clip ? first.cfg.data.xray_manifest : first.cfg.data.manifest;
    const auto manifest = image::readManifest(manifestPath);
    if (protocol.empty()) protocol = cfg.eval.zeroshot_protocol;
    BIUD_CHECK(!manifest.labelNames.empty(), DataError, "`{}` has no label columns: zero-shot classification needs labels", manifestPath);
    const bool ctClip = protocol == "ct-clip";
    // CT-CLIP: one prompt pair per label column, named after the finding the prompt set gives it.
    const auto named = text::PromptSet::load(prompts);
    const auto ps = ctClip ? evaluate::ctClipPromptSet(manifest.labelNames, &named) : named;
    if (ctClip)
      log::info("zeroshot", "protocol ct-clip: prompts \"{}\" / \"{}\", ...", ps.findings[0].positive[0], ps.findings[0].negative[0]);
    const auto pc = evaluate::promptedColumns(manifest.labelNames, ps, fmt::format("`{}`", manifestPath));  // ConfigError listing both sides
    const auto& findings = pc.findings;
    const auto& cols = pc.columns;
    const std::string out = app.prepareOutDir("zeroshot");

    std::vector<eval::ModelPredictions> models;
    std::vector<std::vector<double>> labels;
    std::vector<std::string> ids;
    std::vector<std::string> failures;
    for (auto& [name, run] : loaded) {
      // CT runs read a cache with the run's own preprocessing: --set data.cache_dir or the run's,
      // else one built now in <out>/cache-<hash>; unreadable CTs are left out and listed.
      const image::Manifest* evaluated = &manifest;
      image::EvalCache ec;
      if (!run.clip) {
        const std::string given = !cfg.data.cache_dir.empty() ? cfg.data.cache_dir : run.cfg.data.cache_dir;
        ec = image::prepareEvalCache(manifest, {split}, run.cfg.data.ct, given,
                                     (stdfs::path(out) / ("cache-" + image::preprocessHash(run.cfg.data.ct))).string(),
                                     cfg.threads, !app.quiet());
        evaluated = &ec.manifest;
        if (failures.empty()) failures = ec.failures;
        BIUD_CHECK(!ec.manifest.items.empty(), DataError, "no CT of split `{}` could be read; see {}/failures.jsonl",
                   split, out);
      }
      auto s = scoreRun(run, *evaluated, split, ps, findings, dev, ec.cacheDir);
      if (ids.empty()) {
        ids = s.ids;
        labels = evaluate::toRows(s.labels.index_select(1, torch::tensor(cols)));
      }
      BIUD_CHECK(s.ids == ids, DataError, "runs see different cases of split `{}`", split);
      eval::ModelPredictions mp;
      mp.name = name;
      mp.probs = evaluate::toRows(s.probs);
      evaluate::writeProbabilities(
          (stdfs::path(out) / (loaded.size() == 1 ? "probabilities.csv" : "probabilities_" + eval::safeFileName(name) + ".csv")).string(),
          ids, findings, mp.probs);
      models.push_back(std::move(mp));
    }
    eval::ClassificationOptions co;
    co.bootstrap = cfg.eval.bootstrap;
    co.ci = cfg.eval.ci;
    co.seed = static_cast<std::uint64_t>(cfg.seed);
    auto j = eval::evaluateModels(models, labels, findings, co, cfg.eval.plots ? (stdfs::path(out) / "plots").string() : "");
    j["split"] = split;
    j["manifest"] = manifestPath;
    j["prompts"] = prompts;
    j["protocol"] = protocol;
    if (ctClip) {
      for (std::size_t m = 0; m < models.size(); ++m) {
        const auto cc = eval::evaluateCtClip(models[m].probs, labels, findings);
        if (m == 0) {
          for (const auto& w : cc.warnings) log::warn("zeroshot", "{}", w);
          j["ct_clip"] = cc.toJson();
          log::info("zeroshot", "CT-CLIP protocol, macro: AUROC {:.4f}  F1 (weighted) {:.4f}  accuracy {:.4f}  precision {:.4f}", cc.auroc,
                    cc.f1, cc.accuracy, cc.precision);
        }
        if (j.contains("models") && j["models"].contains(models[m].name)) j["models"][models[m].name]["ct_clip"] = cc.toJson();
      }
    }
    j["failed"] = failures.size();
    fs::atomicWrite(stdfs::path(out) / "zeroshot.json", j.dump(2));
    {
      std::string fl;
      for (const auto& f : failures) fl += f + "\n";
      fs::atomicWrite(stdfs::path(out) / "failures.jsonl", fl);
    }

    log::info("zeroshot", "{} cases of split `{}` ({}):{}", ids.size(), split, loaded.front().first,
              evaluate::classificationTable(j, findings));
    log::info("zeroshot", "wrote {}/zeroshot.json", out);
    if (!failures.empty()) {
      log::warn("zeroshot", "{} CT(s) of split `{}` could not be read and were left out; see {}/failures.jsonl",
                failures.size(), split, out);
      return app::kExitPartial;
    }
    return app::kExitOk;
  });
}
