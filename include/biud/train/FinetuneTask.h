#pragma once
/// \file FinetuneTask.h
/// Task `finetune` (biud-finetune): multi-label classification of CT volumes with a linear head
/// on the pooled features of a pretrained BIUD CT encoder, and the pieces it is made of, exposed
/// for tests: the seeded stratified label-fraction subset, per-label pos_weight, the masked BCE
/// (layer-wise learning-rate decay is buildOptimizer's: biud/train/Optim.h).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/models/Encoder.h"
#include "biud/models/MethodModels.h"
#include "biud/train/Task.h"
#include "biud/train/Trainer.h"

namespace biud::train {

/// A seeded, stratified subset of `n = max(1, round(fraction * N))` training cases:
/// cases are visited in a permutation drawn from `seed`; labels are served rarest first
/// (fewest positives, then column order), each taking its first positives in that order up to
/// `max(1, round(fraction * positives))` while the subset has room; the rest is filled in
/// permutation order. fraction = 1 returns every case. Sorted ascending. `labels[i][l]`: 1
/// positive, 0 negative, NaN unknown.
std::vector<std::int64_t> labelFractionSubset(const std::vector<std::vector<double>>& labels, double fraction,
                                              std::uint64_t seed);

/// pos_weight per label = negatives / positives among the known labels of `labels` [N, L]
/// (NaN = unknown), clamped to [1/maxWeight, maxWeight]; 1 for a label without positives or
/// without negatives.
torch::Tensor positiveWeights(const torch::Tensor& labels, double maxWeight);

/// Binary cross-entropy with logits and per-label `posWeight` [L] (undefined = 1), averaged over
/// the known entries of `labels` [B, L] (NaN = unknown, contributes nothing). 0 when none is known.
/// Per entry: -(w y log s(x) + (1 - y) log(1 - s(x))), as torch.nn.BCEWithLogitsLoss(pos_weight).
torch::Tensor maskedBce(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& posWeight = {});

/// Per-case predictions of a split.
struct SplitPredictions {
  std::vector<std::string> ids;
  torch::Tensor probs;   ///< [N, L] sigmoid probabilities
  torch::Tensor labels;  ///< [N, L] (NaN unknown)
};

/// The `finetune` task. biud-finetune drives it; biud-train can too (optimizer.layer_decay is
/// applied to `ct_encoder` by buildOptimizer either way).
class FinetuneTask : public Task {
 public:
  virtual ~FinetuneTask() = default;
  /// The label columns predicted, in output order.
  virtual const std::vector<std::string>& labelNames() const = 0;
  /// Probabilities on a split of data.manifest with the current weights.
  virtual SplitPredictions predict(const std::string& split) = 0;
  /// Load the weights of the best validation (the last ones when there was no validation).
  /// Returns the step they come from (-1 = current weights kept).
  virtual std::int64_t restoreBest() = 0;
  /// The training cases used (after label_fraction).
  virtual const std::vector<std::string>& trainIds() const = 0;
  /// pos_weight per label.
  virtual torch::Tensor posWeight() const = 0;
  /// Pretrained checkpoint the encoder came from.
  virtual const std::string& pretrainedCheckpoint() const = 0;
  /// Whether data.manifest has a validation split (early stopping, `eval.threshold: val`).
  virtual bool hasValidation() const = 0;
};

/// A finetune run's trainer with its task (owned by the trainer).
using FinetuneTrainer = TrainerWithTask<FinetuneTask>;
/// The trainer of task finetune in `runDir`, one process (`optimizer.layer_decay` < 1 is applied
/// to the trainable `ct_encoder` parameters by buildOptimizer, as for any task).
FinetuneTrainer makeFinetuneTrainer(Config& cfg, const std::string& runDir, const c10::Device& device);

}  // namespace biud::train
