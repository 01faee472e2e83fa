#pragma once
/// \file BiudLoss.h
/// The BIUD stage-1 objective (METHOD §3):
/// `L = L_roco + w_pair L_pair + w_sem L_sem + w_efm L_efm` with the weights of `loss:`.
/// A term with weight 0 is skipped entirely (not computed; its inputs may be undefined), so
/// `pair.weight = sem.weight = efm.weight = 0` with `roco.mode: none` is the plain CLIP baseline.
///
/// Output names: terms "roco", "pair", "sem", "efm" (unweighted) and their sub-terms
/// ("roco/i2t", "pair/kl", "pair/feat"); metrics prefixed likewise ("roco/fn_rate", "roco/tau",
/// "efm/acc_entity", "sem/agree", ...).
#include <torch/torch.h>

#include "biud/config/LossConfig.h"
#include "biud/losses/EfmLoss.h"
#include "biud/losses/LossOutput.h"
#include "biud/losses/RelationDistillLoss.h"
#include "biud/losses/RocoLoss.h"

namespace biud::losses {

/// MLM outputs for the EFM term (see efmLoss()).
struct EfmInputs {
  torch::Tensor logits;       ///< [B, L, V] or [N, V]
  torch::Tensor labels;       ///< [B, L], kIgnoreLabel where not masked
  torch::Tensor entity_mask;  ///< [B, L] bool, or undefined
};

struct BiudLossInputs {
  RocoInputs roco;          ///< CT/report features, temperature, false-negative evidence
  RelationInputs relation;  ///< adapted student A h^CT and teacher h* (pair and sem)
  /// [K, d_X] semantic anchors g_X(a_j). Undefined with `loss.sem.anchors: batch_reports` means
  /// the batch's teacher report embeddings `roco.report_embeddings` (exactly those anchors).
  torch::Tensor anchors;
  EfmInputs efm;
};

/// Stateless; configured from `loss:`.
class BiudLoss {
 public:
  explicit BiudLoss(LossConfig cfg);
  LossOutput operator()(const BiudLossInputs& in) const;
  const LossConfig& config() const { return cfg_; }
  bool usesPair() const { return cfg_.pair.weight > 0; }
  bool usesSem() const { return cfg_.sem.weight > 0; }
  bool usesEfm() const { return cfg_.efm.weight > 0; }

 private:
  LossConfig cfg_;
  RocoLoss roco_;
};

}  // namespace biud::losses
