#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `loss.roco:` — robust contrastive loss with false-negative correction (METHOD §3).
struct RocoConfig {
  double temperature_init = 0.07, temperature_min = 0.01, temperature_max = 1.0;
  bool learn_temperature = true;
  std::string mode = "soft";
  double alpha = 1.0;
  bool fn_by_similarity = true;
  double fn_threshold = 0.92;
  bool fn_by_entities = true;

  void visit(config::Visitor& v) {
    v.field("temperature_init", temperature_init, "initial temperature tau", config::positive());
    v.field("temperature_min", temperature_min, "lower clamp of tau", config::positive());
    v.field("temperature_max", temperature_max, "upper clamp of tau", config::positive());
    v.field("learn_temperature", learn_temperature, "learn tau");
    v.field("mode", mode, "false-negative correction (none = plain InfoNCE)",
            config::oneOf({"none", "remove", "soft"}));
    v.field("alpha", alpha, "soft mode: target weight of a false negative", config::atLeast(0));
    v.field("fn_by_similarity", fn_by_similarity, "false negative when teacher report similarity >= fn_threshold");
    v.field("fn_threshold", fn_threshold, "report-similarity threshold theta", config::range(-1, 1));
    v.field("fn_by_entities", fn_by_entities, "false negative when the entity extractor finds identical finding sets");
    if (v.reading()) {
      if (temperature_min > temperature_max)
        v.fail("temperature_min", "must be <= temperature_max; lower temperature_min or raise temperature_max");
      else if (temperature_init < temperature_min || temperature_init > temperature_max)
        v.fail("temperature_init", "must lie in [temperature_min, temperature_max]");
    }
  }
};

/// A weighted loss term with a temperature.
struct RelationConfig {
  double weight = 1.0;
  double tau = 0.1;
  double lambda_feat = 0.0;
  std::string anchors = "batch_reports";
  std::string prompts;  ///< semantic, anchors = prompts: the prompt file (empty = eval.prompts)

  void visit(config::Visitor& v) {
    v.field("weight", weight, "weight in the total loss (0 = off)", config::atLeast(0));
    v.field("tau", tau, "temperature", config::positive());
    v.field("lambda_feat", lambda_feat, "pairwise only: weight of the point-wise feature term", config::atLeast(0));
    v.field("anchors", anchors,
            "semantic only: batch_reports (the batch's CT reports embedded by the teacher's text encoder) or prompts "
            "(every finding's positive and negative prompt ensemble of `prompts`, embedded once by the teacher's text "
            "encoder model.teacher: 2 x findings fixed anchors)",
            config::oneOf({"batch_reports", "prompts"}));
    v.field("prompts", prompts,
            "semantic only, anchors = prompts: the prompt file (configs/prompts/*.yaml; empty = eval.prompts)");
  }
};

/// `loss.distill:` — how the teacher features reach the relation losses.
struct DistillConfig {
  bool teacher_shuffle = false;

  void visit(config::Visitor& v) {
    v.field("teacher_shuffle", teacher_shuffle,
            "control experiment: give every CT the teacher features h* (and retrieval scores) of another CT, by a "
            "fixed random permutation of the teacher-features rows drawn from the run seed. What distillation still "
            "gains with it is regularisation, not the expert's knowledge (docs/regime.md)");
  }
};

/// `loss.efm:` — entity-focused masked language modelling.
struct EfmConfig {
  double weight = 0.5;
  double p_entity = 0.5;
  double p_other = 0.1;
  double mask_token_frac = 0.8;    ///< BERT 80/10/10: share of selected tokens replaced by [MASK]
  double random_token_frac = 0.1;  ///< share replaced by a random token (the rest kept)
  int reports = 0;                 ///< EFM on the first N reports of each micro-batch (0 = all)
  std::string entities = "all";    ///< entity tokens (masked with p_entity): all kinds, or findings only

  void visit(config::Visitor& v) {
    v.field("weight", weight, "weight in the total loss (0 = off)", config::atLeast(0));
    v.field("p_entity", p_entity, "mask probability of entity tokens", config::range(0, 1));
    v.field("p_other", p_other, "mask probability of other tokens", config::range(0, 1));
    v.field("mask_token_frac", mask_token_frac, "share of selected tokens replaced by [MASK] (BERT: 0.8)",
            config::range(0, 1));
    v.field("random_token_frac", random_token_frac,
            "share of selected tokens replaced by a random token (BERT: 0.1); the rest stay unchanged",
            config::range(0, 1));
    v.field("reports", reports,
            "EFM on the first N reports of each micro-batch, a random subset since batches are shuffled "
            "(0 = every report). On a CPU the report encoder's pass over the masked reports costs more "
            "than the rest of a step; fewer reports make it affordable",
            config::atLeast(0));
    v.field("entities", entities,
            "which lexicon mentions count as entity tokens (masked with p_entity): all (findings, anatomy, "
            "attributes, sizes) or findings (finding mentions only; the rest is masked with p_other)",
            config::oneOf({"all", "findings"}));
    if (v.reading() && mask_token_frac + random_token_frac > 1.0 + 1e-12)
      v.fail("random_token_frac", "mask_token_frac + random_token_frac must be <= 1");
  }
};

/// `loss.trimodal:` — X2CT-CLIP (METHOD §6).
struct TrimodalConfig {
  double alpha = 0.0, beta = 1.0, gamma = 1.0;
  double temperature_init = 0.07, temperature_min = 0.01, temperature_max = 1.0;
  void visit(config::Visitor& v) {
    v.field("alpha", alpha, "weight of L(CT, report)", config::atLeast(0));
    v.field("beta", beta, "weight of L(X-ray, report)", config::atLeast(0));
    v.field("gamma", gamma, "weight of L(X-ray, CT)", config::atLeast(0));
    v.field("temperature_init", temperature_init, "initial temperature tau (shared by the three InfoNCE terms)",
            config::positive());
    v.field("temperature_min", temperature_min, "lower clamp of tau", config::positive());
    v.field("temperature_max", temperature_max, "upper clamp of tau", config::positive());
    if (v.reading()) {
      if (temperature_min > temperature_max)
        v.fail("temperature_min", "must be <= temperature_max; lower temperature_min or raise temperature_max");
      else if (temperature_init < temperature_min || temperature_init > temperature_max)
        v.fail("temperature_init", "must lie in [temperature_min, temperature_max]");
    }
  }
};

/// `loss:` — total L = L_roco + w_pair L_pair + w_sem L_sem + w_efm L_efm.
struct LossConfig {
  RocoConfig roco;
  RelationConfig pair{1.0, 0.1, 0.0, "batch_reports", ""};
  RelationConfig sem{1.0, 0.1, 0.0, "batch_reports", ""};
  DistillConfig distill;
  EfmConfig efm;
  TrimodalConfig trimodal;

  void visit(config::Visitor& v) {
    v.section("roco", roco, "robust contrastive loss");
    v.section("pair", pair, "pairwise relation distillation");
    v.section("sem", sem, "semantic relation distillation");
    v.section("distill", distill, "teacher features for the relation losses");
    v.section("efm", efm, "entity-focused masking");
    v.section("trimodal", trimodal, "X2CT-CLIP tri-modal loss");
  }
};

}  // namespace biud
