#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `report:` — report generation (biud-report, task report): a transformer decoder
/// (model.decoder) cross-attending to the CT tokens of a pretrained CT encoder, trained with
/// teacher forcing; generation settings are eval.beam, eval.length_penalty, eval.max_new_tokens.
struct ReportConfig {
  std::string run;  ///< pretrained BIUD run (or checkpoint) folder
  bool freeze_encoder = true;
  double label_smoothing = 0.0;
  int val_reports = 16;

  void visit(config::Visitor& v) {
    v.field("run", run, "pretrained BIUD run folder (or one of its checkpoint folders) whose CT encoder is used");
    v.field("freeze_encoder", freeze_encoder, "true = train the decoder only; false = fine-tune the CT encoder too");
    v.field("label_smoothing", label_smoothing, "label smoothing of the token cross-entropy",
            config::range(0, 1, false, true));
    v.field("val_reports", val_reports,
            "validation: generate this many reports (greedy) of the val split for clinical F1 (0 = loss only)",
            config::atLeast(0));
  }
};

}  // namespace biud
