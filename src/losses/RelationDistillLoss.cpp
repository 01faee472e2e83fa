#include "biud/losses/RelationDistillLoss.h"

#include "Detail.h"
#include "biud/core/Error.h"

namespace biud::losses {

using detail::shapeOf;

namespace {

/// mean over rows of KL(P || Q) from log-probabilities (rows sum to 1).
torch::Tensor rowKl(const torch::Tensor& logP, const torch::Tensor& logQ) {
  return (logP.exp() * (logP - logQ)).sum(1).mean();
}

/// mean over rows of the entropy -sum_j P_ij log P_ij (nats) from log-probabilities; a diagnostic.
torch::Tensor rowEntropy(const torch::Tensor& logP) {
  torch::NoGradGuard ng;
  return scalarOf(-(logP.exp() * logP).sum(1).mean());
}

}  // namespace

LossOutput pairwiseRelationLoss(const RelationInputs& in, double tau, double lambdaFeat) {
  detail::NoAutocast noAutocast;
  const char* fn = "pairwiseRelationLoss";
  BIUD_CHECK(tau > 0, ConfigError, "{}: tau {} must be > 0 (loss.pair.tau)", fn, tau);
  BIUD_CHECK(lambdaFeat >= 0, ConfigError, "{}: lambda_feat {} must be >= 0 (loss.pair.lambda_feat)", fn, lambdaFeat);
  detail::checkFloat(in.student, 2, fn, "student");
  detail::checkFloat(in.teacher, 2, fn, "teacher");
  const auto sg = in.student_global.defined() ? in.student_global : in.student;
  const auto tg = in.teacher_global.defined() ? in.teacher_global : in.teacher;
  detail::checkFloat(sg, 2, fn, "student_global");
  detail::checkFloat(tg, 2, fn, "teacher_global");
  const int64_t bl = in.student.size(0), n = sg.size(0);
  BIUD_CHECK(in.teacher.size(0) == bl && tg.size(0) == n, ValueError,
             "{}: batch sizes differ (student {}, teacher {}, student_global {}, teacher_global {})", fn,
             shapeOf(in.student), shapeOf(in.teacher), shapeOf(sg), shapeOf(tg));
  BIUD_CHECK(
      in.student.size(1) == in.teacher.size(1) && sg.size(1) == in.student.size(1) && tg.size(1) == in.teacher.size(1),
      ValueError,
      "{}: the adapted student (d={}) and the teacher (d={}) must have the same width; check the adapter output size",
      fn, in.student.size(1), in.teacher.size(1));
  BIUD_CHECK(bl > 0 && in.offset >= 0 && in.offset + bl <= n, ValueError,
             "{}: local rows [{}, {}) do not fit in the {} gathered rows", fn, in.offset, in.offset + bl, n);

  const auto s = detail::l2norm(in.student);
  const auto sgn = in.student_global.defined() ? detail::l2norm(sg) : s;
  const auto t = detail::computeType(in.teacher).to(s.scalar_type());
  const auto tgn = in.teacher_global.defined() ? detail::computeType(tg).to(s.scalar_type()) : t;

  LossOutput out;
  torch::Tensor kl;
  if (n < 2) {
    kl = (s.sum() * 0.0);  // no pair to relate; keep the graph and device
    out.metrics["entropy_teacher"] = scalarOf(torch::zeros({}, s.options()));
    out.metrics["entropy_student"] = scalarOf(torch::zeros({}, s.options()));
  } else {
    const auto sT = torch::matmul(t, tgn.t()) / tau;
    const auto sS = torch::matmul(s, sgn.t()) / tau;
    // Drop column offset+i of row i: the remaining B_global-1 entries form each row's softmax.
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(s.device());
    const auto keep =
        torch::arange(in.offset, in.offset + bl, opts).unsqueeze(1).ne(torch::arange(n, opts).unsqueeze(0));
    const auto offT = sT.masked_select(keep).view({bl, n - 1});
    const auto offS = sS.masked_select(keep).view({bl, n - 1});
    const auto logPT = torch::log_softmax(offT, 1), logPS = torch::log_softmax(offS, 1);
    kl = rowKl(logPT, logPS);
    out.metrics["entropy_teacher"] = rowEntropy(logPT);
    out.metrics["entropy_student"] = rowEntropy(logPS);
  }
  out.total = kl;
  out.terms["kl"] = scalarOf(kl);
  if (lambdaFeat > 0) {
    const auto feat = (1.0 - (s * detail::l2norm(in.teacher).to(s.scalar_type())).sum(1)).mean();
    out.total = out.total + lambdaFeat * feat;
    out.terms["feat"] = scalarOf(feat);
  }
  return out;
}

LossOutput semanticRelationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                                const torch::Tensor& anchors, double tau) {
  detail::NoAutocast noAutocast;
  const char* fn = "semanticRelationLoss";
  BIUD_CHECK(tau > 0, ConfigError, "{}: tau {} must be > 0 (loss.sem.tau)", fn, tau);
  detail::checkFloat(student, 2, fn, "student");
  detail::checkFloat(teacher, 2, fn, "teacher");
  detail::checkFloat(anchors, 2, fn, "anchors");
  BIUD_CHECK(student.size(0) == teacher.size(0) && student.size(0) > 0, ValueError,
             "{}: student {} and teacher {} must have the same, non-zero batch size", fn, shapeOf(student),
             shapeOf(teacher));
  BIUD_CHECK(student.size(1) == teacher.size(1) && anchors.size(1) == teacher.size(1), ValueError,
             "{}: widths differ (student {}, teacher {}, anchors {}); anchors must be teacher text embeddings g_X(a_j)",
             fn, shapeOf(student), shapeOf(teacher), shapeOf(anchors));
  BIUD_CHECK(anchors.size(0) > 0, ValueError, "{}: no anchors", fn);
  const auto s = detail::l2norm(student);
  const auto a = detail::l2norm(anchors).to(s.scalar_type());
  const auto t = detail::computeType(teacher).to(s.scalar_type());
  const auto logPT = torch::log_softmax(torch::matmul(t, a.t()) / tau, 1);
  const auto logPS = torch::log_softmax(torch::matmul(s, a.t()) / tau, 1);
  LossOutput out;
  out.total = rowKl(logPT, logPS);
  out.metrics["agree"] = scalarOf(logPT.argmax(1).eq(logPS.argmax(1)).to(torch::kFloat).mean());
  out.metrics["entropy_teacher"] = rowEntropy(logPT);
  out.metrics["entropy_student"] = rowEntropy(logPS);
  return out;
}

}  // namespace biud::losses
