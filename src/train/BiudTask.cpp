// Stage 1: BIUD pretraining of the CT encoder (METHOD §3): RoCo + pairwise and semantic relation
// distillation from the frozen X-ray expert + entity-focused masked language modelling.
#include <filesystem>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/data/CtDataset.h"
#include "biud/data/CtLoader.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/data/TextBatch.h"
#include "biud/data/TextCache.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/evaluate/Teacher.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/losses/BiudLoss.h"
#include "biud/losses/EfmLoss.h"
#include "biud/models/MethodModels.h"
#include "biud/models/Registry.h"
#include "biud/text/Prompts.h"
#include "biud/train/Accumulate.h"
#include "biud/train/Tasks.h"

namespace biud::train {

namespace {

/// One micro-batch with everything its passes need (drawn once, used by both passes).
struct Micro {
  data::CtBatch ct;
  data::TextBatch text;
  torch::Tensor hStar, reportEmb, findings;  ///< teacher h*, teacher report embeddings, finding matrix
  torch::Tensor trueFindings;  ///< [B, L] the data set's labels (1/0, -1 = row unknown) for RoCo's FN precision/recall
  losses::EfmMasked efm;
};

/// The model of a biud task and of its trained run (TaskSpec::make and ::load); `teacherDim`:
/// the width of the teacher features h* (the distillation adapter's output).
models::BiudModel buildModel(const Config& cfg, const text::Tokenizer& tok, std::int64_t teacherDim) {
  return models::BiudModel(cfg, tok.vocabSize(), teacherDim);
}

/// model.text_init = teacher: the text encoder starts from the teacher run's `text_encoder.` weights.
Config withTextInit(const Config& cfg) {
  if (cfg.model.text_init != "teacher") return cfg;
  BIUD_CHECK(!cfg.model.teacher.empty(), ConfigError,
             "model.text_init = teacher needs model.teacher (the clip2d run folder of the X-ray expert)");
  BIUD_CHECK(
      cfg.model.text_encoder.weights.empty(), ConfigError,
      "model.text_init = teacher and model.text_encoder.weights = `{}` both initialise the text encoder: keep one",
      cfg.model.text_encoder.weights);
  Config c = cfg;
  c.model.text_encoder.weights = cfg.model.teacher;
  c.model.text_encoder.weights_prefix = "text_encoder.";
  return c;
}

class BiudTask final : public Task {
 public:
  BiudTask(const Config& cfg, const TaskContext& ctx)
      : cfg_(cfg), ctx_(ctx), loss_(cfg.loss), lossNoEfm_(withoutEfm(cfg.loss)) {
    BIUD_CHECK(!cfg.data.manifest.empty(), ConfigError, "task biud needs data.manifest (the CT/report manifest)");
    BIUD_CHECK(
        !cfg.data.pairing.empty(), ConfigError,
        "task biud needs data.pairing: the pairing.csv written by biud-retrieve (run it after the clip2d teacher)");
    tok_ = text::makeTokenizer(cfg.text);
    extractor_ = std::make_unique<text::EntityExtractor>(text::Lexicon::load(cfg.text.lexicon));
    const auto tfPath = data::teacherFeaturesPath(cfg.data.pairing);
    teacher_ = data::TeacherFeatures::load(tfPath);
    teacher_.requireTopK(cfg.data.pairing_top_k, tfPath);
    auto manifest = std::make_shared<image::Manifest>(image::readManifest(cfg.data.manifest));
    manifestLabels_ = manifest->labelNames;
    checkTeacherFingerprint(cfg, *manifest, tfPath);
    if (cfg.loss.distill.teacher_shuffle) {
      const auto perm = teacher_.shuffleRows(deriveSeed(static_cast<std::uint64_t>(cfg.seed), "teacher_shuffle"));
      std::int64_t fixed = 0;
      for (size_t i = 0; i < perm.size(); ++i) fixed += perm[i] == static_cast<std::int64_t>(i);
      log::warn("biud",
                "loss.distill.teacher_shuffle: control run, every CT gets the teacher features of another CT (a fixed "
                "random permutation of the {} rows of `{}`; {} kept their own)",
                perm.size(), tfPath, fixed);
    }
    auto trainIdx = manifest->indicesOf(cfg.data.train_split);
    BIUD_CHECK(!trainIdx.empty(), DataError, "`{}` has no `{}` split", cfg.data.manifest, cfg.data.train_split);
    train_ = std::make_shared<data::CtDataset>(manifest, trainIdx, cfg.data, cfg.data.cache_dir);
    auto valIdx = manifest->indicesOf(cfg.data.val_split);
    if (!valIdx.empty()) val_ = std::make_shared<data::CtDataset>(manifest, valIdx, cfg.data, cfg.data.cache_dir);
    data::CtLoaderOptions lo;
    lo.seed = deriveSeed(static_cast<std::uint64_t>(cfg.seed), "biud-loader");
    lo.rank = ctx.rank;
    lo.world = ctx.world;
    loader_ = std::make_unique<data::CtLoader>(train_, cfg.data.loader, lo);
    loader_->setEpoch(0);
    BIUD_CHECK(loader_->batchesPerEpoch() > 0, ConfigError,
               "data.loader.batch_size {} is larger than the {} training CTs per rank", cfg.data.loader.batch_size,
               train_->size() / ctx.world);
    model_ = buildModel(withTextInit(cfg), *tok_, teacher_.h_star.size(1));
    model_->to(ctx.device);
    const auto sp = tok_->specialIds();
    BIUD_CHECK(!loss_.usesEfm() || sp.mask >= 0, ConfigError,
               "loss.efm needs a [MASK] token, and the tokenizer `{}` has none", cfg.text.vocab);
    efmOpt_ = losses::EfmMaskOptions::from(cfg.loss.efm, tok_->vocabSize(), sp.mask);
    if (cfg.model.text_encoder.frozen) {
      // A frozen report encoder gives every report the same features at every step: encode each
      // training report once. EFM still runs the encoder, on the freshly masked reports only.
      textCache_ = data::makeFrozenTextFeatures(cfg, model_->text_encoder, *tok_, ctx.device, ctx.rank == 0);
      std::vector<std::string> texts;
      for (std::int64_t i = 0; i < train_->size(); ++i) texts.push_back(train_->item(i).text(cfg.data.report_sections));
      textCache_->precompute(texts, "frozen text features");
    }
    if (loss_.usesSem() && cfg.loss.sem.anchors == "prompts") {
      // Fixed anchors (METHOD §3): every finding's prompt ensembles through the expert's text tower, once.
      const std::string file = cfg.loss.sem.prompts.empty() ? cfg.eval.prompts : cfg.loss.sem.prompts;
      semAnchors_ = evaluate::promptAnchors(cfg.model.teacher, file, ctx.device).to(ctx.device);
      BIUD_CHECK(semAnchors_.size(1) == teacher_.h_star.size(1), DataError,
                 "loss.sem.anchors = prompts: the expert `{}` embeds prompts in {} dimensions but the teacher features "
                 "`{}` have {}: re-run biud-retrieve with this expert",
                 cfg.model.teacher, semAnchors_.size(1), tfPath, teacher_.h_star.size(1));
      log::info("biud", "semantic anchors: {} prompt ensembles of `{}` embedded by the expert `{}`",
                semAnchors_.size(0), file, cfg.model.teacher);
    }
    if (!cfg.eval.prompts.empty() && val_) {
      prompts_ = std::make_unique<text::PromptSet>(text::PromptSet::load(cfg.eval.prompts));
      promptCols_ = evaluate::validationColumns(manifestLabels_, *prompts_, cfg.data.manifest);
    }
    log::info("biud", "{} training CTs, teacher features d_X = {}, losses: roco ({}), pair {}, sem {}, efm {}",
              train_->size(), teacher_.h_star.size(1), cfg.loss.roco.mode, cfg.loss.pair.weight, cfg.loss.sem.weight,
              cfg.loss.efm.weight);
    if (cfg.data.pairing_top_k > 1) {
      // What tau means on this file: the expected share of rank-1 draws (scores are close together).
      const auto p = torch::softmax(
          teacher_.scores.slice(1, 0, cfg.data.pairing_top_k).to(torch::kFloat64) / cfg.data.pairing_tau, 1);
      log::info("biud",
                "teacher X-ray drawn per epoch from each CT's top {} (of {} in the file), softmax(score / {}): "
                "rank 1 expected in {:.1f}% of draws",
                cfg.data.pairing_top_k, teacher_.topK(), cfg.data.pairing_tau,
                100.0 * p.select(1, 0).mean().item<double>());
    }
  }

