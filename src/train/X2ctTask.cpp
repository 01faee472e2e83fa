// X2CT-CLIP (METHOD §6): an X-ray encoder trained against frozen, cached CT and report latents.
#include "biud/train/X2ctTask.h"

#include <filesystem>

#include <fmt/ranges.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"
#include "biud/data/CtDataset.h"
#include "biud/data/CtLoader.h"
#include "biud/data/TextBatch.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Accumulate.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/Tasks.h"

namespace biud::train {

namespace stdfs = std::filesystem;

namespace {

std::string absPath(const std::string& p) { return p.empty() ? p : stdfs::absolute(p).lexically_normal().string(); }

/// The model of an x2ct task and of its trained run (TaskSpec::make and ::load): an X-ray CLIP
/// (model.xray_encoder, a 2D encoder) with the temperature of loss.trimodal.
models::ClipModel buildX2ctModel(const Config& cfg, const text::Tokenizer& tok) {
  models::ClipModel m(models::x2ctModelConfig(cfg), cfg.model.xray_encoder, tok.vocabSize());
  BIUD_CHECK(m->image_encoder->spatialDims() == 2, ConfigError,
             "model.xray_encoder.arch `{}` is not a 2D encoder; use resnet18, resnet50 or vit2d",
             cfg.model.xray_encoder.arch);
  return m;
}

/// The checkpoint folder loadRun() would use for `dir`.
std::string checkpointOf(const std::string& dir) {
  stdfs::path d(dir);
  if (stdfs::exists(d / "state.json")) return absPath(d.string());
  CheckpointManager m(d / "checkpoints", 1);
  auto l = m.latest();
  BIUD_CHECK(l.has_value(), DataError,
             "x2ct.pretrained `{}` holds no checkpoint (expected {}/checkpoints/step_*/): train the biud stage-1 run "
             "first, or point x2ct.pretrained at a run folder",
             dir, dir);
  return absPath(l->string());
}

/// Recall@K of rows of `q` [N, d] against rows of `g` [N, d] (query i's match is gallery i).
double recallAt(const torch::Tensor& q, const torch::Tensor& g, int k) {
  auto sim = torch::matmul(q, g.t());
  auto rank = (sim > sim.diag().unsqueeze(1)).sum(1);
  return (rank < k).to(torch::kFloat64).mean().item<double>();
}

}  // namespace

X2ctTask::X2ctTask(const Config& cfg, const TaskContext& ctx) : cfg_(cfg), ctx_(ctx), loss_(cfg.loss.trimodal) {
  BIUD_CHECK(
      !cfg.x2ct.pretrained.empty(), ConfigError,
      "task x2ct needs x2ct.pretrained: the run folder of the model whose CT and report towers are frozen (a biud "
      "stage-1 run), e.g. --set x2ct.pretrained=runs/quickstart/biud");
  const std::string xm = data::x2ctXrayManifest(cfg);
  BIUD_CHECK(!xm.empty(), ConfigError,
             "task x2ct needs the simulated X-ray manifest written by biud-drr: set x2ct.xray_manifest (or "
             "data.xray_manifest), e.g. --set x2ct.xray_manifest=runs/x2ct/drr/manifest.csv");
  cfg_.x2ct.pretrained = absPath(cfg.x2ct.pretrained);
  const std::string ckpt = checkpointOf(cfg_.x2ct.pretrained);
  const auto pretrainedRoot = stdfs::exists(stdfs::path(cfg_.x2ct.pretrained) / "state.json")
                                  ? stdfs::path(cfg_.x2ct.pretrained).parent_path().parent_path()
                                  : stdfs::path(cfg_.x2ct.pretrained);
  const auto preCfgPath = pretrainedRoot / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(preCfgPath), DataError,
             "x2ct.pretrained `{}` has no config.resolved.yaml: is it a biud run?", pretrainedRoot.string());
  const Config pre = config::parse<Config>(config::Document::fromFile(preCfgPath.string()));
  BIUD_CHECK(pre.task == "biud", ConfigError,
             "x2ct.pretrained `{}` is a `{}` run; the frozen CT and report towers come from a biud stage-1 run",
             pretrainedRoot.string(), pre.task);
  // The report tower is copied: it must be built exactly as in the pretrained run.
  BIUD_CHECK(pre.model.embed_dim == cfg.model.embed_dim, ConfigError,
             "model.embed_dim is {} but the pretrained run `{}` has {}; set model.embed_dim={}", cfg.model.embed_dim,
             pretrainedRoot.string(), pre.model.embed_dim, pre.model.embed_dim);
  tok_ = text::makeTokenizer(cfg.text);
  {
    auto preTok = text::makeTokenizer(pre.text);
    BIUD_CHECK(
        preTok->vocabSize() == tok_->vocabSize(), ConfigError,
        "the tokenizer (text.vocab `{}`, {} tokens) differs from the pretrained run's (`{}`, {} tokens); use the "
        "pretrained run's text settings",
        cfg.text.vocab, tok_->vocabSize(), pre.text.vocab, preTok->vocabSize());
  }

