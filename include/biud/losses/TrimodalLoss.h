#pragma once
/// \file TrimodalLoss.h
/// X2CT-CLIP tri-modal loss (METHOD §6): `L = alpha L(C,R) + beta L(X,R) + gamma L(X,C)` with
/// C = CT, R = report, X = (simulated) X-ray latents, each term the symmetric InfoNCE of
/// ClipLoss.h sharing one temperature. Terms with weight 0 are not computed (their inputs may be
/// undefined).
#include <cstdint>

#include <torch/torch.h>

#include "biud/config/LossConfig.h"
#include "biud/losses/LossOutput.h"

namespace biud::losses {

struct TrimodalInputs {
  torch::Tensor xray, ct, report;                       ///< [B_local, d] latents
  torch::Tensor xray_global, ct_global, report_global;  ///< [B_global, d] gathered, or undefined (= local)
  int64_t offset = 0;                                   ///< global index of local row 0
  torch::Tensor tau;  ///< learnable temperature (0-dim); undefined = fixed temperature_init
};

/// Configured from `loss.trimodal`. Output terms (unweighted): "ct_report", "xray_report",
/// "xray_ct", each with "/i2t" and "/t2i" sub-terms; metrics "<term>/tau", "<term>/acc_i2t",
/// "<term>/acc_t2i". "i2t" is the first-named modality to the second (e.g. X-ray -> report).
class TrimodalLoss {
 public:
  /// Throws ConfigError when all three weights are 0.
  explicit TrimodalLoss(TrimodalConfig cfg);
  LossOutput operator()(const TrimodalInputs& in) const;
  const TrimodalConfig& config() const { return cfg_; }

 private:
  TrimodalConfig cfg_;
};

}  // namespace biud::losses
