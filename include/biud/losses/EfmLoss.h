#pragma once
/// \file EfmLoss.h
/// EFM, entity-focused masking (METHOD §3): image-conditioned masked language modelling in which
/// tokens inside entity spans (findings, anatomy, attributes, negation cues) are masked more often
/// than other tokens. Two parts: the masking function (data side) and the loss on the MLM
/// logits of the fusion encoder (the encoder itself is a model).
#include <cstdint>

#include <torch/torch.h>

#include "biud/config/LossConfig.h"
#include "biud/losses/LossOutput.h"

namespace biud::losses {

/// Label value of positions that are not predicted (PyTorch/HF `ignore_index`).
constexpr int64_t kIgnoreLabel = -100;

/// Masking parameters. Selected tokens follow BERT: `mask_frac` become [MASK], `random_frac` a
/// random token id uniform in [random_min_id, vocab_size), the rest stay unchanged.
struct EfmMaskOptions {
  int64_t vocab_size = 0;
  int64_t mask_id = -1;
  double p_entity = 0.5;  ///< selection probability of entity tokens (p_e)
  double p_other = 0.1;   ///< selection probability of other tokens (p_o)
  double mask_frac = 0.8;
  double random_frac = 0.1;
  int64_t random_min_id = 0;  ///< e.g. the first non-special id, to never insert [CLS]/[PAD]

  /// From `loss.efm` plus the tokenizer's vocabulary size and [MASK] id.
  static EfmMaskOptions from(const EfmConfig& cfg, int64_t vocabSize, int64_t maskId);
};

/// Result of masking, all [B, L].
struct EfmMasked {
  torch::Tensor input_ids;  ///< int64, ids after replacement (model input)
  torch::Tensor labels;     ///< int64, original id where selected, kIgnoreLabel elsewhere
  torch::Tensor selected;   ///< bool, the positions to predict
};

/// Select and corrupt tokens. Only positions with `attention_mask` set and `special_mask` clear
/// are eligible; entity tokens are selected with p_entity, others with p_other.
/// \param inputIds [B, L] integer token ids
/// \param attentionMask [B, L] (bool or 0/1), undefined = all valid
/// \param entityMask [B, L] bool, token lies in an entity span; undefined = no entities
/// \param specialMask [B, L] bool, [CLS]/[SEP]/[PAD]...; undefined = none
/// \param gen a CPU generator. The draws are made on the CPU in this order, so the result depends
///        only on the generator state: `u = rand([B,L], float64)` selects where `u < p`;
///        `v = rand([B,L], float64)` picks [MASK] where `v < mask_frac`, random where
///        `mask_frac <= v < mask_frac + random_frac`; `randint(random_min_id, vocab_size, [B,L])`
///        gives the random ids. Outputs are returned on the device of `inputIds`.
EfmMasked efmMask(const torch::Tensor& inputIds, const torch::Tensor& attentionMask, const torch::Tensor& entityMask,
                  const torch::Tensor& specialMask, const EfmMaskOptions& opt, torch::Generator gen);
/// Same with a fresh CPU generator seeded with `seed` (deterministic per seed).
EfmMasked efmMask(const torch::Tensor& inputIds, const torch::Tensor& attentionMask, const torch::Tensor& entityMask,
                  const torch::Tensor& specialMask, const EfmMaskOptions& opt, uint64_t seed);

/// Cross-entropy on the masked positions (mean over them) from MLM logits.
/// \param logits [B, L, V] for all positions, or [N, V] for the N selected positions only (in
///        row-major order of `labels != -100`), which saves the vocabulary projection elsewhere
/// \param labels [B, L] int64 with kIgnoreLabel at unselected positions
/// \param entityMask [B, L] bool (undefined = no entities) for the per-kind accuracies
/// Metrics: "acc", "acc_entity", "acc_other" (top-1 accuracy on masked tokens; 0 when there are
/// none of that kind), "n_masked", "n_masked_entity", "n_masked_other". No masked token at all
/// gives a zero loss (still attached to the graph).
LossOutput efmLoss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& entityMask);

}  // namespace biud::losses
