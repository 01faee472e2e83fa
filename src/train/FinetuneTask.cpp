// Task `finetune`: multi-label CT classification on top of a pretrained BIUD CT encoder — a
// linear probe (encoder frozen) or full fine-tuning (layer-wise lr decay: buildOptimizer); BCE with per-label
// pos_weight on a stratified, seeded fraction of the training labels; the best validation
// checkpoint is kept and training stops early when validation stops improving.
#include "biud/train/FinetuneTask.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include <fmt/ranges.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/data/CtLoader.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Tasks.h"

namespace biud::train {

namespace F = torch::nn::functional;

std::vector<std::int64_t> labelFractionSubset(const std::vector<std::vector<double>>& labels, double fraction,
                                              std::uint64_t seed) {
  BIUD_CHECK(fraction > 0 && fraction <= 1, ConfigError, "finetune.label_fraction must be in (0, 1], got {}", fraction);
  const auto N = static_cast<std::int64_t>(labels.size());
  std::vector<std::int64_t> all(static_cast<size_t>(N));
  std::iota(all.begin(), all.end(), 0);
  if (fraction >= 1 || N == 0) return all;
  const std::int64_t n =
      std::min<std::int64_t>(N, std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(N))));
  // Own Fisher-Yates on mt19937_64 words (std::shuffle's distribution is implementation-defined,
  // so its permutation could differ between standard libraries).
  std::mt19937_64 eng(seed);
  std::vector<std::int64_t> perm = all;
  for (std::int64_t i = N - 1; i > 0; --i)
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(eng() % static_cast<std::uint64_t>(i + 1))]);
  const size_t L = labels.empty() ? 0 : labels[0].size();
  auto positive = [&](std::int64_t i, size_t l) {
    const double v = labels[static_cast<size_t>(i)][l];
    return !std::isnan(v) && v > 0.5;
  };
  std::vector<std::int64_t> pos(L, 0);
  for (std::int64_t i = 0; i < N; ++i)
    for (size_t l = 0; l < L; ++l) pos[l] += positive(i, l) ? 1 : 0;
  std::vector<size_t> order(L);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pos[a] < pos[b]; });
  std::vector<char> chosen(static_cast<size_t>(N), 0);
  std::int64_t count = 0;
  for (size_t l : order) {
    if (pos[l] == 0) continue;
    const std::int64_t want = std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(pos[l])));
    std::int64_t have = 0;
    for (std::int64_t i = 0; i < N; ++i) have += (chosen[static_cast<size_t>(i)] && positive(i, l)) ? 1 : 0;
    for (std::int64_t i : perm) {
      if (count >= n || have >= want) break;
      if (!chosen[static_cast<size_t>(i)] && positive(i, l)) chosen[static_cast<size_t>(i)] = 1, ++have, ++count;
    }
  }
  for (std::int64_t i : perm) {
    if (count >= n) break;
    if (!chosen[static_cast<size_t>(i)]) chosen[static_cast<size_t>(i)] = 1, ++count;
  }
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < N; ++i)
    if (chosen[static_cast<size_t>(i)]) out.push_back(i);
  return out;
}

torch::Tensor positiveWeights(const torch::Tensor& labels, double maxWeight) {
  auto y = labels.to(torch::kFloat64).cpu();
  auto known = ~torch::isnan(y);
  auto pos = (known & (y > 0.5)).sum(0).to(torch::kFloat64);
  auto neg = (known & (y <= 0.5)).sum(0).to(torch::kFloat64);
  auto w = torch::where((pos > 0) & (neg > 0), neg / pos.clamp_min(1), torch::ones_like(pos));
  return w.clamp(1.0 / maxWeight, maxWeight).to(torch::kFloat32);
}

