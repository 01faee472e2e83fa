// Task `report`: report generation from CT volumes. The CT tokens of a pretrained BIUD encoder
// are the decoder's memory; training is teacher forcing (next-token cross-entropy on the
// manifest's reports), generation is beam search with the decoder's KV cache.
#include "biud/train/ReportTask.h"

#include <algorithm>
#include <cmath>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/data/CtLoader.h"
#include "biud/data/TextBatch.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/eval/Clinical.h"
#include "biud/eval/Nlg.h"
#include "biud/eval/Protocols.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/models/Registry.h"
#include "biud/train/Tasks.h"

namespace biud::train {

namespace F = torch::nn::functional;

ReportScores scoreReports(const std::vector<std::string>& generated, const std::vector<std::string>& references,
                          const text::EntityExtractor& extractor, const std::string& nlgProtocol) {
  BIUD_CHECK(generated.size() == references.size(), ValueError, "{} generated reports but {} references",
             generated.size(), references.size());
  ReportScores s;
  std::vector<std::vector<std::string>> refs;
  for (const auto& r : references) refs.push_back({r});
  const auto nlg = eval::evaluateNlgProtocol(nlgProtocol, generated, refs);
  std::vector<std::string> findings;
  for (const auto& f : extractor.lexicon().findings) findings.push_back(f.id);
  auto present = [&](const std::string& t) {
    std::set<std::string> out;
    const auto l = extractor.extract(t);
    for (size_t f = 0; f < l.status.size(); ++f)
      if (l.status[f] == text::FindingStatus::Present || l.status[f] == text::FindingStatus::Uncertain)
        out.insert(findings[f]);
    return out;
  };
  for (size_t i = 0; i < generated.size(); ++i) {
    s.generatedFindings.push_back(present(generated[i]));
    s.referenceFindings.push_back(present(references[i]));
  }
  const auto ce = eval::clinicalEfficacy(s.generatedFindings, s.referenceFindings, findings);
  s.json["nlg"] = nlg.toJson();
  s.json["nlg"]["protocol"] = nlgProtocol;
  s.json["clinical"] = ce.toJson();
  // Chance level: the same generated reports against other cases' references (cyclic shifts
  // 1..K of the reference list). A decoder that ignores the CT scores the same either way.
  const size_t n = generated.size(), shifts = std::min<size_t>(n > 0 ? n - 1 : 0, kChanceShifts);
  if (shifts > 0) {
    double sum = 0;
    for (size_t k = 1; k <= shifts; ++k) {
      std::vector<std::set<std::string>> shifted(n);
      for (size_t i = 0; i < n; ++i) shifted[i] = s.referenceFindings[(i + k) % n];
      sum += eval::clinicalEfficacy(s.generatedFindings, shifted, findings).microF1;
    }
    s.json["clinical"]["chance_micro_f1"] = sum / static_cast<double>(shifts);
  } else {
    s.json["clinical"]["chance_micro_f1"] = nullptr;
  }
  s.json["n"] = generated.size();
  return s;
}

namespace {

/// The model of a report task and of its trained run (TaskSpec::make and ::load): a decoder
/// (model.decoder) over the CT encoder `enc`, with the tokenizer's vocabulary and special ids.
models::ReportModel buildModel(const Config& cfg, std::shared_ptr<models::VisualEncoderImpl> enc,
                               const text::Tokenizer& tok) {
  const auto sp = tok.specialIds();
  auto dec = models::makeReportDecoder(cfg.model.decoder, enc->dim(), tok.vocabSize(),
                                       models::DecoderSpecialIds{sp.cls, sp.sep, sp.pad});
  return models::ReportModel(std::move(enc), std::move(dec));
}

class ReportTaskImpl final : public ReportTask {
 public:
  ReportTaskImpl(const Config& cfg, const TaskContext& ctx) : cfg_(cfg), ctx_(ctx) {
    const auto& rc = cfg.report;
    BIUD_CHECK(!rc.run.empty(), ConfigError,
               "task report needs report.run: the pretrained BIUD run folder (biud-report --run DIR)");
    frozen_ = rc.freeze_encoder;
    auto pre = evaluate::loadPretrainedCt(rc.run, ctx.device, cfg.eval.ema);
    pretrained_ = pre.checkpoint;
    tok_ = std::move(pre.tokenizer);
    extractor_ = std::make_unique<text::EntityExtractor>(text::Lexicon::load(cfg.text.lexicon));
    data_ = cfg.data;
    if (data_.manifest.empty()) {
      data_.manifest = pre.cfg.data.manifest;
      if (data_.cache_dir.empty()) data_.cache_dir = pre.cfg.data.cache_dir;
    }
    BIUD_CHECK(!data_.manifest.empty(), ConfigError, "task report needs data.manifest (CT volumes with reports)");
    if (image::preprocessHash(data_.ct) != image::preprocessHash(pre.cfg.data.ct)) {
      log::info("report", "data.ct set to the pretrained run's preprocessing (the encoder's input grid)");
      data_.ct = pre.cfg.data.ct;
    }
    maxLength_ = std::min(cfg.text.max_length, pre.cfg.text.max_length);
    manifest_ = std::make_shared<image::Manifest>(image::readManifest(data_.manifest));
    train_ = evaluate::splitDataset(manifest_, data_.train_split, data_, data_.cache_dir);
    for (std::int64_t i = 0; i < train_->size(); ++i)
      BIUD_CHECK(
          !train_->item(i).text(data_.report_sections).empty(), DataError,
          "`{}` line {}: case `{}` has no report text in data.report_sections; report generation trains on reports",
          data_.manifest, train_->item(i).line, train_->item(i).id);
    if (!manifest_->indicesOf(data_.val_split).empty())
      val_ = evaluate::splitDataset(manifest_, data_.val_split, data_, data_.cache_dir);

    const auto sp = tok_->specialIds();
    BIUD_CHECK(
        sp.cls >= 0 && sp.sep >= 0 && sp.pad >= 0, ConfigError,
        "the tokenizer of `{}` has no [CLS]/[SEP]/[PAD] (got {}/{}/{}); the decoder uses them as BOS/EOS/padding",
        rc.run, sp.cls, sp.sep, sp.pad);
    auto enc = pre.encoder;
    if (!frozen_)
      for (auto& p : enc->parameters()) p.set_requires_grad(true);
    model_ = buildModel(cfg, enc, *tok_);
    const auto maxLen = model_->decoder->opt.max_len;
    BIUD_CHECK(maxLength_ <= maxLen && cfg.eval.max_new_tokens < maxLen, ConfigError,
               "model.decoder.max_len {} is shorter than text.max_length {} or eval.max_new_tokens {} + 1", maxLen,
               maxLength_, cfg.eval.max_new_tokens);
    model_->to(ctx.device);

    LoaderConfig lc = cfg.data.loader;
    if (lc.batch_size > train_->size()) lc.batch_size = static_cast<int>(train_->size());
    data::CtLoaderOptions lo;
    lo.seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "report-loader");
    lo.rank = ctx.rank;
    lo.world = ctx.world;
    loader_ = std::make_unique<data::CtLoader>(train_, lc, lo);
    loader_->setEpoch(0);
    log::info("report", "decoder dim {} depth {} on {} CT tokens of width {} ({}); {} training reports, max {} tokens",
              model_->decoder->opt.dim, model_->decoder->opt.depth, "the pretrained encoder", enc->dim(),
              frozen_ ? "frozen" : "fine-tuned", train_->size(), maxLength_);
  }

