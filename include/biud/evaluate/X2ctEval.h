#pragma once
/// \file X2ctEval.h
/// Evaluation of X2CT-CLIP X-ray encoders (biud-x2ct-eval): cross-modal retrieval against the
/// cached CT/report latents, zero-shot findings from X-rays, and the linear-probe few-shot
/// protocol (logistic regression on frozen X-ray embeddings with 1 ... 100 % of the labels).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/RunList.h"
#include "biud/data/X2ctLatents.h"
#include "biud/data/XraySet.h"
#include "biud/evaluate/RunModel.h"

namespace biud::evaluate {

/// Normalised X-ray embeddings [N, d] of a set, in batches of 64, on `device` (returned on the CPU).
torch::Tensor embedXrays(RunModel& model, const data::XraySet& set, const c10::Device& device);

/// Retrieval between X-rays and the latents of their scans. Galleries hold each scan once (the
/// scans of the X-rays, in first-seen order); a query's relevant items are those of its scan.
/// Keys: "xray_to_report", "report_to_xray", "xray_to_ct", "ct_to_xray", each
/// eval::RetrievalScores::toJson() (recall@1/5/10, map, ranks); "ct_to_report" for the frozen pair
/// itself (the reference the X-ray tower is trained towards); "chance_recall@5" = 5 / gallery.
nlohmann::json x2ctRetrieval(const torch::Tensor& xray, const std::vector<std::string>& xrayIds,
                             const data::X2ctLatents& latents);

/// L2-regularised logistic regression per label column, fitted on `xTrain` [N, d] / `yTrain`
/// [N, F] (NaN = unknown, left out of that column), the scikit-learn objective
///   C * sum_i logloss_i + 0.5 ||w||^2   (intercept not penalised),
/// minimised with L-BFGS. Returns P(y = 1) for `xTest` [M, F]; a column with one class among the
/// known training labels predicts that class's frequency (a constant).
torch::Tensor linearProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                          double C = 1.0, int maxIter = 500);

/// `max(2, round(fraction * n))` distinct indices of [0, n) drawn with `seed`, sorted.
std::vector<std::int64_t> fewShotSubset(std::int64_t n, double fraction, std::uint64_t seed);

/// AUROCs `m` ("auroc/<finding>") as biud-x2ct-eval reports them: "per_label" (null where NaN),
/// "macro" over `findings`, "macro_ct_only" over those in `ctOnly`, "macro_xray_visible" over the
/// others (means of the finite values; null when none), "ct_only_findings".
nlohmann::json x2ctAurocJson(const std::map<std::string, double>& m, const std::vector<std::string>& findings,
                             const std::vector<std::string>& ctOnly);

struct FewShotOptions {
  std::vector<double> fractions;    ///< of the training X-rays whose labels the probe sees
  int subsets = 3;                  ///< label subsets drawn per fraction below 1 (AUROCs averaged)
  double C = 1.0;                   ///< linearProbe's inverse L2 strength
  std::uint64_t seed = 0;           ///< subset s of fraction f: fewShotSubset(..., deriveSeed(seed, "fewshot-<f>-<s>"))
  std::vector<std::string> ctOnly;  ///< x2ct.ct_only_findings (x2ctAurocJson)
  std::string label;                ///< progress bar label; none when empty
};

/// The linear-probe few-shot protocol: per fraction, linearProbe on the embeddings `xTrain` [N, d]
/// of a subset of the training X-rays with their labels `yTrain` [N, F], AUROC on `xTest`/`yTest`
/// per finding, averaged over the subsets where finite. Keys: "<fraction>" (`{:g}`) ->
/// x2ctAurocJson + "labelled_xrays" (subset size) + "subsets".
nlohmann::json fewShotProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                            const torch::Tensor& yTest, const std::vector<std::string>& findings,
                            const FewShotOptions& opt);

struct X2ctEvalOptions {
  std::vector<app::NamedPath> runs;  ///< x2ct runs, NAME=DIR (app::parseRunList)
  std::string split;                 ///< empty: data.test_split of each run
  std::string external;              ///< empty: x2ct.external_split of each run; `none` skips it
  std::string prompts;               ///< empty: eval.prompts of each run
  std::string manifest;              ///< empty: the run's X-ray manifest (data::x2ctXrayManifest)
  int seeds = 3;                     ///< FewShotOptions::subsets
  double C = 1.0;                    ///< FewShotOptions::C
  /// Called before any run is loaded: the output folder.
  std::function<std::string()> prepareOut;
};

struct X2ctEvalResult {
  nlohmann::json json;   ///< x2ct-eval.json: "models" -> name -> retrieval, zeroshot, ct_reference, fewshot, external
  std::string markdown;  ///< x2ct-eval.md: one table, runs as columns
  std::string out;
};

/// biud-x2ct-eval: for each run, retrieval against its cached latents, zero-shot AUROCs from the
/// X-rays (and, as reference, from the frozen CT latents of the same scans), the linear-probe
/// few-shot protocol on the training split, and zero-shot + retrieval on the external split.
/// Writes <out>/x2ct-eval.json and <out>/x2ct-eval.md. `cfg`: the app's config (eval.ema, seed).
X2ctEvalResult runX2ctEval(const X2ctEvalOptions& opt, const Config& cfg, const c10::Device& device);

/// The Markdown table of x2ct-eval.md from the "models" of `result` (columns in `names` order;
/// per-finding zero-shot rows for `findings`; few-shot rows from the first run's fractions).
std::string x2ctMarkdown(const nlohmann::json& result, const std::vector<std::string>& names,
                         const std::vector<std::string>& findings);

}  // namespace biud::evaluate