  // Frozen latents: from the cache, or computed once now.
  std::string ctManifest = cfg.data.manifest.empty() ? pre.data.manifest : cfg.data.manifest;
  BIUD_CHECK(!ctManifest.empty(), ConfigError,
             "task x2ct needs data.manifest (the CT manifest paired with the X-rays)");
  ctManifest = absPath(ctManifest);
  cfg_.data.manifest = ctManifest;
  const std::string key =
      fmt::format("checkpoint={}|manifest={}|sections={}", ckpt, ctManifest, fmt::join(pre.data.report_sections, ","));
  const std::string cachePath = data::x2ctLatentPath(cfg, ctx.runDir);
  bool cached = false;
  if (stdfs::exists(cachePath)) {
    latents_ = data::readX2ctLatents(cachePath);
    cached = latents_.key == key;
    if (cached)
      log::info("x2ct", "using {} cached CT/report latents from `{}`", latents_.ids.size(), cachePath);
    else
      log::warn("x2ct", "latent cache `{}` was made from other inputs ({}); recomputing for {}", cachePath,
                latents_.key, key);
  }
  if (!cached) {
    latents_ = {};
    latents_.key = key;
    buildLatents(cachePath);
  }

  // X-rays, each paired with its CT's latent row.
  const auto manifest = image::readManifest(xm);
  train_ = data::loadXraySet(manifest, cfg.data.train_split, cfg.data, cfg.threads);
  if (!manifest.indicesOf(cfg.data.val_split).empty())
    val_ = std::make_unique<data::XraySet>(data::loadXraySet(manifest, cfg.data.val_split, cfg.data, cfg.threads));
  auto rowsOf = [&](const data::XraySet& s) {
    std::vector<std::int64_t> rows;
    std::vector<std::string> missing;
    for (const auto& id : s.ids) {
      rows.push_back(latents_.row(data::x2ctScanId(id)));
      if (rows.back() < 0) missing.push_back(id);
    }
    BIUD_CHECK(
        missing.empty(), DataError,
        "{} X-ray(s) of `{}` have no CT in `{}` (ids must match the CT manifest's; biud-drr keeps them), e.g. {}",
        missing.size(), xm, ctManifest,
        fmt::join(missing.begin(), missing.begin() + std::min<size_t>(5, missing.size()), ", "));
    return rows;
  };
  trainRows_ = rowsOf(train_);
  if (val_) valRows_ = rowsOf(*val_);

  // The model: trainable X-ray tower, frozen report tower copied from the pretrained run.
  model_ = buildX2ctModel(cfg, *tok_);
  {
    auto all = tensor::readSafetensors((stdfs::path(ckpt) / "model.safetensors").string());
    tensor::TensorMap text;
    for (auto& [k, v] : all)
      if (k.rfind("text_encoder.", 0) == 0 || k.rfind("text_proj.", 0) == 0) text[k] = v;
    tensor::LoadOptions lo;
    lo.allowMissing = true;
    tensor::LoadReport rep;
    try {
      rep = tensor::loadStateDict(*model_, text, lo, ckpt + "/model.safetensors");
    } catch (const ValueError& e) {
      BIUD_THROW(
          ConfigError,
          "the report tower of `{}` does not fit model.text_encoder of this config ({}); use the pretrained run's "
          "model.text_encoder settings",
          ckpt, e.what());
    }
    std::int64_t textParams = 0;
    for (auto& np : model_->named_parameters())
      if (np.key().rfind("text_", 0) == 0) ++textParams;
    BIUD_CHECK(static_cast<std::int64_t>(rep.loaded.size()) >= textParams, ConfigError,
               "the pretrained checkpoint `{}` holds {} report-tower tensors, this model needs {} parameters", ckpt,
               rep.loaded.size(), textParams);
    models::freeze(*model_->text_encoder);
    models::freeze(*model_->text_proj);
  }
  model_->to(ctx.device);

