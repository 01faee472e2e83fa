#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `finetune:` — multi-label classification on a labelled CT set (biud-finetune, task finetune):
/// a linear head on the pooled features of a pretrained CT encoder, trained as a linear probe
/// (encoder frozen) or fully fine-tuned (with optimizer.layer_decay), BCE with per-label
/// pos_weight, on a stratified, seeded fraction of the training labels, with early stopping on
/// the validation split.
struct FinetuneConfig {
  std::string run;  ///< pretrained BIUD run (or checkpoint) folder
  std::string mode = "linear";
  double label_fraction = 1.0;
  std::vector<std::string> labels;  ///< label columns; empty = every label column of the manifest
  bool pos_weight = true;
  double max_pos_weight = 100.0;
  double head_dropout = 0.0;
  int patience = 0;
  std::string monitor = "auroc_macro";

  void visit(config::Visitor& v) {
    v.field("run", run, "pretrained BIUD run folder (or one of its checkpoint folders) whose CT encoder is used");
    v.field("mode", mode, "linear = linear probe (encoder frozen), full = fine-tune everything",
            config::oneOf({"linear", "full"}));
    v.field("label_fraction", label_fraction,
            "fraction of the labelled training cases used (0.01, 0.1, 1 or any other), stratified per label, "
            "seeded by `seed`",
            config::range(0, 1, /*loOpen=*/true));
    v.field("labels", labels, "label columns of data.manifest to predict (empty = every label column)");
    v.field("pos_weight", pos_weight, "BCE pos_weight per label = negatives / positives in the training subset");
    v.field("max_pos_weight", max_pos_weight, "upper bound of a pos_weight (rare labels)", config::atLeast(1));
    v.field("head_dropout", head_dropout, "dropout before the linear head", config::range(0, 1, false, true));
    v.field("patience", patience, "early stopping: validations without improvement before training stops (0 = off)",
            config::atLeast(0));
    v.field("monitor", monitor, "validation metric for the best checkpoint and early stopping",
            config::oneOf({"auroc_macro", "loss"}));
  }
};

}  // namespace biud
