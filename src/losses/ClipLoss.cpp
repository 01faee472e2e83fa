#include "biud/losses/ClipLoss.h"

#include "Detail.h"

namespace biud::losses {

using detail::shapeOf;

torch::Tensor resolveTemperature(const torch::Tensor& tau, double init, double lo, double hi) {
  BIUD_CHECK(lo > 0 && lo <= hi, ConfigError,
             "temperature clamp [{}, {}] is empty or not positive; set temperature_min <= temperature_max, both > 0",
             lo, hi);
  if (!tau.defined()) {
    BIUD_CHECK(init >= lo && init <= hi, ConfigError,
               "temperature_init {} lies outside [temperature_min {}, temperature_max {}]", init, lo, hi);
    return torch::tensor(init, torch::kDouble);
  }
  BIUD_CHECK(tau.numel() == 1, ValueError, "temperature tensor has shape {}, expected a single value", shapeOf(tau));
  BIUD_CHECK(tau.is_floating_point(), ValueError, "temperature tensor must be floating point");
  return tau.reshape({}).clamp(lo, hi);
}

torch::Tensor tauFromLogitScale(const torch::Tensor& logitScale) { return torch::exp(-logitScale); }

ContrastiveLogits contrastiveLogits(const ContrastivePair& p, const torch::Tensor& tau, const char* caller) {
  detail::NoAutocast noAutocast;
  detail::checkFloat(p.a, 2, caller, "a");
  detail::checkFloat(p.b, 2, caller, "b");
  const auto ag = p.a_global.defined() ? p.a_global : p.a;
  const auto bg = p.b_global.defined() ? p.b_global : p.b;
  detail::checkFloat(ag, 2, caller, "a_global");
  detail::checkFloat(bg, 2, caller, "b_global");
  const int64_t bl = p.a.size(0), n = ag.size(0);
  BIUD_CHECK(p.b.size(0) == bl, ValueError, "{}: a {} and b {} have different batch sizes", caller, shapeOf(p.a),
             shapeOf(p.b));
  BIUD_CHECK(bg.size(0) == n, ValueError, "{}: a_global {} and b_global {} have different batch sizes", caller,
             shapeOf(ag), shapeOf(bg));
  BIUD_CHECK(p.a.size(1) == bg.size(1) && p.b.size(1) == ag.size(1), ValueError,
             "{}: feature sizes differ (a {}, b {}, a_global {}, b_global {}); both modalities must be projected to "
             "the same d",
             caller, shapeOf(p.a), shapeOf(p.b), shapeOf(ag), shapeOf(bg));
  BIUD_CHECK(bl > 0, ValueError, "{}: empty batch", caller);
  BIUD_CHECK(p.offset >= 0 && p.offset + bl <= n, ValueError,
             "{}: local rows [{}, {}) do not fit in the {} gathered columns; offset must be rank * B_local", caller,
             p.offset, p.offset + bl, n);
  BIUD_CHECK(tau.defined() && tau.numel() == 1, ValueError, "{}: temperature must be a single value (got {})", caller,
             shapeOf(tau));

  const auto an = detail::l2norm(p.a), bn = detail::l2norm(p.b);
  const auto agn = p.a_global.defined() ? detail::l2norm(ag) : an;
  const auto bgn = p.b_global.defined() ? detail::l2norm(bg) : bn;
  const auto t = tau.reshape({}).to(an.options().dtype());
  ContrastiveLogits out;
  out.ab = torch::matmul(an, bgn.t()) / t;
  out.ba = torch::matmul(bn, agn.t()) / t;
  out.labels = torch::arange(p.offset, p.offset + bl, torch::TensorOptions().dtype(torch::kLong).device(an.device()));
  return out;
}

LossOutput clipLoss(const ContrastivePair& p, const torch::Tensor& tau) {
  detail::NoAutocast noAutocast;
  const auto lg = contrastiveLogits(p, tau, "clipLoss");
  const auto i2t = torch::nn::functional::cross_entropy(lg.ab, lg.labels);
  const auto t2i = torch::nn::functional::cross_entropy(lg.ba, lg.labels);
  LossOutput out;
  out.total = 0.5 * (i2t + t2i);
  out.terms["i2t"] = scalarOf(i2t);
  out.terms["t2i"] = scalarOf(t2i);
  out.metrics["tau"] = scalarOf(tau);
  out.metrics["acc_i2t"] = scalarOf(lg.ab.argmax(1).eq(lg.labels).to(torch::kFloat).mean());
  out.metrics["acc_t2i"] = scalarOf(lg.ba.argmax(1).eq(lg.labels).to(torch::kFloat).mean());
  return out;
}

}  // namespace biud::losses
