#pragma once
/// \file ZeroShot.h
/// Prompt-ensemble zero-shot classification (METHOD §4): per finding, the positive and the
/// negative prompts are embedded, each ensemble averaged and re-normalised, and
/// p = softmax([<x, e+>, <x, e->] / tau)[0] for an image embedding x.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "biud/text/Prompts.h"

namespace biud::evaluate {

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

/// The label columns that have prompts: their names (the data set's own, e.g. CT-RATE's
/// `Medical material`) and column indices, in column order, matched by PromptSet::matchLabels
/// (finding id or name, case, spaces and punctuation ignored). ConfigError listing both sides
/// when no column matches; a warning naming the columns left without prompts otherwise.
/// `labelsFrom` names where the columns come from in messages (e.g. "manifest `m.csv`").
using PromptedColumns = text::LabelMatch;
PromptedColumns promptedColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts,
                                const std::string& labelsFrom = "the label columns");

/// CT-CLIP's prompts for label columns (eval/Protocols.h ctClipPrompts): per column one pair
/// "<finding> is present." / "<finding> is not present.", where <finding> is the `name` given to
/// the finding of `named` the column matches (PromptSet::match), or else the column name itself
/// (CT-CLIP writes CT-RATE's label names into the prompts). Finding ids are the column names.
text::PromptSet ctClipPromptSet(const std::vector<std::string>& labelNames, const text::PromptSet* named);

/// The in-training zero-shot validation's columns, checked when a task is built (so a recipe whose
/// prompts match no label column stops before training, with promptedColumns' message): none,
/// with a warning, when the manifest has no label columns at all.
PromptedColumns validationColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts,
                                  const std::string& manifest);

/// [N, F] probabilities from normalised image embeddings [N, d].
torch::Tensor zeroShotProbabilities(const torch::Tensor& images, const PromptEmbeddings& p, double tau);

/// Per-finding AUROC of `probs` [N, F] against `labels` [N, F] (NaN = unknown, skipped); NaN
/// where a finding has one class. Appends "auroc/<finding>" and "auroc_macro" to `out`.
void addAurocMetrics(const torch::Tensor& probs, const torch::Tensor& labels, const std::vector<std::string>& names,
                     std::map<std::string, double>& out);

/// Zero-shot AUROCs with embedded prompts: addAurocMetrics of zeroShotProbabilities(images, p, tau)
/// against `labels` [N, F] (the label columns of p.findings, in that order).
void addZeroShotAuroc(const torch::Tensor& images, const torch::Tensor& labels, const PromptEmbeddings& p, double tau,
                      std::map<std::string, double>& out);

/// The whole prompts -> zero-shot -> AUROC sequence (the in-training validations, biud-x2ct-eval):
/// embed the prompt ensembles of `columns.findings` with `encode`, score the normalised image
/// embeddings `images` [N, d] at temperature `tau`, and add "auroc/<finding>" and "auroc_macro"
/// against the matched columns `columns.columns` of `labels` [N, L]. Adds nothing when no column
/// has prompts.
void addZeroShotAuroc(const torch::Tensor& images, const torch::Tensor& labels, const text::PromptSet& prompts,
                      const PromptedColumns& columns, const TextEncoderFn& encode, double tau,
                      std::map<std::string, double>& out);

}  // namespace biud::evaluate