torch::Tensor maskedBce(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& posWeight) {
  BIUD_CHECK(logits.sizes() == labels.sizes(), ValueError, "maskedBce: logits {} and labels {} differ in shape",
             tensor::shapeStr(logits.sizes()), tensor::shapeStr(labels.sizes()));
  auto y = labels.to(logits.device(), logits.scalar_type());
  auto known = ~torch::isnan(y);
  auto target = torch::where(known, y, torch::zeros_like(y));
  auto opts = F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone);
  if (posWeight.defined()) opts.pos_weight(posWeight.to(logits.device(), logits.scalar_type()));
  auto per = F::binary_cross_entropy_with_logits(logits, target, opts);
  auto k = known.to(logits.scalar_type());
  return (per * k).sum() / k.sum().clamp_min(1.0);
}

namespace {

/// Whether two CT preprocessing configs give the same volumes.
bool samePreprocessing(const CtPreprocessConfig& a, const CtPreprocessConfig& b) {
  return image::preprocessHash(a) == image::preprocessHash(b);
}

/// The model of a finetune task and of its trained run (TaskSpec::make and ::load): the CT
/// encoder `enc` under a head of `labels` outputs.
models::FinetuneModel buildModel(std::shared_ptr<models::VisualEncoderImpl> enc, std::int64_t labels, double dropout) {
  return models::FinetuneModel(std::move(enc), labels, dropout);
}

class FinetuneTaskImpl final : public FinetuneTask {
 public:
  FinetuneTaskImpl(const Config& cfg, const TaskContext& ctx) : cfg_(cfg), ctx_(ctx) {
    const auto& fc = cfg.finetune;
    BIUD_CHECK(!fc.run.empty(), ConfigError,
               "task finetune needs finetune.run: the pretrained BIUD run folder (biud-finetune --run DIR)");
    auto pre = evaluate::loadPretrainedCt(fc.run, ctx.device, cfg.eval.ema);
    pretrained_ = pre.checkpoint;
    data_ = cfg.data;
    if (data_.manifest.empty()) {
      data_.manifest = pre.cfg.data.manifest;
      if (data_.cache_dir.empty()) data_.cache_dir = pre.cfg.data.cache_dir;
    }
    BIUD_CHECK(!data_.manifest.empty(), ConfigError,
               "task finetune needs data.manifest (a CT manifest with label columns)");
    if (!samePreprocessing(data_.ct, pre.cfg.data.ct)) {
      // The encoder was trained on volumes of one grid; feeding another changes its input.
      log::info("finetune", "data.ct set to the pretrained run's preprocessing (the encoder's input grid)");
      data_.ct = pre.cfg.data.ct;
    }
    auto manifest = std::make_shared<image::Manifest>(image::readManifest(data_.manifest));
    BIUD_CHECK(
        !manifest->labelNames.empty(), DataError,
        "manifest `{}` has no label columns: fine-tuning needs one 0/1 column per finding (empty = unknown) next to "
        "id, image, report, split",
        data_.manifest);
    if (fc.labels.empty()) {
      names_ = manifest->labelNames;
      for (size_t j = 0; j < names_.size(); ++j) cols_.push_back(static_cast<std::int64_t>(j));
    } else {
      for (const auto& l : fc.labels) {
        auto it = std::find(manifest->labelNames.begin(), manifest->labelNames.end(), l);
        BIUD_CHECK(
            it != manifest->labelNames.end(), DataError,
            "finetune.labels: column `{}` is not a label column of `{}` (it has: {}); fix the name or the manifest", l,
            data_.manifest, fmt::join(manifest->labelNames, ", "));
        names_.push_back(l);
        cols_.push_back(it - manifest->labelNames.begin());
      }
    }
    manifest_ = manifest;

    // Training subset: the label fraction of the training split, stratified and seeded.
    auto trainIdx = manifest->indicesOf(data_.train_split);
    BIUD_CHECK(!trainIdx.empty(), DataError, "`{}` has no `{}` split to train on", data_.manifest, data_.train_split);
    std::vector<std::vector<double>> trainLabels;
    for (size_t i : trainIdx) {
      std::vector<double> row;
      for (auto c : cols_) row.push_back(manifest->items[i].labels[static_cast<size_t>(c)]);
      trainLabels.push_back(row);
    }
    const auto seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "finetune-subset");
    std::vector<size_t> subset;
    std::vector<std::vector<double>> subsetLabels;
    for (auto k : labelFractionSubset(trainLabels, fc.label_fraction, seed)) {
      subset.push_back(trainIdx[static_cast<size_t>(k)]);
      subsetLabels.push_back(trainLabels[static_cast<size_t>(k)]);
      trainIds_.push_back(manifest->items[subset.back()].id);
    }
    auto subsetTensor = torch::empty(
        {static_cast<std::int64_t>(subset.size()), static_cast<std::int64_t>(cols_.size())}, torch::kFloat64);
    for (size_t i = 0; i < subsetLabels.size(); ++i)
      for (size_t l = 0; l < cols_.size(); ++l)
        subsetTensor[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(l)] = subsetLabels[i][l];
    posWeight_ = fc.pos_weight ? positiveWeights(subsetTensor, fc.max_pos_weight)
                               : torch::ones({static_cast<std::int64_t>(cols_.size())});
    for (size_t l = 0; l < cols_.size(); ++l) {
      const auto p = ((subsetTensor.select(1, static_cast<std::int64_t>(l)) > 0.5)).sum().item<std::int64_t>();
      if (p == 0)
        log::warn("finetune",
                  "label `{}` has no positive case among the {} training cases (label_fraction {}); its head "
                  "learns only negatives",
                  names_[l], subset.size(), fc.label_fraction);
    }
    train_ = std::make_shared<data::CtDataset>(manifest, subset, data_, data_.cache_dir);
    auto valIdx = manifest->indicesOf(data_.val_split);
    if (!valIdx.empty())
      val_ = std::make_shared<data::CtDataset>(manifest, valIdx, data_, data_.cache_dir);
    else
      log::warn("finetune", "`{}` has no `{}` split: no early stopping, the last weights are used", data_.manifest,
                data_.val_split);

