#pragma once
/// \file ReportTask.h
/// Task `report` (biud-report): a transformer report decoder (model.decoder) cross-attending to
/// the CT tokens of a pretrained BIUD CT encoder (frozen, or fine-tuned with
/// report.freeze_encoder = false), trained with teacher forcing on the reports of data.manifest;
/// generation with beam search; scoring with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and clinical
/// efficacy (finding-level precision/recall/F1 of the entity extractor's findings).
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/models/Encoder.h"
#include "biud/models/MethodModels.h"
#include "biud/models/ReportDecoder.h"
#include "biud/text/Entities.h"
#include "biud/train/Task.h"
#include "biud/train/Trainer.h"

namespace biud::train {

/// Generated and reference reports of one split, in manifest order.
struct GeneratedReports {
  std::vector<std::string> ids, references, generated;
};

/// How to generate.
struct GenerateOptions {
  int beams = 3;  ///< 1 = greedy
  double lengthPenalty = 1.0;
  int maxNewTokens = 96;
  std::int64_t limit = 0;  ///< at most this many reports (0 = all)
};

/// Scores of generated reports against their references.
struct ReportScores {
  nlohmann::json json;                                   ///< {"nlg": {...}, "clinical": {...}, "n": N}
  std::vector<std::set<std::string>> generatedFindings;  ///< findings present per generated report
  std::vector<std::set<std::string>> referenceFindings;  ///< ... per reference report
};

/// Cyclic shifts averaged for the chance level of clinical efficacy.
constexpr size_t kChanceShifts = 20;

/// NLG metrics (eval/Nlg.h) and clinical efficacy (eval/Clinical.h) over every finding of the
/// extractor's lexicon; a finding counts as mentioned when the extractor says present or
/// uncertain (negated and unmentioned findings are absent). `clinical.chance_micro_f1` is the
/// micro F1 of the same generated reports against the references shifted by 1..K cases
/// (K = min(N - 1, kChanceShifts)), averaged: what reports that ignore the CT would score.
/// `nlgProtocol` (eval.nlg_protocol): biud or ct2rep (eval/Protocols.h); `nlg.protocol` says which.
ReportScores scoreReports(const std::vector<std::string>& generated, const std::vector<std::string>& references,
                          const text::EntityExtractor& extractor, const std::string& nlgProtocol = "biud");

/// The `report` task; biud-report drives it, biud-train can too.
class ReportTask : public Task {
 public:
  virtual ~ReportTask() = default;
  /// Generate the reports of a split of data.manifest with the current weights.
  virtual GeneratedReports generate(const std::string& split, const GenerateOptions& options) = 0;
  /// Pretrained checkpoint the encoder came from.
  virtual const std::string& pretrainedCheckpoint() const = 0;
  /// The entity extractor of text.lexicon (clinical efficacy).
  virtual const text::EntityExtractor& extractor() const = 0;
};

/// A report run's trainer with its task (owned by the trainer).
using ReportTrainer = TrainerWithTask<ReportTask>;
/// The trainer of task report in `runDir`, one process.
ReportTrainer makeReportTrainer(Config& cfg, const std::string& runDir, const c10::Device& device);

}  // namespace biud::train
