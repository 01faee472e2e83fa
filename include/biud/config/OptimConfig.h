#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `optimizer:` — AdamW with decoupled weight decay; no decay on norms and biases.
struct OptimizerConfig {
  std::string name = "adamw";
  double lr = 1e-4;
  double weight_decay = 0.05;
  std::vector<double> betas = {0.9, 0.98};
  double eps = 1e-8;
  std::map<std::string, double> module_lr;  ///< parameter-name prefix -> lr (overrides `lr`)
  double layer_decay = 1.0;                 ///< layer-wise lr decay (fine-tuning); 1 = off

  void visit(config::Visitor& v) {
    v.field("name", name, "optimizer", config::oneOf({"adamw", "sgd"}));
    v.field("lr", lr, "peak learning rate", config::range(0, 10, /*loOpen=*/true));
    v.field("weight_decay", weight_decay, "decoupled weight decay (not applied to norms and biases)",
            config::range(0, 1));
    v.field("betas", betas, "Adam betas", config::sizeIs(2) & config::range(0, 1, false, true));
    v.field("eps", eps, "Adam epsilon", config::positive());
    v.field("module_lr", module_lr, "learning rate per parameter-name prefix, e.g. {text_encoder: 1e-5}",
            config::range(0, 10));
    v.field("layer_decay", layer_decay, "layer-wise learning-rate decay for fine-tuning (1 = off)",
            config::range(0, 1, true));
  }
};

/// `schedule:` — learning-rate schedule over optimizer steps.
struct ScheduleConfig {
  std::string name = "cosine";
  int warmup_steps = 100;
  double min_lr_ratio = 0.0;

  void visit(config::Visitor& v) {
    v.field("name", name, "schedule after warmup", config::oneOf({"cosine", "linear", "constant"}));
    v.field("warmup_steps", warmup_steps, "linear warmup from 0 to the peak lr", config::atLeast(0));
    v.field("min_lr_ratio", min_lr_ratio, "final lr as a fraction of the peak", config::range(0, 1));
  }
};

}  // namespace biud