    LoaderConfig lc = cfg.data.loader;
    // A small label fraction leaves few cases: the batch shrinks to what one batch can hold —
    // the cases, or with the unique-patient sampler the patients (two CTs of one patient never
    // share a batch).
    std::int64_t fits = train_->size();
    if (lc.sampler == "unique_patient") {
      const auto g = train_->groups();
      fits = static_cast<std::int64_t>(std::set<std::string>(g.begin(), g.end()).size());
    }
    if (lc.batch_size > fits) {
      log::info("finetune", "batch size {} -> {} (the training subset has {} cases of {} patients)", lc.batch_size,
                fits, train_->size(), fits);
      lc.batch_size = static_cast<int>(fits);
    }
    data::CtLoaderOptions lo;
    lo.seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "finetune-loader");
    lo.rank = ctx.rank;
    lo.world = ctx.world;
    loader_ = std::make_unique<data::CtLoader>(train_, lc, lo);
    loader_->setEpoch(0);
    BIUD_CHECK(loader_->batchesPerEpoch() > 0, ConfigError,
               "data.loader.batch_size {} gives no batch of the {} training CTs", lc.batch_size, train_->size());

    linear_ = fc.mode == "linear";
    auto enc = pre.encoder;
    if (linear_) {
      models::freeze(*enc);
    } else {
      for (auto& p : enc->parameters()) p.set_requires_grad(true);
    }
    model_ = buildModel(enc, static_cast<std::int64_t>(cols_.size()), fc.head_dropout);
    model_->to(ctx.device);
    if (ctx.rank == 0 && !ctx.runDir.empty()) writeSubset();
    log::info(
        "finetune", "{} ({}): {} labels, {} of {} training cases (label_fraction {}), pos_weight [{:.2f}], encoder {}",
        linear_ ? "linear probe" : "full fine-tuning", pre.checkpoint, names_.size(), subset.size(), trainIdx.size(),
        fc.label_fraction,
        fmt::join(std::vector<float>(posWeight_.data_ptr<float>(), posWeight_.data_ptr<float>() + posWeight_.numel()),
                  ", "),
        linear_ ? "frozen" : "trained");
  }

  torch::nn::Module& module() override { return *model_; }
  bool done() const override { return stopped_; }

  StepResult trainStep(const StepContext& sc) override {
    StepResult r;
    ++steps_;
    if (stopped_) {
      // Early stopped (the trainer ends the loop at the next validation through done(); a step
      // asked for before that is a no-op: no gradient -> AdamW leaves every weight as it is).
      r.loss = lastLoss_;
      r.metrics["early_stopped"] = 1;
      return r;
    }
    models::trainMode(*model_);  // a linear probe's frozen encoder stays in eval mode
    double total = 0;
    for (int m = 0; m < sc.accum; ++m) {
      auto b = nextBatch();
      auto vol = b.volume.to(ctx_.device);
      torch::Tensor feats;
      if (linear_) {
        torch::NoGradGuard ng;
        feats = model_->features(vol);
      } else {
        feats = model_->features(vol);
      }
      auto logits = model_->classify(feats);
      auto y = b.labels.index_select(1, torch::tensor(cols_));
      // The mean over the known labels of the global batch: ranks know different numbers of them.
      auto loss = dist::GlobalBatch(ctx_.comm).globalMean(maskedBce(logits, y, posWeight_), (~torch::isnan(y)).sum()) /
                  sc.accum;
      sc.setSync(m == sc.accum - 1);
      loss.backward();
      total += loss.item<double>();
      r.samples += b.size();
    }
    r.loss = lastLoss_ = total;
    return r;
  }

  Metrics validate() override {
    if (!val_) return {};
    if (stopped_) return lastVal_;
    auto p = predictOn(val_, "");
    Metrics m;
    {
      auto logit = torch::logit(p.probs.clamp(1e-7, 1 - 1e-7));
      m["loss"] = maskedBce(logit, p.labels, posWeight_).item<double>();
    }
    evaluate::addAurocMetrics(p.probs, p.labels, names_, m);
    double score = cfg_.finetune.monitor == "loss" ? -m["loss"] : m["auroc_macro"];
    if (!std::isfinite(score)) score = -m["loss"];  // no label with both classes in val: fall back to the loss
    if (bestStep_ < 0 || score > bestScore_ + 1e-12) {
      bestScore_ = score;
      bestStep_ = steps_;
      bad_ = 0;
      if (ctx_.rank == 0 && !ctx_.runDir.empty()) {
        fs::makeDirs(stdfs::path(ctx_.runDir) / "best");
        tensor::saveModule(*model_, (stdfs::path(ctx_.runDir) / "best" / "model.safetensors").string(),
                           {{"step", std::to_string(steps_)}, {"monitor", cfg_.finetune.monitor}});
      }
    } else if (++bad_ >= cfg_.finetune.patience && cfg_.finetune.patience > 0) {
      stopped_ = true;
      log::info("finetune", "early stopping at step {}: no improvement of val {} for {} validations (best at step {})",
                steps_, cfg_.finetune.monitor, bad_, bestStep_);
    }
    m["best_step"] = static_cast<double>(bestStep_);
    lastVal_ = m;
    return m;
  }

  nlohmann::json state() const override {
    nlohmann::json j;
    for (auto& [k, v] : loader_->stateDict()) j["loader"][k] = v;
    j["steps"] = steps_;
    j["best_step"] = bestStep_;
    j["best_score"] = bestScore_;
    j["bad_validations"] = bad_;
    j["stopped"] = stopped_;
    j["last_loss"] = lastLoss_;
    return j;
  }
  void loadState(const nlohmann::json& s) override {
    std::map<std::string, std::int64_t> m;
    for (auto it = s.at("loader").begin(); it != s.at("loader").end(); ++it)
      m[it.key()] = it.value().get<std::int64_t>();
    loader_->loadStateDict(m);
    steps_ = s.value("steps", std::int64_t{0});
    bestStep_ = s.value("best_step", std::int64_t{-1});
    bestScore_ = s.value("best_score", 0.0);
    bad_ = s.value("bad_validations", 0);
    stopped_ = s.value("stopped", false);
    lastLoss_ = s.value("last_loss", 0.0);
  }

  const std::vector<std::string>& labelNames() const override { return names_; }
  const std::vector<std::string>& trainIds() const override { return trainIds_; }
  torch::Tensor posWeight() const override { return posWeight_; }
  const std::string& pretrainedCheckpoint() const override { return pretrained_; }
  bool hasValidation() const override { return val_ != nullptr; }

  SplitPredictions predict(const std::string& split) override {
    return predictOn(evaluate::splitDataset(manifest_, split, data_, data_.cache_dir), "predict " + split);
  }

  std::int64_t restoreBest() override {
    const auto path = stdfs::path(ctx_.runDir) / "best" / "model.safetensors";
    if (bestStep_ < 0 || ctx_.runDir.empty() || !stdfs::exists(path)) return -1;
    tensor::loadModule(*model_, path.string());
    model_->to(ctx_.device);
    log::info("finetune", "restored the best validation weights (step {})", bestStep_);
    return bestStep_;
  }

 private:
  SplitPredictions predictOn(const std::shared_ptr<data::CtDataset>& ds, const std::string& label) {
    torch::NoGradGuard ng;
    model_->eval();
    SplitPredictions out;
    std::vector<torch::Tensor> probs, labels;
    evaluate::forEachEvalBatch(
        ds, cfg_.data.loader,
        [&](data::CtBatch& b) {
          probs.push_back(
              torch::sigmoid(model_->classify(model_->features(b.volume.to(ctx_.device)))).to(torch::kFloat32).cpu());
          labels.push_back(b.labels.index_select(1, torch::tensor(cols_)));
          out.ids.insert(out.ids.end(), b.ids.begin(), b.ids.end());
        },
        label);
    out.probs = torch::cat(probs);
    out.labels = torch::cat(labels);
    return out;
  }

  data::CtBatch nextBatch() { return loader_->nextCycling(); }

  void writeSubset() {
    std::vector<std::vector<std::string>> rows;
    for (const auto& id : trainIds_) rows.push_back({id});
    csv::write((stdfs::path(ctx_.runDir) / "train_subset.csv").string(), {"id"}, rows);
  }

  Config cfg_;
  TaskContext ctx_;
  DataConfig data_;
  std::shared_ptr<const image::Manifest> manifest_;
  std::vector<std::string> names_, trainIds_;
  std::vector<std::int64_t> cols_;
  std::string pretrained_;
  torch::Tensor posWeight_;
  std::shared_ptr<data::CtDataset> train_, val_;
  std::unique_ptr<data::CtLoader> loader_;
  models::FinetuneModel model_{nullptr};
  bool linear_ = true, stopped_ = false;
  std::int64_t steps_ = 0, bestStep_ = -1;
  double bestScore_ = 0, lastLoss_ = 0;
  int bad_ = 0;
  Metrics lastVal_;
};

}  // namespace

