#pragma once
/// \file Clinical.h
/// Clinical efficacy of generated reports: finding-level precision, recall and F1 between the
/// findings extracted from generated reports and from the reference reports (the extractor lives
/// in text/; this takes its output). Micro = pooled over all (report, finding) decisions; macro =
/// mean over findings. A zero denominator gives 0, as scikit-learn's zero_division=0 does.
/// Unknown (NaN) reference labels are excluded for that report and finding.
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace biud::eval {

struct PrfCounts {
  double tp = 0, fp = 0, fn = 0, support = 0;
  double precision() const { return tp + fp > 0 ? tp / (tp + fp) : 0.0; }
  double recall() const { return tp + fn > 0 ? tp / (tp + fn) : 0.0; }
  double f1() const { return 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0; }
};

struct ClinicalScores {
  std::vector<std::string> findings;
  std::vector<PrfCounts> perFinding;
  double microP = 0, microR = 0, microF1 = 0, macroP = 0, macroR = 0, macroF1 = 0;
  nlohmann::json toJson() const;
};

/// `pred[report][finding]`, `ref[report][finding]`: 1 present, 0 absent, NaN unknown (reference)
/// — the layout of two CSVs `id,<finding>...` read with readNumericTable.
ClinicalScores clinicalEfficacy(const std::vector<std::vector<double>>& pred,
                                const std::vector<std::vector<double>>& ref, const std::vector<std::string>& findings);

/// The same from label sets (each report: the set of findings present), e.g. an extractor's output.
/// Findings are the union of both sides unless `findings` is given.
ClinicalScores clinicalEfficacy(const std::vector<std::set<std::string>>& pred,
                                const std::vector<std::set<std::string>>& ref, std::vector<std::string> findings = {});

}  // namespace biud::eval
