#pragma once
/// \file RocoLoss.h
/// RoCo, the robust contrastive loss of BIUD (METHOD §3): symmetric InfoNCE between CT images
/// and their reports in which pairs (i, j != i) whose reports say the same thing — false
/// negatives — are not pushed apart.
///
/// False negatives (FN), detected over the gathered batch, OR-ed when both are enabled:
///  - report similarity: `R_ij = <norm(g_X(r_i)), norm(g_X(r_j))> >= theta` from the frozen
///    teacher text encoder's report embeddings (normalised here);
///  - identical finding sets from the entity extractor (e.g. two normal reports).
/// The diagonal (j = offset + i) is never a false negative.
///
/// Correction modes, applied to both directions with the same mask:
///  - `none`:   plain InfoNCE (the FN rate is still logged when the inputs are given);
///  - `remove`: FN columns are dropped from the softmax denominator of row i;
///  - `soft`:   cross-entropy with soft targets `y_i ∝ 1[j = offset+i] + alpha·1[FN(i,j)]`.
#include <string>

#include <torch/torch.h>

#include "biud/config/LossConfig.h"
#include "biud/losses/ClipLoss.h"
#include "biud/losses/LossOutput.h"

namespace biud::losses {

/// How false negatives are found.
struct FalseNegativeOptions {
  bool by_similarity = true;
  double threshold = 0.92;  ///< theta
  bool by_entities = true;
};

/// False-negative masks of the local rows against the global columns, all bool [B_local, B_global].
struct FalseNegatives {
  torch::Tensor mask;           ///< the OR of the enabled criteria, diagonal cleared
  torch::Tensor by_similarity;  ///< undefined when that criterion is off
  torch::Tensor by_entities;    ///< undefined when that criterion is off
};

/// Detect false negatives for the local rows [offset, offset + bLocal) of a gathered batch.
/// \param reportEmbeddings [B_global, d_X] teacher report embeddings g_X(r_j) (any scale; they
///        are L2-normalised here). Needed when `opt.by_similarity`.
/// \param findings [B_global] int64 finding-set ids (equal id = identical finding set; a
///        negative id means "unknown" and matches nothing), or [B_global, F] label vectors
///        (equal rows = identical sets; a row with any negative entry is unknown). Needed when
///        `opt.by_entities`.
/// No gradient flows through the masks.
FalseNegatives detectFalseNegatives(const torch::Tensor& reportEmbeddings, const torch::Tensor& findings,
                                    int64_t bLocal, int64_t offset, const FalseNegativeOptions& opt);

/// RoCo on resolved inputs. `fnMask` (bool [B_local, B_global], diagonal false) may be undefined
/// only for mode "none". Terms "i2t", "t2i"; metrics "tau", "acc_i2t", "acc_t2i", and with a mask
/// "fn_rate" (flagged off-diagonal pairs / all off-diagonal pairs of the local rows).
LossOutput rocoLoss(const ContrastivePair& p, const torch::Tensor& tau, const torch::Tensor& fnMask,
                    const std::string& mode, double alpha);

/// Everything RoCo needs for one step.
struct RocoInputs {
  ContrastivePair features;         ///< a = CT image features h^CT, b = report features t (local/global layout)
  torch::Tensor tau;                ///< learnable temperature (0-dim); undefined = fixed `temperature_init`
  torch::Tensor report_embeddings;  ///< [B_global, d_X] teacher report embeddings (fn_by_similarity)
  torch::Tensor findings;           ///< [B_global] ids or [B_global, F] labels (fn_by_entities)
  /// Optional, diagnostics only: the true finding sets ([B_global] ids or [B_global, F] labels,
  /// as `findings`; e.g. the data set's label columns). A pair with identical true sets is a true
  /// false negative; metrics "fn_precision" (flagged pairs that are true false negatives / flagged;
  /// NaN when none is flagged), "fn_recall" (true false negatives flagged / true false negatives;
  /// NaN when there is none) and "fn_rate_true" (true false negatives / off-diagonal pairs).
  torch::Tensor true_findings;
};

/// RoCo configured from `loss.roco`. Stateless: the temperature parameter belongs to the model.
class RocoLoss {
 public:
  explicit RocoLoss(RocoConfig cfg);
  /// Computes the loss; metrics add "fn_rate_similarity" / "fn_rate_entities" per criterion, and
  /// with `true_findings` "fn_precision", "fn_recall", "fn_rate_true" (also in mode none).
  /// Missing FN inputs are an error for modes remove/soft; with mode none they only skip the
  /// FN-rate diagnostics.
  LossOutput operator()(const RocoInputs& in) const;
  const RocoConfig& config() const { return cfg_; }

 private:
  RocoConfig cfg_;
};

}  // namespace biud::losses
