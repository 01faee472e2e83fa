#include "biud/evaluate/CtEval.h"

#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/data/CtLoader.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/image/Manifest.h"
#include "biud/image/PreprocessJob.h"
#include "biud/train/Checkpoint.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

PretrainedCt loadPretrainedCt(const std::string& runDir, const c10::Device& device, bool ema) {
  BIUD_CHECK(!runDir.empty(), ConfigError,
             "no pretrained run given: pass --run <BIUD run folder> (e.g. runs/quickstart/biud)");
  auto r = loadRun(runDir, device, ema);
  // A CT backbone trained in the shared space (a biud run; finetune and report runs have only
  // the backbone, an imported CT-CLIP only the space).
  BIUD_CHECK(
      r.model->can(Capability::kCtEncoder) && r.model->can(Capability::kCt), DataError,
      "`{}` is a `{}` run; fine-tuning and report generation start from a BIUD run (task biud) with a CT encoder",
      runDir, r.model->task());
  PretrainedCt p;
  p.cfg = r.cfg;
  p.checkpoint = r.checkpoint;
  p.encoder = r.model->ctEncoder();
  p.tokenizer = std::move(r.tokenizer);
  return p;
}

void checkPretrainedRun(const std::string& runDir, const std::string& flag) {
  BIUD_CHECK(!runDir.empty(), ConfigError,
             "no pretrained run given: pass {} <BIUD run folder> (e.g. runs/quickstart/biud)", flag);
  const stdfs::path dir(runDir);
  BIUD_CHECK(stdfs::is_directory(dir), DataError,
             "{} `{}`: no such folder (give a BIUD run folder, e.g. runs/quickstart/biud)", flag, runDir);
  if (stdfs::exists(dir / "state.json") && stdfs::exists(dir / "model.safetensors")) return;
  train::CheckpointManager m(dir / "checkpoints", 1);
  BIUD_CHECK(
      m.latest().has_value(), DataError,
      "{} `{}` holds no checkpoint (expected {}/checkpoints/step_*/ with model.safetensors): train it first with "
      "biud-train --set task=biud, or point at a finished run",
      flag, runDir, runDir);
}

std::shared_ptr<data::CtDataset> splitDataset(std::shared_ptr<const image::Manifest> manifest, const std::string& split,
                                              const DataConfig& data, const std::string& cacheDir) {
  auto idx = manifest->indicesOf(split);
  if (idx.empty()) {
    std::vector<std::string> have;
    for (const auto& it : manifest->items)
      if (std::find(have.begin(), have.end(), it.split) == have.end()) have.push_back(it.split);
    BIUD_THROW(DataError, "`{}` has no `{}` split (splits: {}); set the split column or choose another split",
               manifest->path, split, fmt::join(have, ", "));
  }
  return std::make_shared<data::CtDataset>(manifest, idx, data, cacheDir);
}

size_t useEvalCache(Config& cfg, const std::string& outDir, const std::vector<std::string>& splits) {
  const auto m = image::readManifest(cfg.data.manifest);
  auto e = image::prepareEvalCache(m, splits, cfg.data.ct, cfg.data.cache_dir, (stdfs::path(outDir) / "cache").string(),
                                   cfg.threads);
  cfg.data.cache_dir = e.cacheDir;
  if (e.manifest.items.size() != m.items.size()) {
    // The evaluated manifest holds exactly what the cache serves (the read splits, without the
    // items that failed).
    const auto path = (stdfs::path(outDir) / "manifest.evaluated.csv").string();
    image::writeManifestCsv(path, e.manifest);
    cfg.data.manifest = path;
  }
  std::string fl;
  for (const auto& f : e.failures) fl += f + "\n";
  fs::atomicWrite(stdfs::path(outDir) / "failures.jsonl", fl);
  if (!e.failures.empty())
    log::warn("data", "{} item(s) could not be read and are left out; see {}/failures.jsonl", e.failures.size(),
              outDir);
  return e.failures.size();
}