  torch::nn::Module& module() override { return *model_; }

  StepResult trainStep(const StepContext& sc) override {
    models::trainMode(*model_);  // a frozen CT encoder stays in eval mode
    StepResult r;
    double total = 0, tokens = 0, correct = 0;
    for (int m = 0; m < sc.accum; ++m) {
      auto b = nextBatch();
      auto [mean, n, ok] = tokenLoss(b, true);
      // The mean over the global batch's tokens: ranks' reports differ in length.
      auto loss = dist::GlobalBatch(ctx_.comm).globalMean(mean, n);
      sc.setSync(m == sc.accum - 1);
      (loss / sc.accum).backward();
      total += loss.item<double>() / sc.accum;
      tokens += n, correct += ok;
      r.samples += b.size();
    }
    r.loss = total;
    r.metrics["token_accuracy"] = tokens > 0 ? correct / tokens : 0.0;
    return r;
  }

  Metrics validate() override {
    Metrics m;
    if (!val_) return m;
    torch::NoGradGuard ng;
    model_->eval();
    double sum = 0, tokens = 0, correct = 0;
    evaluate::forEachEvalBatch(val_, cfg_.data.loader, [&](data::CtBatch& b) {
      auto [loss, n, ok] = tokenLoss(b, false);
      sum += loss.item<double>() * n;
      tokens += n, correct += ok;
    });
    m["loss"] = tokens > 0 ? sum / tokens : NAN;
    m["perplexity"] = std::exp(m["loss"]);
    m["token_accuracy"] = tokens > 0 ? correct / tokens : NAN;
    if (cfg_.report.val_reports > 0) {
      GenerateOptions go;
      go.beams = 1;
      go.maxNewTokens = cfg_.eval.max_new_tokens;
      go.limit = cfg_.report.val_reports;
      auto g = generateOn(val_, go, "");
      auto s = scoreReports(g.generated, g.references, *extractor_, cfg_.eval.nlg_protocol);
      m["bleu4"] = s.json["nlg"]["bleu4"].get<double>();
      m["clinical_f1"] = s.json["clinical"]["micro"]["f1"].get<double>();
    }
    return m;
  }

  nlohmann::json state() const override {
    nlohmann::json j;
    for (auto& [k, v] : loader_->stateDict()) j["loader"][k] = v;
    return j;
  }
  void loadState(const nlohmann::json& s) override {
    std::map<std::string, std::int64_t> m;
    for (auto it = s.at("loader").begin(); it != s.at("loader").end(); ++it)
      m[it.key()] = it.value().get<std::int64_t>();
    loader_->loadStateDict(m);
  }