  torch::nn::Module& module() override { return *model_; }

  StepResult trainStep(const StepContext& sc) override {
    // A frozen report encoder stays in eval mode (no dropout): EFM's masked pass sees the same
    // encoder as the cached features and the evaluation.
    models::trainMode(*model_);
    std::vector<Micro> micro(static_cast<size_t>(sc.accum));
    for (int m = 0; m < sc.accum; ++m) {
      Micro& mb = micro[static_cast<size_t>(m)];
      mb.ct = nextBatch();
      mb.text = data::tokenizeBatch(*tok_, mb.ct.texts, cfg_.text.max_length, extractor_.get(), /*padToMax=*/true,
                                    /*findingsOnly=*/cfg_.loss.efm.entities == "findings");
      auto rows = teacher_.rowsOf(mb.ct.ids, cfg_.data.pairing);
      mb.hStar = drawTeacher(mb, rows).to(ctx_.device);
      mb.reportEmb = teacher_.report_embedding.index_select(0, rows).to(ctx_.device);
      mb.findings = data::findingMatrix(mb.text.labels).to(ctx_.device);
      if (mb.ct.labels.defined() && mb.ct.labels.dim() == 2 && mb.ct.labels.size(1) > 0) {
        const auto l = mb.ct.labels.to(torch::kFloat32);
        const auto unknown = l.isnan().any(1, /*keepdim=*/true).expand_as(l);
        mb.trueFindings =
            torch::where(unknown, torch::full_like(l, -1.0f), l.gt(0.5).to(torch::kFloat32)).to(ctx_.device);
      }
      if (loss_.usesEfm()) mb.efm = maskReports(mb);
    }
    auto forward = [&](int m) {
      const Micro& mb = micro[static_cast<size_t>(m)];
      auto out = model_->encodeCt(mb.ct.volume.to(ctx_.device));
      Features f{{"ct", out.ct},
                 {"adapted", out.adapted},
                 {"text", textCache_ ? model_->text_proj->forward(textCache_->get(mb.ct.texts))
                                     : model_->encodeText(mb.text.ids.to(ctx_.device), mb.text.mask.to(ctx_.device))}};
      if (loss_.usesEfm()) {
        const auto n = mb.efm.input_ids.size(0);  // the first n reports (loss.efm.reports)
        f["efm_logits"] =
            model_->efmLogits(mb.efm.input_ids.to(ctx_.device), mb.text.mask.narrow(0, 0, n).to(ctx_.device),
                              out.tokens.narrow(0, 0, n), mb.efm.selected.to(ctx_.device));  // [N_selected, V]
      }
      return f;
    };
    auto cat = [&](auto get) {
      std::vector<torch::Tensor> parts;
      for (auto& mb : micro) parts.push_back(get(mb));
      return torch::cat(parts);
    };
    losses::LossOutput last;
    auto loss = [&](const std::vector<Features>& all) {
      losses::BiudLossInputs in;
      auto& pair = in.roco.features;
      pair.a = concatFeature(all, "ct");
      pair.b = concatFeature(all, "text");
      in.relation.student = concatFeature(all, "adapted");
      in.relation.teacher = cat([](const Micro& mb) { return mb.hStar; });
      torch::Tensor reportEmb = cat([](const Micro& mb) { return mb.reportEmb; });
      torch::Tensor findings = cat([](const Micro& mb) { return mb.findings; });
      torch::Tensor trueFindings;
      if (micro.front().trueFindings.defined()) trueFindings = cat([](const Micro& mb) { return mb.trueFindings; });
      // The global batch (dist/GlobalBatch.h; in one process the loss sees the local rows only).
      const dist::GlobalBatch g(ctx_.comm, cfg_.distributed.gather_with_grad);
      pair.a_global = g.withGrad(pair.a);
      pair.b_global = g.withGrad(pair.b);
      pair.offset = in.relation.offset = g.offset(pair.a.size(0));
      in.relation.student_global = g.withGrad(in.relation.student);
      in.relation.teacher_global = g.constant(in.relation.teacher);
      reportEmb = g.allRows(reportEmb);
      findings = g.allRows(findings);
      if (trueFindings.defined()) trueFindings = g.allRows(trueFindings);
      in.roco.tau = model_->temperature->forward();
      in.roco.report_embeddings = reportEmb;
      in.roco.findings = findings;
      in.roco.true_findings = trueFindings;
      in.anchors =
          semAnchors_;  // undefined with loss.sem.anchors = batch_reports (BiudLoss uses the report embeddings)
      if (loss_.usesEfm()) {
        in.efm.logits = concatFeature(all, "efm_logits");
        in.efm.labels = torch::cat([&] {
          std::vector<torch::Tensor> v;
          for (auto& mb : micro) v.push_back(mb.efm.labels.to(ctx_.device));
          return v;
        }());
        in.efm.entity_mask =
            cat([&](const Micro& mb) { return mb.text.entity.narrow(0, 0, mb.efm.labels.size(0)).to(ctx_.device); });
      }
      if (g.distributed() && loss_.usesEfm()) {
        // EFM is a mean over the masked tokens of the whole global batch (as in one process),
        // not the mean of per-rank means: ranks mask different numbers of tokens.
        losses::BiudLossInputs core = in;
        core.efm = {};
        last = lossNoEfm_(core);
        auto efm = losses::efmLoss(in.efm.logits, in.efm.labels, in.efm.entity_mask);
        efm.total = g.globalMean(efm.total, efm.metrics.at("n_masked").item<double>());
        last.add("efm", efm, cfg_.loss.efm.weight);
      } else {
        last = loss_(in);
      }
      return std::make_pair(last.total, Metrics{});
    };
    auto r = accumulateWithFeatureCache(sc.accum, forward, loss, sc.setSync);
    std::int64_t samples = 0;
    for (auto& mb : micro) samples += mb.ct.size();
    return stepResult(r.loss, last, samples);
  }