  data::SamplerOptions so;
  so.batchSize = cfg.data.loader.batch_size;
  so.shuffle = true;
  so.dropLast = true;  // gathered features need equal batches on every rank
  so.mode = cfg.x2ct.batching == "experiment" ? "unique_patient" : "random";
  so.seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "x2ct-sampler");
  so.rank = ctx.rank;
  so.world = ctx.world;
  // "Experiment" batching: X-rays of one scan (several projections) or one patient never share a
  // batch, so that no negative is a view of the positive's own CT.
  std::vector<std::string> groups;
  for (const auto& g : train_.groups) groups.push_back(data::x2ctScanId(g));  // patient, else the scan
  sampler_ = std::make_unique<data::BatchSampler>(train_.size(), data::groupIds(groups), so);
  startEpoch(0);
  BIUD_CHECK(!batches_.empty(), ConfigError, "data.loader.batch_size {} is larger than the {} training X-rays per rank",
             so.batchSize, train_.size() / ctx.world);
  if (!cfg.eval.prompts.empty() && val_) {
    prompts_ = std::make_unique<text::PromptSet>(text::PromptSet::load(cfg.eval.prompts));
    promptCols_ = evaluate::validationColumns(val_->labelNames, *prompts_, xm);
  }
  log::info(
      "x2ct", "{} training X-rays; frozen towers from {}; loss {:g} L(CT,R) + {:g} L(X,R) + {:g} L(X,CT); batching {}",
      train_.size(), ckpt, cfg.loss.trimodal.alpha, cfg.loss.trimodal.beta, cfg.loss.trimodal.gamma, cfg.x2ct.batching);
}