  GeneratedReports generate(const std::string& split, const GenerateOptions& options) override {
    return generateOn(evaluate::splitDataset(manifest_, split, data_, data_.cache_dir), options, "generate " + split);
  }
  const std::string& pretrainedCheckpoint() const override { return pretrained_; }
  const text::EntityExtractor& extractor() const override { return *extractor_; }

 private:
  torch::Tensor memory(const torch::Tensor& volume) {
    if (frozen_) {
      torch::NoGradGuard ng;
      return model_->ct_encoder->encode(volume.to(ctx_.device)).tokens;
    }
    return model_->ct_encoder->encode(volume.to(ctx_.device)).tokens;
  }

  /// Mean next-token cross-entropy over the real tokens of a batch, their number and how many
  /// were predicted right (argmax).
  std::tuple<torch::Tensor, double, double> tokenLoss(const data::CtBatch& b, bool smoothing) {
    auto tb = data::tokenizeBatch(*tok_, b.texts, maxLength_);
    auto ids = tb.ids.to(ctx_.device), mask = tb.mask.to(ctx_.device);
    const auto T = ids.size(1);
    auto input = ids.narrow(1, 0, T - 1), target = ids.narrow(1, 1, T - 1);
    auto keep = mask.narrow(1, 1, T - 1) > 0;
    target = torch::where(keep, target, torch::full_like(target, -100));
    auto logits = model_->decoder->forward(input, memory(b.volume), {}, mask.narrow(1, 0, T - 1));
    const auto V = logits.size(-1);
    auto loss = F::cross_entropy(
        logits.reshape({-1, V}).to(torch::kFloat32), target.reshape({-1}),
        F::CrossEntropyFuncOptions().ignore_index(-100).label_smoothing(smoothing ? cfg_.report.label_smoothing : 0.0));
    const double n = keep.sum().item<double>();
    const double ok = ((logits.argmax(-1) == target) & keep).sum().item<double>();
    return {loss, n, ok};
  }

  GeneratedReports generateOn(const std::shared_ptr<data::CtDataset>& ds, const GenerateOptions& o,
                              const std::string& label) {
    torch::NoGradGuard ng;
    model_->eval();
    GeneratedReports out;
    std::int64_t n = 0;
    const std::int64_t limit = o.limit > 0 ? std::min<std::int64_t>(o.limit, ds->size()) : ds->size();
    LoaderConfig lc = cfg_.data.loader;
    std::shared_ptr<data::CtDataset> use = ds;
    if (limit < ds->size()) {
      std::vector<size_t> idx;
      for (std::int64_t i = 0; i < limit; ++i) idx.push_back(static_cast<size_t>(manifest_->find(ds->item(i).id)));
      use = std::make_shared<data::CtDataset>(manifest_, idx, data_, data_.cache_dir);
    }
    evaluate::forEachEvalBatch(
        use, lc,
        [&](data::CtBatch& b) {
          auto mem = memory(b.volume);
          auto g = o.beams <= 1 ? model_->decoder->greedy(mem, {}, o.maxNewTokens)
                                : model_->decoder->beamSearch(mem, {}, o.beams, o.lengthPenalty, o.maxNewTokens);
          const auto eos = model_->decoder->opt.eos_id;
          for (std::int64_t i = 0; i < b.size(); ++i) {
            std::vector<int> toks;
            for (auto t : g.tokens[static_cast<size_t>(i)]) {
              if (t == eos) break;
              toks.push_back(static_cast<int>(t));
            }
            out.ids.push_back(b.ids[static_cast<size_t>(i)]);
            out.references.push_back(b.texts[static_cast<size_t>(i)]);
            out.generated.push_back(tok_->decode(toks, /*skipSpecial=*/true));
            ++n;
          }
        },
        label);
    return out;
  }

  data::CtBatch nextBatch() { return loader_->nextCycling(); }

  Config cfg_;
  TaskContext ctx_;
  DataConfig data_;
  bool frozen_ = true;
  int maxLength_ = 128;
  std::string pretrained_;
  std::unique_ptr<text::Tokenizer> tok_;
  std::unique_ptr<text::EntityExtractor> extractor_;
  std::shared_ptr<image::Manifest> manifest_;
  std::shared_ptr<data::CtDataset> train_, val_;
  std::unique_ptr<data::CtLoader> loader_;
  models::ReportModel model_{nullptr};
};

}  // namespace

evaluate::TaskSpec reportTaskSpec() {
  evaluate::TaskSpec s;
  s.name = "report";
  s.make = factoryOf<ReportTaskImpl>();
  s.load = [](evaluate::LoadedRun& r, const c10::Device& device, bool ema) {
    evaluate::adoptPretrainedConfig(r, r.cfg.report.run, "report.run");
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    auto m = buildModel(r.cfg, models::makeVisualEncoder(r.cfg.model.ct_encoder), *r.tokenizer);
    evaluate::loadRunWeights(*m, r, device, ema);
    return evaluate::reportRunModel(m, r.root, "report");
  };
  return s;
}

ReportTrainer makeReportTrainer(Config& cfg, const std::string& runDir, const c10::Device& device) {
  return makeTrainerWithTask<ReportTask, ReportTaskImpl>(cfg, runDir, device);
}

}  // namespace biud::train
