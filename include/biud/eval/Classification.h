#pragma once
/// \file Classification.h
/// Binary classification metrics per finding, matching scikit-learn 1.x on the same inputs:
/// `rocCurve` = sklearn.metrics.roc_curve (drop_intermediate, thresholds[0] = +inf),
/// `rocAuc` = roc_auc_score (tied scores share one curve point, i.e. half credit),
/// `averagePrecision` = average_precision_score (step-wise, no interpolation).
/// Where sklearn raises or warns because only one class is present, these return NaN (the
/// report then says `null` and logs a warning naming the finding). A prediction is positive
/// when `score >= threshold`.
///
/// `evaluateClassification` is the one call the apps use (biud-eval, and later biud-zeroshot,
/// biud-report, biud-finetune): per-finding and macro metrics with seeded bootstrap percentile
/// confidence intervals, serialisable as JSON.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace biud::eval {

/// ROC curve points, highest threshold first (fpr and tpr non-decreasing).
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};

/// sklearn.metrics.roc_curve. `labels` are 0/1. fpr is NaN when there are no negatives, tpr when
/// there are no positives (sklearn warns and does the same).
RocCurve rocCurve(const std::vector<double>& scores, const std::vector<int>& labels, bool dropIntermediate = true);
/// sklearn.metrics.roc_auc_score; NaN when only one class is present (sklearn raises).
double rocAuc(const std::vector<double>& scores, const std::vector<int>& labels);
/// sklearn.metrics.average_precision_score; NaN when there is no positive (1.0 when all are).
double averagePrecision(const std::vector<double>& scores, const std::vector<int>& labels);

struct Confusion {
  std::int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};
/// Counts with `score >= threshold` predicted positive.
Confusion confusionAt(const std::vector<double>& scores, const std::vector<int>& labels, double threshold);

/// Metrics of a confusion matrix. precision and f1 follow sklearn's zero_division=0 (0 when the
/// denominator is 0); sensitivity is NaN without positives, specificity NaN without negatives.
struct ThresholdMetrics {
  double accuracy = 0, f1 = 0, sensitivity = 0, specificity = 0, precision = 0;
};
ThresholdMetrics thresholdMetrics(const Confusion& c);

/// Youden's J operating point: the threshold of the first point of the full ROC curve
/// (drop_intermediate = false, highest threshold first) maximising tpr - fpr. NaN with one class.
double youdenThreshold(const std::vector<double>& scores, const std::vector<int>& labels);

/// Operating points chosen on a validation set, one per finding (column l of `probs`/`labels`,
/// [case][finding]): youdenThreshold() of the cases whose label is known (NaN = unknown, > 0.5 =
/// positive). A finding with one class there (or no known label) gets 0.5 and a line in
/// `warnings` when given. The one place biud-eval `--threshold val` and biud-finetune's
/// `eval.threshold: val` choose their thresholds.
std::map<std::string, double> validationThresholds(const std::vector<std::vector<double>>& probs,
                                                   const std::vector<std::vector<double>>& labels,
                                                   const std::vector<std::string>& findings,
                                                   std::vector<std::string>* warnings = nullptr);

/// Sensitivity of a classifier at a given specificity: the largest tpr of an ROC point with
/// 1 - fpr >= specificity (the operating point a reader-study comparison uses).
double sensitivityAtSpecificity(const RocCurve& roc, double specificity);
/// Specificity at a given sensitivity: the largest 1 - fpr of an ROC point with tpr >= sensitivity.
double specificityAtSensitivity(const RocCurve& roc, double sensitivity);

/// Percentile `q` in [0,1] of `v` with numpy's default linear interpolation (v need not be sorted).
double percentile(std::vector<double> v, double q);

struct Interval {
  double lo = 0, hi = 0;
};

/// How `evaluateClassification` chooses thresholds and confidence intervals.
struct ClassificationOptions {
  /// "youden" (per finding on these data), "fixed" (`fixedThreshold` for every finding) or
  /// "given" (`thresholds` per finding, e.g. Youden on a validation set; missing ones -> error).
  std::string thresholdMode = "youden";
  double fixedThreshold = 0.5;
  std::map<std::string, double> thresholds;
  int bootstrap = 1000;    ///< resamples (0 = no CIs)
  double ci = 0.95;        ///< confidence level of the percentile intervals
  std::uint64_t seed = 0;  ///< bootstrap seed (same seed, same intervals)
  bool progress = true;    ///< show a progress bar over the resamples
};

/// Metrics of one finding. Thresholds stay fixed inside the bootstrap (the CI of accuracy/F1/...
/// is the CI at the chosen operating point).
struct LabelReport {
  std::string name;
  std::int64_t nPos = 0, nNeg = 0, nUnknown = 0;
  double auroc = 0, ap = 0, accuracy = 0, f1 = 0, sensitivity = 0, specificity = 0, precision = 0, threshold = 0;
  std::map<std::string, Interval> ci;  ///< metric name -> interval (NaN bounds when undefined)
  int bootstrapUsed = 0;               ///< resamples with both classes
  int bootstrapSkipped = 0;            ///< resamples with one class (skipped)
  std::vector<std::string> warnings;
};

struct ClassificationReport {
  std::vector<LabelReport> labels;
  std::map<std::string, double> macro;  ///< mean over findings with both classes (where the metric is defined)
  std::map<std::string, Interval> macroCi;
  int bootstrap = 0, macroBootstrapSkipped = 0;
  double ciLevel = 0.95;
  std::uint64_t seed = 0;
  std::string thresholdMode;
  /// `{"per_label": {name: {auroc, auroc_ci: [lo, hi], ..., n_pos, n_neg}}, "macro": {...}, ...}`;
  /// NaN becomes null.
  nlohmann::json toJson() const;
  const LabelReport* find(const std::string& name) const;
};

/// The metric names reported per finding and in the macro average.
const std::vector<std::string>& classificationMetricNames();

/// Evaluate `probs[case][finding]` against `labels[case][finding]` (1 positive, 0 negative,
/// NaN unknown: excluded for that finding only). NaN/inf probabilities for known labels are a
/// ValueError naming the finding and the case index (the apps check earlier and name the id).
ClassificationReport evaluateClassification(const std::vector<std::vector<double>>& probs,
                                            const std::vector<std::vector<double>>& labels,
                                            const std::vector<std::string>& names,
                                            const ClassificationOptions& options);

}  // namespace biud::eval
