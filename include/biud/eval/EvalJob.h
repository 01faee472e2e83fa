#pragma once
/// \file EvalJob.h
/// What `biud-eval` computes, one function per subcommand: each reads its input files, aligns
/// them by id, computes the metrics and returns the content of eval.json (figures, where asked
/// for, are written into `plotDir`). The app parses flags, resolves defaults from the config,
/// calls one of these and writes the JSON. docs/eval.md describes the file formats.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "biud/core/RunList.h"
#include "biud/eval/Classification.h"
#include "biud/eval/EvalIo.h"

namespace biud::eval {

// --- classification --------------------------------------------------------------------------

struct ClassificationJob {
  std::vector<app::NamedPath> models;  ///< predictions CSVs; the first fills per_label/macro
  std::string labels;                  ///< labels CSV (id + 1/0/empty per finding)
  /// Operating point: `youden` (per finding, on these data), `val` (Youden on valPred/valLabels,
  /// 0.5 where the validation set has one class) or a number.
  std::string threshold = "youden";
  std::string valPred, valLabels;
  /// Bootstrap, CI level, seed and progress; the threshold fields are set from `threshold`.
  ClassificationOptions options;
  std::string protocol = "biud";  ///< biud, or ct-clip: also CT-CLIP's metrics under `ct_clip`
  std::string plotDir;            ///< "" = no figures
};
/// evaluateModels() on the aligned files, plus `task`, `n_cases`, `protocol` (and `ct_clip`).
/// ConfigError for an unknown threshold rule or `val` without validation files; DataError for
/// files that do not align (naming the file, the id and the column).
nlohmann::json runClassificationEval(const ClassificationJob& job);

/// Set `opt`'s threshold mode from a rule (`youden`, `val`, a number) for `findings`; `val`
/// reads valPred/valLabels and takes validationThresholds() of the findings' columns there.
void applyThresholdRule(const std::string& rule, const std::string& valPred, const std::string& valLabels,
                        const std::vector<std::string>& findings, ClassificationOptions& opt);

// --- report generation and clinical efficacy -------------------------------------------------

/// Generated reports and their references, aligned by the generated reports' ids.
struct AlignedReports {
  std::vector<std::string> hyps;
  std::vector<std::vector<std::string>> refs;
};
/// DataError when a generated id has no reference or appears more than once (the paths name the
/// files in messages). Reference ids without a generated report are left out (logged).
AlignedReports alignReports(const Texts& hyp, const Texts& ref, const std::string& hypPath, const std::string& refPath);

/// BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of `hypPath` against `refPath` under `protocol`
/// (biud or ct2rep), plus `task`, `protocol`, `tokenization`, `meteor_note`.
nlohmann::json runNlgEval(const std::string& hypPath, const std::string& refPath, const std::string& protocol);

/// Finding tables of generated (`pred`, 0/1) and reference reports (0/1/empty) aligned on the
/// reference's ids and columns. DataError for a missing id or column or a value other than 0/1.
struct AlignedFindings {
  std::vector<std::vector<double>> pred, ref;
  std::vector<std::string> findings;
};
AlignedFindings alignFindings(const NumericTable& pred, const NumericTable& ref);

/// Clinical efficacy (micro/macro precision, recall, F1) of two finding CSVs, plus `task`.
nlohmann::json runClinicalEval(const std::string& predPath, const std::string& refPath);

// --- retrieval -------------------------------------------------------------------------------

struct RetrievalJob {
  std::string sim;         ///< similarity matrix (CSV or .npy), or:
  std::string embA, embB;  ///< embeddings of the two modalities (cosine similarity)
  std::vector<int> ks = {1, 5, 10};
};
/// Row and column ids of a similarity matrix read from a file: its own ids when some row id is
/// also a column id, else indices (row i matches column i).
void matchMatrixIds(const Matrix& sim, std::vector<std::string>& rowIds, std::vector<std::string>& columnIds);
/// Recall@K, mAP and median rank in both directions (`a_to_b`, `b_to_a`), plus `task`, `ties`.
nlohmann::json runRetrievalEval(const RetrievalJob& job);

// --- DeLong and reader study -----------------------------------------------------------------

/// Column `finding` of the cases with a known label: scores from `probs`, labels as 0/1.
void knownColumn(const LabeledPredictions& d, const std::vector<std::vector<double>>& probs, std::size_t finding,
                 std::vector<double>& scores, std::vector<int>& labels);

/// DeLong test of two models' AUROCs per finding (null for a finding with one class), with the
/// difference's `ci` interval; plus `task`, `model1`, `model2`, `ci`.
nlohmann::json runDeLongEval(const std::string& pred1, const std::string& pred2, const std::string& labels, double ci);

/// Reader study: per finding the model's AUROC and, per reader, its sensitivity at the reader's
/// specificity and specificity at the reader's sensitivity; `readers_<finding>.png` into
/// `plotDir` unless empty. DataError for a reader whose finding is not a label column (or that
/// names none while there are several) and for a finding with one class.
nlohmann::json runReaderStudy(const std::string& predPath, const std::string& labelsPath,
                              const std::string& readersPath, const std::string& plotDir);

}  // namespace biud::eval
