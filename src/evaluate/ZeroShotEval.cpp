#include "biud/evaluate/ZeroShotEval.h"

#include <filesystem>

#include <fmt/ranges.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/data/CtDataset.h"
#include "biud/data/TextBatch.h"
#include "biud/data/XraySet.h"
#include "biud/eval/Figures.h"
#include "biud/eval/Protocols.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

ZeroShotScores scoreZeroShot(LoadedRun& run, const image::Manifest& manifest, const std::string& split,
                             const text::PromptSet& prompts, const std::vector<std::string>& findings,
                             const c10::Device& dev, const std::string& cacheDir) {
  torch::NoGradGuard ng;
  ZeroShotScores s;
  auto& model = *run.model;
  torch::Tensor img;
  auto encodeText = [&](const std::vector<std::string>& t) {
    auto tb = data::tokenizeBatch(*run.tokenizer, t, run.cfg.text.max_length);
    return model.encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
  };
  if (model.can(Capability::kXray)) {
    auto set = data::loadXraySet(manifest, split, run.cfg.data, run.cfg.threads);
    std::vector<torch::Tensor> parts;
    for (std::int64_t b = 0; b < set.size(); b += 64)
      parts.push_back(model.encodeXray(set.images.slice(0, b, std::min(set.size(), b + 64)).to(dev)).cpu());
    img = torch::cat(parts);
    s.ids = set.ids;
    s.labels = set.labels;
  } else {
    auto ds = splitDataset(std::make_shared<image::Manifest>(manifest), split, run.cfg.data, cacheDir);
    std::vector<torch::Tensor> parts, labels;
    forEachEvalBatch(
        ds, run.cfg.data.loader,
        [&](data::CtBatch& b) {
          parts.push_back(model.encodeCt(b.volume.to(dev)).ct.cpu());
          labels.push_back(b.labels);
          s.ids.insert(s.ids.end(), b.ids.begin(), b.ids.end());
        },
        "encode " + split);
    img = torch::cat(parts);
    s.labels = torch::cat(labels);
  }
  auto pe = embedPrompts(prompts, findings, encodeText);
  const double tau = model.temperature();
  s.probs = zeroShotProbabilities(img, pe, tau);
  return s;
}

