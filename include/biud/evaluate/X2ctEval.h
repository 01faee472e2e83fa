#pragma once
/// \file X2ctEval.h
/// Evaluation of X2CT-CLIP X-ray encoders (biud-x2ct-eval): cross-modal retrieval against the
/// cached CT/report latents, zero-shot findings from X-rays, and the linear-probe few-shot
/// protocol (logistic regression on frozen X-ray embeddings with 1 ... 100 % of the labels).
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "biud/models/MethodModels.h"
#include "biud/train/X2ctLatents.h"
#include "biud/train/XraySet.h"

namespace biud::evaluate {

/// Normalised X-ray embeddings [N, d] of a set, in batches of 64, on `device` (returned on the CPU).
torch::Tensor embedXrays(models::ClipModel& model, const train::XraySet& set, const c10::Device& device);

/// Retrieval between X-rays and the latents of their scans. Galleries hold each scan once (the
/// scans of the X-rays, in first-seen order); a query's relevant items are those of its scan.
/// Keys: "xray_to_report", "report_to_xray", "xray_to_ct", "ct_to_xray", each
/// eval::RetrievalScores::toJson() (recall@1/5/10, map, ranks); "ct_to_report" for the frozen pair
/// itself (the reference the X-ray tower is trained towards); "chance_recall@5" = 5 / gallery.
nlohmann::json x2ctRetrieval(const torch::Tensor& xray, const std::vector<std::string>& xrayIds,
                             const train::X2ctLatents& latents);

/// L2-regularised logistic regression per label column, fitted on `xTrain` [N, d] / `yTrain`
/// [N, F] (NaN = unknown, left out of that column), the scikit-learn objective
///   C * sum_i logloss_i + 0.5 ||w||^2   (intercept not penalised),
/// minimised with L-BFGS. Returns P(y = 1) for `xTest` [M, F]; a column with one class among the
/// known training labels predicts that class's frequency (a constant).
torch::Tensor linearProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                          double C = 1.0, int maxIter = 500);

/// `max(2, round(fraction * n))` distinct indices of [0, n) drawn with `seed`, sorted.
std::vector<std::int64_t> fewShotSubset(std::int64_t n, double fraction, std::uint64_t seed);

}  // namespace biud::evaluate