  Metrics validate() override {
    Metrics m;
    if (!val_ || !prompts_) return m;
    torch::NoGradGuard ng;
    model_->eval();
    auto loader =
        evaluate::sequentialLoader(val_, cfg_.data.loader);  // no stop check: the trainer saves on SIGINT after it
    std::vector<torch::Tensor> emb, labels;
    data::CtBatch b;
    while (loader->next(b)) {
      emb.push_back(model_->encodeCt(b.volume.to(ctx_.device)).ct.cpu());
      labels.push_back(b.labels);
    }
    auto img = torch::cat(emb);
    auto lab = torch::cat(labels);
    evaluate::addZeroShotAuroc(
        img, lab, *prompts_, promptCols_,
        [&](const std::vector<std::string>& t) {
          // A frozen report encoder encodes the prompts once (the first validation), not every time.
          if (textCache_) return model_->text_proj->forward(textCache_->get(t)).cpu();
          auto tb = data::tokenizeBatch(*tok_, t, cfg_.text.max_length);
          return model_->encodeText(tb.ids.to(ctx_.device), tb.mask.to(ctx_.device)).cpu();
        },
        model_->temperature->forward().item<double>(), m);
    return m;
  }

  nlohmann::json state() const override {
    nlohmann::json j;
    for (auto& [k, v] : loader_->stateDict()) j[k] = v;
    return j;
  }
  void loadState(const nlohmann::json& s) override {
    std::map<std::string, std::int64_t> m;
    for (auto it = s.begin(); it != s.end(); ++it) m[it.key()] = it.value().get<std::int64_t>();
    loader_->loadStateDict(m);
  }

