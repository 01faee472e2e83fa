#pragma once
/// \file Figures.h
/// The standard evaluation outputs of a classification run, shared by biud-eval and the
/// model-driven apps (zero-shot, fine-tuning): per-model reports, DeLong against the first model,
/// ROC grid and violin PNGs, written into one folder.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "biud/eval/Classification.h"

namespace biud::eval {

/// One model's predictions for the cases and findings of a shared label matrix.
struct ModelPredictions {
  std::string name;
  std::vector<std::vector<double>> probs;  ///< [case][finding]
};

/// Evaluate every model on `labels` ([case][finding], NaN unknown). The JSON holds the first
/// model's report at the top level (`per_label`, `macro`, ...), every model under `models.<name>`
/// and, for two or more models, `models.<name>.delong_vs_<first>.<finding>` = {auc1, auc2, z, p,
/// diff_ci} (null where a finding has one class). When `plotDir` is non-empty, writes
/// `roc.png` (all models) and `violin_<model>.png` there.
nlohmann::json evaluateModels(const std::vector<ModelPredictions>& models,
                              const std::vector<std::vector<double>>& labels, const std::vector<std::string>& findings,
                              const ClassificationOptions& options, const std::string& plotDir = "");

/// A file-name-safe version of `s` (letters, digits, - and _ kept; others become _).
std::string safeFileName(const std::string& s);

}  // namespace biud::eval
