// Stage 0: the X-ray expert, CLIP on X-ray/report pairs (METHOD §1).
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/data/Sampler.h"
#include "biud/data/TextBatch.h"
#include "biud/data/TextCache.h"
#include "biud/data/XraySet.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/losses/ClipLoss.h"
#include "biud/models/MethodModels.h"
#include "biud/models/Registry.h"
#include "biud/text/Prompts.h"
#include "biud/train/Accumulate.h"
#include "biud/train/Tasks.h"

namespace biud::train {

namespace {

/// The model of a clip2d task and of its trained run (TaskSpec::make and ::load).
models::ClipModel buildModel(const Config& cfg, const text::Tokenizer& tok) {
  return models::ClipModel(cfg, cfg.model.xray_encoder, tok.vocabSize());
}

class Clip2dTask final : public Task {
 public:
  Clip2dTask(const Config& cfg, const TaskContext& ctx) : cfg_(cfg), ctx_(ctx) {
    BIUD_CHECK(!cfg.data.xray_manifest.empty(), ConfigError,
               "task clip2d needs data.xray_manifest (the X-ray/report corpus), e.g. --set "
               "data.xray_manifest=runs/quickstart/data/cxr/manifest.csv");
    tok_ = text::makeTokenizer(cfg.text);
    auto manifest = image::readManifest(cfg.data.xray_manifest);
    train_ = data::loadXraySet(manifest, cfg.data.train_split, cfg.data, cfg.threads);
    if (!manifest.indicesOf(cfg.data.val_split).empty())
      val_ = std::make_unique<data::XraySet>(data::loadXraySet(manifest, cfg.data.val_split, cfg.data, cfg.threads));
    model_ = buildModel(cfg, *tok_);
    model_->to(ctx.device);
    data::SamplerOptions so;
    so.batchSize = cfg.data.loader.batch_size;
    so.shuffle = cfg.data.loader.shuffle;
    so.dropLast = true;  // gathered features need equal batches on every rank
    so.mode = cfg.data.loader.sampler;
    so.seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "clip2d-sampler");
    so.rank = ctx.rank;
    so.world = ctx.world;
    std::vector<std::int64_t> groups = groupIds(train_.groups);
    sampler_ = std::make_unique<data::BatchSampler>(train_.size(), groups, so);
    startEpoch(0);
    BIUD_CHECK(!batches_.empty(), ConfigError,
               "data.loader.batch_size {} is larger than the {} training X-rays per rank", so.batchSize,
               train_.size() / ctx.world);
    if (!cfg.eval.prompts.empty() && val_) {
      prompts_ = std::make_unique<text::PromptSet>(text::PromptSet::load(cfg.eval.prompts));
      promptCols_ = evaluate::validationColumns(val_->labelNames, *prompts_, cfg.data.xray_manifest);
    }
    if (cfg.model.text_encoder.frozen) {
      // A frozen report encoder: encode every training report once (TextCache.h).
      textCache_ = data::makeFrozenTextFeatures(cfg, model_->text_encoder, *tok_, ctx.device, ctx.rank == 0);
      textCache_->precompute(train_.texts, "frozen text features");
    }
  }

  torch::nn::Module& module() override { return *model_; }

  StepResult trainStep(const StepContext& sc) override {
    models::trainMode(*model_);  // a frozen report encoder stays in eval mode
    std::vector<std::vector<std::int64_t>> micro;
    for (int m = 0; m < sc.accum; ++m) micro.push_back(nextBatch());
    std::vector<data::TextBatch> text;
    if (!textCache_)
      for (auto& b : micro) text.push_back(data::tokenizeBatch(*tok_, gather(train_.texts, b), cfg_.text.max_length));
    auto forward = [&](int m) {
      const auto& b = micro[static_cast<size_t>(m)];
      auto img = train_.images.index_select(0, torch::tensor(b)).to(ctx_.device);
      torch::Tensor txt;
      if (textCache_) {
        txt = model_->text_proj->forward(textCache_->get(gather(train_.texts, b)));
      } else {
        const auto& t = text[static_cast<size_t>(m)];
        txt = model_->encodeText(t.ids.to(ctx_.device), t.mask.to(ctx_.device));
      }
      return Features{{"image", model_->encodeImage(img)}, {"text", txt}};
    };
    losses::LossOutput last;
    auto loss = [&](const std::vector<Features>& all) {
      losses::ContrastivePair p;
      p.a = concatFeature(all, "image");
      p.b = concatFeature(all, "text");
      const dist::GlobalBatch g(ctx_.comm, cfg_.distributed.gather_with_grad);  // dist/GlobalBatch.h
      p.a_global = g.withGrad(p.a);
      p.b_global = g.withGrad(p.b);
      p.offset = g.offset(p.a.size(0));
      last = losses::clipLoss(p, model_->temperature->forward());
      return std::make_pair(last.total, Metrics{});
    };
    auto r = accumulateWithFeatureCache(sc.accum, forward, loss, sc.setSync);
    std::int64_t n = 0;
    for (auto& b : micro) n += static_cast<std::int64_t>(b.size());
    return stepResult(r.loss, last, n);
  }