 private:
  /// Refuse teacher features computed from other data or another expert (TeacherFeatures.h).
  void checkTeacherFingerprint(const Config& cfg, const image::Manifest& ct, const std::string& tfPath) const {
    const auto& f = teacher_.fingerprint;
    if (f.expert.empty() && f.ct_manifest.empty() && f.xray_manifest.empty()) {
      log::warn("biud",
                "`{}` records no fingerprint of the expert and data it was made from (written before they existed): "
                "its h* cannot be checked against model.teacher and data.manifest; re-run biud-retrieve to add them",
                tfPath);
      return;
    }
    data::TeacherFingerprint now;
    now.ct_manifest = data::manifestFingerprint(ct, cfg.data.report_sections);
    if (!cfg.model.teacher.empty() && !f.expert.empty()) now.expert = evaluate::expertFingerprint(cfg.model.teacher);
    // The X-ray manifest is not otherwise needed by this task (a recipe may name one that only
    // the retrieval stage had): compared when it is there, said when it is not.
    std::error_code ec;
    if (!cfg.data.xray_manifest.empty() && !f.xray_manifest.empty()) {
      if (std::filesystem::exists(cfg.data.xray_manifest, ec))
        now.xray_manifest =
            data::manifestFingerprint(image::readManifest(cfg.data.xray_manifest), cfg.data.report_sections);
      else
        log::warn("biud", "data.xray_manifest `{}` does not exist here: the X-ray fingerprint of `{}` is not checked",
                  cfg.data.xray_manifest, tfPath);
    }
    const auto compared = teacher_.checkFingerprint(now, tfPath);
    if (now.expert.empty())
      log::warn("biud", "model.teacher is not set: the expert fingerprint of `{}` is not checked", tfPath);
    std::string parts;
    for (const auto& c : compared) parts += (parts.empty() ? "" : ", ") + c;
    log::info("biud", "teacher features `{}` match this run (fingerprints checked: {})", tfPath, parts);
  }
  static LossConfig withoutEfm(LossConfig c) {
    c.efm.weight = 0;
    return c;
  }
  /// EFM masking of the first loss.efm.reports reports of the micro-batch (all when 0), one report
  /// at a time with a seed from (seed, epoch, dataset index): the mask of a report does not depend
  /// on which rank or micro-batch it lands in, so (with all reports) N ranks mask the global batch
  /// exactly like one process does, and a resumed run masks like an uninterrupted one.
  losses::EfmMasked maskReports(const Micro& mb) const {
    const auto base = deriveSeed(deriveSeed(static_cast<std::uint64_t>(cfg_.seed), "efm"),
                                 static_cast<std::uint64_t>(loader_->epoch()));
    std::vector<torch::Tensor> ids, labels, selected;
    auto row = [](const torch::Tensor& t, std::int64_t i) { return t.defined() ? t.narrow(0, i, 1) : t; };
    const std::int64_t n =
        cfg_.loss.efm.reports > 0 ? std::min<std::int64_t>(cfg_.loss.efm.reports, mb.ct.size()) : mb.ct.size();
    for (std::int64_t i = 0; i < n; ++i) {
      const auto seed = deriveSeed(base, static_cast<std::uint64_t>(mb.ct.indices[static_cast<size_t>(i)]));
      auto r = losses::efmMask(row(mb.text.ids, i), row(mb.text.mask, i), row(mb.text.entity, i),
                               row(mb.text.special, i), efmOpt_, seed);
      ids.push_back(r.input_ids);
      labels.push_back(r.labels);
      selected.push_back(r.selected);
    }
    return {torch::cat(ids), torch::cat(labels), torch::cat(selected)};
  }