std::unique_ptr<data::CtLoader> sequentialLoader(const std::shared_ptr<data::CtDataset>& ds,
                                                 const LoaderConfig& loader) {
  LoaderConfig lc = loader;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.sampler = "sequential";
  data::CtLoaderOptions lo;
  lo.augment = false;
  auto l = std::make_unique<data::CtLoader>(ds, lc, lo);
  l->setEpoch(0);
  return l;
}

void forEachEvalBatch(const std::shared_ptr<data::CtDataset>& ds, const LoaderConfig& loader,
                      const std::function<void(data::CtBatch&)>& fn, const std::string& label) {
  auto l = sequentialLoader(ds, loader);
  std::unique_ptr<Progress> bar;
  if (!label.empty()) bar = std::make_unique<Progress>(label, static_cast<std::uint64_t>(ds->size()), "CT");
  data::CtBatch b;
  while (l->next(b)) {
    BIUD_CHECK(!app::stopRequested(), ValueError, "stopped by a signal during {}",
               label.empty() ? "evaluation" : label);
    fn(b);
    if (bar) bar->advance(static_cast<std::uint64_t>(b.size()));
  }
  if (bar) bar->finish();
}

void writeProbabilities(const std::string& path, const std::vector<std::string>& ids,
                        const std::vector<std::string>& findings, const std::vector<std::vector<double>>& probs) {
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < probs.size(); ++i) {
    std::vector<std::string> row{ids.at(i)};
    for (double p : probs[i])
      row.push_back(fmt::format("{:.9g}", p));  // float round trip: AUROCs recomputed from the file equal ours
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"id"};
  header.insert(header.end(), findings.begin(), findings.end());
  csv::write(path, header, rows);
}

std::string classificationTable(const nlohmann::json& j, const std::vector<std::string>& findings) {
  // Only bounds-checked access: nlohmann's const operator[] on a missing key or past the end of an
  // array is undefined behaviour (it crashed biud-finetune when bootstrap = 0 left the CIs empty).
  auto num = [](const nlohmann::json& o, const char* key) {
    return o.is_object() && o.contains(key) && o.at(key).is_number() ? o.at(key).get<double>()
                                                                     : static_cast<double>(NAN);
  };
  auto ciAt = [](const nlohmann::json& o, size_t i) {
    if (!o.is_object() || !o.contains("auroc_ci")) return static_cast<double>(NAN);
    const auto& ci = o.at("auroc_ci");
    return ci.is_array() && ci.size() > i && ci.at(i).is_number() ? ci.at(i).get<double>() : static_cast<double>(NAN);
  };
  std::string table = fmt::format("\n  {:<24} {:>6}  {:>15}  {:>6}  {:>6}\n", "finding", "AUROC", "95% CI", "AP", "F1");
  const bool hasLabels = j.is_object() && j.contains("per_label") && j.at("per_label").is_object();
  for (const auto& f : findings) {
    if (!hasLabels || !j.at("per_label").contains(f)) continue;
    const auto& pl = j.at("per_label").at(f);
    table += fmt::format("  {:<24} {:>6.3f}  [{:>5.3f}, {:>5.3f}]  {:>6.3f}  {:>6.3f}\n", f, num(pl, "auroc"),
                         ciAt(pl, 0), ciAt(pl, 1), num(pl, "ap"), num(pl, "f1"));
  }
  const double macro = j.is_object() && j.contains("macro") ? num(j.at("macro"), "auroc") : NAN;
  table += fmt::format("  {:<24} {:>6.3f}\n", "macro", macro);
  return table;
}

std::vector<std::vector<double>> toRows(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous().cpu();
  std::vector<std::vector<double>> out(static_cast<size_t>(c.size(0)));
  const double* p = c.data_ptr<double>();
  for (std::int64_t i = 0; i < c.size(0); ++i)
    out[static_cast<size_t>(i)].assign(p + i * c.size(1), p + (i + 1) * c.size(1));
  return out;
}

}  // namespace biud::evaluate