  Metrics validate() override {
    Metrics m;
    if (!val_ || !prompts_) return m;
    torch::NoGradGuard ng;
    model_->eval();
    auto img = embedImages(*val_);
    if (promptCols_.findings.empty()) return m;
    evaluate::addZeroShotAuroc(
        img, val_->labels, *prompts_, promptCols_, [&](const std::vector<std::string>& t) { return embedTexts(t); },
        model_->temperature->forward().item<double>(), m);
    // Report -> image retrieval on the validation split: recall@1 and @5.
    auto txt = embedTexts(val_->texts);
    auto sim = torch::matmul(txt, img.t());
    auto rank = (sim > sim.diag().unsqueeze(1)).sum(1);
    m["t2i_recall@1"] = (rank < 1).to(torch::kFloat64).mean().item<double>();
    m["t2i_recall@5"] = (rank < 5).to(torch::kFloat64).mean().item<double>();
    return m;
  }

  nlohmann::json state() const override { return {{"epoch", epoch_}, {"cursor", cursor_}}; }
  void loadState(const nlohmann::json& s) override {
    startEpoch(s.at("epoch").get<std::int64_t>());
    cursor_ = s.at("cursor").get<std::size_t>();
  }

 private:
  static std::vector<std::int64_t> groupIds(const std::vector<std::string>& groups) {
    std::map<std::string, std::int64_t> ids;
    std::vector<std::int64_t> out;
    for (auto& g : groups) out.push_back(ids.emplace(g, static_cast<std::int64_t>(ids.size())).first->second);
    return out;
  }
  static std::vector<std::string> gather(const std::vector<std::string>& v, const std::vector<std::int64_t>& idx) {
    std::vector<std::string> out;
    for (auto i : idx) out.push_back(v[static_cast<size_t>(i)]);
    return out;
  }
  void startEpoch(std::int64_t e) {
    epoch_ = e;
    cursor_ = 0;
    batches_ = sampler_->epoch(e);
  }
  std::vector<std::int64_t> nextBatch() {
    if (cursor_ >= batches_.size()) startEpoch(epoch_ + 1);
    return batches_[cursor_++];
  }
  torch::Tensor embedImages(const data::XraySet& s) {
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < s.size(); b += 64)
      out.push_back(model_->encodeImage(s.images.slice(0, b, std::min(s.size(), b + 64)).to(ctx_.device)).cpu());
    return torch::cat(out);
  }
  torch::Tensor embedTexts(const std::vector<std::string>& texts) {
    // A frozen report encoder: the validation reports and prompts are encoded once, at the first
    // validation, and kept with the training reports' features (in memory: the cache file holds
    // what precompute() wrote). Only the projection head runs at every validation.
    if (textCache_) return model_->text_proj->forward(textCache_->get(texts)).cpu();
    std::vector<torch::Tensor> out;
    for (size_t b = 0; b < texts.size(); b += 64) {
      std::vector<std::string> part(texts.begin() + static_cast<long>(b),
                                    texts.begin() + static_cast<long>(std::min(texts.size(), b + 64)));
      auto t = data::tokenizeBatch(*tok_, part, cfg_.text.max_length);
      out.push_back(model_->encodeText(t.ids.to(ctx_.device), t.mask.to(ctx_.device)).cpu());
    }
    return torch::cat(out);
  }

  Config cfg_;
  TaskContext ctx_;
  std::unique_ptr<text::Tokenizer> tok_;
  data::XraySet train_;
  std::unique_ptr<data::XraySet> val_;
  std::unique_ptr<text::PromptSet> prompts_;
  evaluate::PromptedColumns promptCols_;  ///< validation label columns with prompts (checked at construction)
  std::unique_ptr<data::FrozenTextFeatures> textCache_;  ///< frozen text encoder: features per report
  models::ClipModel model_{nullptr};
  std::unique_ptr<data::BatchSampler> sampler_;
  std::vector<std::vector<std::int64_t>> batches_;
  std::int64_t epoch_ = 0;
  std::size_t cursor_ = 0;
};

}  // namespace

evaluate::TaskSpec clip2dTaskSpec() {
  evaluate::TaskSpec s;
  s.name = "clip2d";
  s.make = factoryOf<Clip2dTask>();
  s.load = [](evaluate::LoadedRun& r, const c10::Device& device, bool ema) {
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    auto m = buildModel(r.cfg, *r.tokenizer);
    evaluate::loadRunWeights(*m, r, device, ema);
    return evaluate::clipRunModel(m, r.root, "clip2d");
  };
  return s;
}

}  // namespace biud::train