  data::CtBatch nextBatch() {
    auto b = loader_->nextCycling();
    if (loader_->epoch() != drawEpoch_) logDraws();
    drawEpoch_ = loader_->epoch();
    return b;
  }

  /// h* of the micro-batch's CTs for this epoch (METHOD §2 option): rank 1, or with
  /// data.pairing_top_k > 1 one of the top-K per CT, seeded by (seed, epoch, dataset index) like
  /// the EFM masks, so every rank and a resumed run draw the same X-ray for the same CT.
  torch::Tensor drawTeacher(const Micro& mb, const torch::Tensor& rows) {
    if (cfg_.data.pairing_top_k <= 1) return teacher_.h_star.index_select(0, rows);
    auto d = teacher_.draw(rows, mb.ct.indices, cfg_.data.pairing_top_k, cfg_.data.pairing_tau,
                           static_cast<std::uint64_t>(cfg_.seed), loader_->epoch());
    for (auto j : d.ranks) nonTop1_ += j > 0;
    drawn_ += static_cast<std::int64_t>(d.ranks.size());
    return d.h_star;
  }
  /// One line per finished epoch: how often a non-rank-1 X-ray stood in for the best match.
  void logDraws() {
    if (drawn_ > 0) {
      const double pct = 100.0 * static_cast<double>(nonTop1_) / static_cast<double>(drawn_);
      log::info("biud", "epoch {}: {} of {} CT draws{} used a non-rank-1 X-ray ({:.1f}%, top {}, tau {})", drawEpoch_,
                nonTop1_, drawn_, ctx_.world > 1 ? " on rank 0" : "", pct, cfg_.data.pairing_top_k,
                cfg_.data.pairing_tau);
    }
    drawn_ = nonTop1_ = 0;
  }