ZeroShotResult runZeroShot(const ZeroShotOptions& opt, const Config& cfg, const c10::Device& dev) {
  BIUD_CHECK(!opt.runs.empty(), ConfigError, "no run to evaluate: pass --run DIR");
  std::vector<std::pair<std::string, LoadedRun>> loaded;
  for (const auto& r : opt.runs) {
    loaded.emplace_back(r.name, loadRun(r.path, dev, cfg.eval.ema));
    const auto& m = *loaded.back().second.model;
    BIUD_CHECK(
        m.can(Capability::kText) && (m.can(Capability::kXray) || m.can(Capability::kCt)), ConfigError,
        "--run `{}` is a {} run; zero-shot classification needs a biud, clip2d or imported CT-CLIP run (image and "
        "text encoders)",
        r.path, m.task());
  }
  auto& first = loaded.front().second;
  ZeroShotResult res;
  const std::string split = opt.split.empty() ? first.cfg.data.test_split : opt.split;
  const std::string prompts = opt.prompts.empty() ? first.cfg.eval.prompts : opt.prompts;
  std::string manifestPath = opt.manifest;
  if (manifestPath.empty())
    manifestPath = first.model->can(Capability::kXray) ? first.cfg.data.xray_manifest : first.cfg.data.manifest;
  const auto manifest = image::readManifest(manifestPath);
  const std::string protocol = opt.protocol.empty() ? cfg.eval.zeroshot_protocol : opt.protocol;
  BIUD_CHECK(!manifest.labelNames.empty(), DataError,
             "`{}` has no label columns: zero-shot classification needs labels", manifestPath);
  const bool ctClip = protocol == "ct-clip";
  // CT-CLIP: one prompt pair per label column, named after the finding the prompt set gives it.
  const auto named = text::PromptSet::load(prompts);
  const auto ps = ctClip ? ctClipPromptSet(manifest.labelNames, &named) : named;
  if (ctClip)
    log::info("zeroshot", "protocol ct-clip: prompts \"{}\" / \"{}\", ...", ps.findings[0].positive[0],
              ps.findings[0].negative[0]);
  const auto pc =
      promptedColumns(manifest.labelNames, ps, fmt::format("`{}`", manifestPath));  // ConfigError listing both sides
  const auto& findings = pc.findings;
  const auto& cols = pc.columns;
  const std::string out = opt.prepareOut ? opt.prepareOut() : std::string(".");

  std::vector<eval::ModelPredictions> models;
  std::vector<std::vector<double>> labels;
  std::vector<std::string> ids;
  std::vector<std::string> failures;
  for (auto& [name, run] : loaded) {
    // CT runs read a cache with the run's own preprocessing: --set data.cache_dir or the run's,
    // else one built now in <out>/cache-<hash>; unreadable CTs are left out and listed.
    const image::Manifest* evaluated = &manifest;
    image::EvalCache ec;
    if (!run.model->can(Capability::kXray)) {
      const std::string given = !cfg.data.cache_dir.empty() ? cfg.data.cache_dir : run.cfg.data.cache_dir;
      ec = image::prepareEvalCache(manifest, {split}, run.cfg.data.ct, given,
                                   (stdfs::path(out) / ("cache-" + image::preprocessHash(run.cfg.data.ct))).string(),
                                   cfg.threads, opt.progress);
      evaluated = &ec.manifest;
      if (failures.empty()) failures = ec.failures;
      BIUD_CHECK(!ec.manifest.items.empty(), DataError, "no CT of split `{}` could be read; see {}/failures.jsonl",
                 split, out);
    }
    auto s = scoreZeroShot(run, *evaluated, split, ps, findings, dev, ec.cacheDir);
    if (ids.empty()) {
      ids = s.ids;
      labels = toRows(s.labels.index_select(1, torch::tensor(cols)));
    }
    BIUD_CHECK(s.ids == ids, DataError, "runs see different cases of split `{}`", split);
    eval::ModelPredictions mp;
    mp.name = name;
    mp.probs = toRows(s.probs);
    writeProbabilities((stdfs::path(out) / (loaded.size() == 1 ? "probabilities.csv"
                                                               : "probabilities_" + eval::safeFileName(name) + ".csv"))
                           .string(),
                       ids, findings, mp.probs);
    models.push_back(std::move(mp));
  }
  eval::ClassificationOptions co;
  co.bootstrap = cfg.eval.bootstrap;
  co.ci = cfg.eval.ci;
  co.seed = static_cast<std::uint64_t>(cfg.seed);
  auto j =
      eval::evaluateModels(models, labels, findings, co, cfg.eval.plots ? (stdfs::path(out) / "plots").string() : "");
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
        log::info("zeroshot",
                  "CT-CLIP protocol, macro: AUROC {:.4f}  F1 (weighted) {:.4f}  accuracy {:.4f}  precision {:.4f}",
                  cc.auroc, cc.f1, cc.accuracy, cc.precision);
      }
      if (j.contains("models") && j["models"].contains(models[m].name))
        j["models"][models[m].name]["ct_clip"] = cc.toJson();
    }
  }
  j["failed"] = failures.size();
  fs::atomicWrite(stdfs::path(out) / "zeroshot.json", j.dump(2));
  {
    std::string fl;
    for (const auto& f : failures) fl += f + "\n";
    fs::atomicWrite(stdfs::path(out) / "failures.jsonl", fl);
  }
  res.json = std::move(j);
  res.findings = findings;
  res.failures = std::move(failures);
  res.out = out;
  res.split = split;
  res.firstName = loaded.front().first;
  res.cases = ids.size();
  return res;
}

}  // namespace biud::evaluate
