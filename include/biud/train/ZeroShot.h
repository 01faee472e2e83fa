#pragma once
/// \file ZeroShot.h
/// Prompt-ensemble zero-shot classification (METHOD §4): per finding, the positive and the
/// negative prompts are embedded, each ensemble averaged and re-normalised, and
/// p = softmax([<x, e+>, <x, e->] / tau)[0] for an image embedding x.
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "biud/text/Prompts.h"

namespace biud::train {

/// Normalised report embeddings [N, d] of texts.
using TextEncoderFn = std::function<torch::Tensor(const std::vector<std::string>& texts)>;

struct PromptEmbeddings {
  std::vector<std::string> findings;
  torch::Tensor positive;  ///< [F, d]
  torch::Tensor negative;  ///< [F, d]
};

/// Embed the prompt ensembles of `findings` (ConfigError listing known ids for an unknown one).
PromptEmbeddings embedPrompts(const text::PromptSet& prompts, const std::vector<std::string>& findings,
                              const TextEncoderFn& encode);

/// The label columns that have prompts: finding ids and their column indices, in column order.
struct PromptedColumns {
  std::vector<std::string> findings;
  std::vector<std::int64_t> columns;
};
PromptedColumns promptedColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts);

/// [N, F] probabilities from normalised image embeddings [N, d].
torch::Tensor zeroShotProbabilities(const torch::Tensor& images, const PromptEmbeddings& p, double tau);

/// Per-finding AUROC of `probs` [N, F] against `labels` [N, F] (NaN = unknown, skipped); NaN
/// where a finding has one class. Appends "auroc/<finding>" and "auroc_macro" to `out`.
void addAurocMetrics(const torch::Tensor& probs, const torch::Tensor& labels, const std::vector<std::string>& names,
                     std::map<std::string, double>& out);

}  // namespace biud::train