  Config cfg_;
  TaskContext ctx_;
  losses::BiudLoss loss_;
  losses::BiudLoss lossNoEfm_;  ///< roco + pair + sem (multi-rank: EFM is normalised globally)
  losses::EfmMaskOptions efmOpt_;
  std::unique_ptr<text::Tokenizer> tok_;
  std::unique_ptr<text::EntityExtractor> extractor_;
  data::TeacherFeatures teacher_;
  torch::Tensor semAnchors_;  ///< [2F, d_X] loss.sem.anchors = prompts; undefined otherwise
  std::shared_ptr<data::CtDataset> train_, val_;
  std::unique_ptr<data::CtLoader> loader_;
  std::unique_ptr<text::PromptSet> prompts_;
  std::vector<std::string> manifestLabels_;
  evaluate::PromptedColumns promptCols_;  ///< validation label columns with prompts (checked at construction)
  models::BiudModel model_{nullptr};
  std::unique_ptr<data::FrozenTextFeatures>
      textCache_;  ///< frozen text encoder: features per report (EFM still encodes masked reports)
  std::int64_t drawEpoch_ = -1, drawn_ = 0, nonTop1_ = 0;  ///< per-epoch top-K draw statistics (this rank)
};

}  // namespace

evaluate::TaskSpec biudTaskSpec() {
  evaluate::TaskSpec s;
  s.name = "biud";
  s.make = factoryOf<BiudTask>();
  s.load = [](evaluate::LoadedRun& r, const c10::Device& device, bool ema) {
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    const auto tf = data::TeacherFeatures::load(data::teacherFeaturesPath(r.cfg.data.pairing));
    auto m = buildModel(r.cfg, *r.tokenizer, tf.h_star.size(1));
    evaluate::loadRunWeights(*m, r, device, ema);
    return evaluate::biudRunModel(m, r.root, "biud");
  };
  return s;
}

}  // namespace biud::train