void X2ctTask::buildLatents(const std::string& path) {
  torch::NoGradGuard ng;
  evaluate::LoadedRun pre = evaluate::loadRun(cfg_.x2ct.pretrained, ctx_.device);
  pre.model->require(evaluate::Capability::kCt);
  pre.model->require(evaluate::Capability::kText);
  auto manifest = std::make_shared<image::Manifest>(image::readManifest(cfg_.data.manifest));
  std::vector<size_t> all(manifest->items.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  BIUD_CHECK(!all.empty(), DataError, "CT manifest `{}` is empty", cfg_.data.manifest);
  // The CTs are preprocessed as in the pretrained run (its data.ct); its cache serves when the
  // manifest is the same.
  DataConfig d = pre.cfg.data;
  d.manifest = cfg_.data.manifest;
  std::string cacheDir = cfg_.data.cache_dir;
  if (cacheDir.empty() && absPath(pre.cfg.data.manifest) == cfg_.data.manifest) cacheDir = pre.cfg.data.cache_dir;
  auto ds = std::make_shared<data::CtDataset>(manifest, all, d, cacheDir);
  auto loader = evaluate::sequentialLoader(ds, d.loader);
  Progress bar("x2ct latents", static_cast<std::uint64_t>(ds->size()), "CT");
  std::vector<torch::Tensor> ct, rep;
  data::CtBatch b;
  while (loader->next(b)) {
    ct.push_back(pre.model->encodeCt(b.volume.to(ctx_.device)).ct.to(torch::kFloat32).cpu());
    ++ctCalls_;
    auto tb = data::tokenizeBatch(*pre.tokenizer, b.texts, pre.cfg.text.max_length);
    rep.push_back(pre.model->encodeText(tb.ids.to(ctx_.device), tb.mask.to(ctx_.device)).to(torch::kFloat32).cpu());
    latents_.ids.insert(latents_.ids.end(), b.ids.begin(), b.ids.end());
    bar.advance(static_cast<std::uint64_t>(b.size()));
  }
  bar.finish();
  latents_.ct = torch::cat(ct);
  latents_.report = torch::cat(rep);
  for (size_t i = 0; i < latents_.ids.size(); ++i) latents_.index[latents_.ids[i]] = static_cast<std::int64_t>(i);
  if (ctx_.rank == 0) {
    fs::makeDirs(stdfs::path(path).parent_path());
    data::writeX2ctLatents(path, latents_);
  }
  log::info("x2ct", "cached the latents of {} CTs and reports in `{}` ({} CT encoder passes)", latents_.ids.size(),
            path, ctCalls_);
  // `pre` (and with it the CT tower) goes out of scope here: training never runs it.
  ctReleased_ = true;
}

torch::Tensor X2ctTask::latentRows(const data::XraySet& s, const std::vector<std::int64_t>& idx) const {
  const auto& rows = &s == &train_ ? trainRows_ : valRows_;
  std::vector<std::int64_t> r;
  r.reserve(idx.size());
  for (auto i : idx) r.push_back(rows[static_cast<size_t>(i)]);
  return torch::tensor(r);
}

StepResult X2ctTask::trainStep(const StepContext& sc) {
  models::trainMode(*model_);  // the frozen report tower stays in eval mode (its latents are cached)
  std::vector<std::vector<std::int64_t>> micro;
  for (int m = 0; m < sc.accum; ++m) micro.push_back(nextBatch());
  auto forward = [&](int m) {
    auto idx = torch::tensor(micro[static_cast<size_t>(m)]);
    auto img = train_.images.index_select(0, idx).to(ctx_.device);
    return Features{{"xray", model_->encodeImage(img)}};
  };
  std::vector<torch::Tensor> rowParts;
  for (auto& b : micro) rowParts.push_back(latentRows(train_, b));
  const auto rows = torch::cat(rowParts);
  losses::LossOutput last;
  auto loss = [&](const std::vector<Features>& all) {
    losses::TrimodalInputs in;
    in.xray = concatFeature(all, "xray");
    in.ct = latents_.ct.index_select(0, rows).to(ctx_.device);
    in.report = latents_.report.index_select(0, rows).to(ctx_.device);
    const dist::GlobalBatch g(ctx_.comm, cfg_.distributed.gather_with_grad);  // dist/GlobalBatch.h
    in.xray_global = g.withGrad(in.xray);
    in.ct_global = g.constant(in.ct);
    in.report_global = g.constant(in.report);
    in.offset = g.offset(in.xray.size(0));
    in.tau = model_->temperature->forward();
    last = loss_(in);
    return std::make_pair(last.total, Metrics{});
  };
  auto r = accumulateWithFeatureCache(sc.accum, forward, loss, sc.setSync);
  return stepResult(r.loss, last, rows.size(0));
}

Metrics X2ctTask::validate() {
  Metrics m;
  if (!val_) return m;
  torch::NoGradGuard ng;
  model_->eval();
  std::vector<torch::Tensor> parts;
  for (std::int64_t b = 0; b < val_->size(); b += 64)
    parts.push_back(
        model_->encodeImage(val_->images.slice(0, b, std::min(val_->size(), b + 64)).to(ctx_.device)).cpu());
  auto x = torch::cat(parts);
  std::vector<std::int64_t> all(static_cast<size_t>(val_->size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  auto rows = latentRows(*val_, all);
  auto rep = latents_.report.index_select(0, rows), ct = latents_.ct.index_select(0, rows);
  for (int k : {1, 5}) {
    m[fmt::format("x2r_recall@{}", k)] = recallAt(x, rep, k);
    m[fmt::format("x2ct_recall@{}", k)] = recallAt(x, ct, k);
  }
  if (prompts_)
    evaluate::addZeroShotAuroc(
        x, val_->labels, *prompts_, promptCols_,
        [&](const std::vector<std::string>& t) {
          auto tb = data::tokenizeBatch(*tok_, t, cfg_.text.max_length);
          return model_->encodeText(tb.ids.to(ctx_.device), tb.mask.to(ctx_.device)).cpu();
        },
        model_->temperature->forward().item<double>(), m);
  return m;
}

nlohmann::json X2ctTask::state() const { return {{"epoch", epoch_}, {"cursor", cursor_}}; }

void X2ctTask::loadState(const nlohmann::json& s) {
  startEpoch(s.at("epoch").get<std::int64_t>());
  cursor_ = s.at("cursor").get<std::size_t>();
}

void X2ctTask::startEpoch(std::int64_t e) {
  epoch_ = e;
  cursor_ = 0;
  batches_ = sampler_->epoch(e);
}

std::vector<std::int64_t> X2ctTask::nextBatch() {
  if (cursor_ >= batches_.size()) startEpoch(epoch_ + 1);
  return batches_[cursor_++];
}

evaluate::TaskSpec x2ctTaskSpec() {
  evaluate::TaskSpec s;
  s.name = "x2ct";
  s.make = factoryOf<X2ctTask>();
  s.load = [](evaluate::LoadedRun& r, const c10::Device& device, bool ema) {
    // An X-ray CLIP: the trained X-ray tower and the frozen report tower.
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    auto m = buildX2ctModel(r.cfg, *r.tokenizer);
    evaluate::loadRunWeights(*m, r, device, ema);
    return evaluate::clipRunModel(m, r.root, "x2ct");
  };
  return s;
}

}  // namespace biud::train