evaluate::TaskSpec finetuneTaskSpec() {
  evaluate::TaskSpec s;
  s.name = "finetune";
  s.make = factoryOf<FinetuneTaskImpl>();
  s.load = [](evaluate::LoadedRun& r, const c10::Device& device, bool ema) {
    evaluate::adoptPretrainedConfig(r, r.cfg.finetune.run, "finetune.run");
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    // The number of labels is the head's: the label columns came from a manifest that may have changed.
    const auto weights = (std::filesystem::path(r.checkpoint) / "model.safetensors").string();
    const auto tensors = tensor::readSafetensors(weights);
    const auto it = tensors.find("head.weight");
    BIUD_CHECK(it != tensors.end() && it->second.dim() == 2, DataError,
               "`{}` has no 2-D `head.weight`: not the checkpoint of a finetune run", weights);
    auto m = buildModel(models::makeVisualEncoder(r.cfg.model.ct_encoder), it->second.size(0), 0.0);
    evaluate::loadRunWeights(*m, r, device, ema, &tensors);
    return evaluate::finetuneRunModel(m, r.root, "finetune");
  };
  return s;
}

FinetuneTrainer makeFinetuneTrainer(Config& cfg, const std::string& runDir, const c10::Device& device) {
  return makeTrainerWithTask<FinetuneTask, FinetuneTaskImpl>(cfg, runDir, device);
}

}  // namespace biud::train
