#include "biud/losses/BiudLoss.h"

#include "Detail.h"
#include "biud/core/Error.h"

namespace biud::losses {

BiudLoss::BiudLoss(LossConfig cfg) : cfg_(std::move(cfg)), roco_(cfg_.roco) {
  BIUD_CHECK(cfg_.pair.tau > 0 && cfg_.sem.tau > 0, ConfigError, "loss.pair.tau {} and loss.sem.tau {} must be > 0",
             cfg_.pair.tau, cfg_.sem.tau);
}

LossOutput BiudLoss::operator()(const BiudLossInputs& in) const {
  detail::NoAutocast noAutocast;
  LossOutput out;
  out.add("roco", roco_(in.roco), 1.0);
  if (usesPair()) {
    BIUD_CHECK(
        in.relation.student.defined() && in.relation.teacher.defined(), ValueError,
        "BiudLoss: loss.pair.weight is {} but the adapted student or teacher features are undefined; pass them or set "
        "loss.pair.weight: 0",
        cfg_.pair.weight);
    out.add("pair", pairwiseRelationLoss(in.relation, cfg_.pair.tau, cfg_.pair.lambda_feat), cfg_.pair.weight);
  }
  if (usesSem()) {
    BIUD_CHECK(
        in.relation.student.defined() && in.relation.teacher.defined(), ValueError,
        "BiudLoss: loss.sem.weight is {} but the adapted student or teacher features are undefined; pass them or set "
        "loss.sem.weight: 0",
        cfg_.sem.weight);
    torch::Tensor anchors = in.anchors;
    if (!anchors.defined() && cfg_.sem.anchors == "batch_reports") anchors = in.roco.report_embeddings;
    BIUD_CHECK(anchors.defined(), ValueError,
               "BiudLoss: loss.sem needs anchors (loss.sem.anchors: {}) but none were passed{}", cfg_.sem.anchors,
               cfg_.sem.anchors == "batch_reports" ? " and roco.report_embeddings is undefined" : "");
    out.add("sem", semanticRelationLoss(in.relation.student, in.relation.teacher, anchors, cfg_.sem.tau),
            cfg_.sem.weight);
  }
  if (usesEfm()) {
    BIUD_CHECK(
        in.efm.logits.defined() && in.efm.labels.defined(), ValueError,
        "BiudLoss: loss.efm.weight is {} but no MLM logits/labels were passed; pass them or set loss.efm.weight: 0",
        cfg_.efm.weight);
    out.add("efm", efmLoss(in.efm.logits, in.efm.labels, in.efm.entity_mask), cfg_.efm.weight);
  }
  return out;
}

}  // namespace biud::losses
