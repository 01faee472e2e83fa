#pragma once
/// \file RelationDistillLoss.h
/// Relation distillation from the frozen X-ray teacher into the CT student (METHOD §3).
///
/// Inputs are the *adapted* student features `A h^CT` (the adapter A is a model module; these
/// losses only see its output) and the cached teacher features `h*`.
///
/// Normalisation, exactly as METHOD.md writes the equations:
///  - `h*` enters as given: the teacher cache stores `h* = norm(f_X(x))`, so it must already be
///    L2-normalised (it is not re-normalised; unnormalised input changes the loss);
///  - the student side uses `sim(·,·)`, i.e. `A h^CT` is L2-normalised here;
///  - the semantic anchors `g_X(a_j)` are L2-normalised here (teacher text embeddings are
///    usually stored raw), on both the teacher and the student side.
#include <cstdint>

#include <torch/torch.h>

#include "biud/losses/LossOutput.h"

namespace biud::losses {

/// Student/teacher features of one batch, in the local/global layout of ClipLoss.h.
struct RelationInputs {
  torch::Tensor student;         ///< [B_local, d_X] adapted student features A h^CT
  torch::Tensor teacher;         ///< [B_local, d_X] teacher features h* (L2-normalised)
  torch::Tensor student_global;  ///< [B_global, d_X] gathered students, or undefined (= student)
  torch::Tensor teacher_global;  ///< [B_global, d_X] gathered teachers, or undefined (= teacher)
  int64_t offset = 0;            ///< global index of local row 0
};

/// Pairwise relation distillation:
/// `S*_ij = <h*_i, h*_j>/tau`, `S^CT_ij = sim(A h^CT_i, A h^CT_j)/tau`, the diagonal j = i
/// removed from both softmaxes, `L_pair = mean_i KL(softmax_j S*_i· || softmax_j S^CT_i·)`,
/// plus `lambdaFeat · mean_i (1 - sim(A h^CT_i, h*_i))` when lambdaFeat > 0.
/// Rows i are the local rows, columns j the gathered batch (offset as in ClipLoss.h).
/// Terms "kl" and (lambdaFeat > 0) "feat". A batch of one has no pairs: the KL term is 0.
/// Metrics "entropy_teacher" / "entropy_student": mean row entropy (nats) of the teacher's P*
/// and the student's P^CT (log(B_global - 1) = uniform; 0 for a batch of one).
LossOutput pairwiseRelationLoss(const RelationInputs& in, double tau, double lambdaFeat = 0.0);

/// Semantic relation distillation against K anchors `g_X(a_j)` ([K, d_X], normalised here):
/// `p*_i = softmax_j(<h*_i, norm(g_X(a_j))>/tau)`, `p^CT_i = softmax_j(sim(A h^CT_i, g_X(a_j))/tau)`,
/// `L_sem = mean_i KL(p*_i || p^CT_i)`. Metric "agree": fraction of rows whose top anchor
/// is the same for teacher and student; "entropy_teacher" / "entropy_student": mean row entropy
/// (nats) of p* and p^CT (log K = uniform over the K anchors).
LossOutput semanticRelationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                                const torch::Tensor& anchors, double tau);

}  // namespace biud::losses
