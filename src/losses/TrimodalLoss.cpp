#include "biud/losses/TrimodalLoss.h"

#include "Detail.h"
#include "biud/core/Error.h"
#include "biud/losses/ClipLoss.h"

namespace biud::losses {

TrimodalLoss::TrimodalLoss(TrimodalConfig cfg) : cfg_(std::move(cfg)) {
  BIUD_CHECK(cfg_.alpha > 0 || cfg_.beta > 0 || cfg_.gamma > 0, ConfigError,
             "loss.trimodal: alpha, beta and gamma are all 0, nothing to train; set at least one weight > 0");
  BIUD_CHECK(cfg_.alpha >= 0 && cfg_.beta >= 0 && cfg_.gamma >= 0, ConfigError,
             "loss.trimodal: weights must be >= 0 (alpha {}, beta {}, gamma {})", cfg_.alpha, cfg_.beta, cfg_.gamma);
}

LossOutput TrimodalLoss::operator()(const TrimodalInputs& in) const {
  detail::NoAutocast noAutocast;
  const auto tau = resolveTemperature(in.tau, cfg_.temperature_init, cfg_.temperature_min, cfg_.temperature_max);
  LossOutput out;
  auto term = [&](const char* name, double w, const torch::Tensor& a, const torch::Tensor& ag, const char* aName,
                  const torch::Tensor& b, const torch::Tensor& bg, const char* bName) {
    if (w == 0.0) return;
    BIUD_CHECK(a.defined() && b.defined(), ValueError,
               "TrimodalLoss: term `{}` has weight {} but `{}` or `{}` latents are undefined; pass them or set its "
               "weight to 0",
               name, w, aName, bName);
    out.add(name, clipLoss(ContrastivePair{a, b, ag, bg, in.offset}, tau), w);
  };
  term("ct_report", cfg_.alpha, in.ct, in.ct_global, "ct", in.report, in.report_global, "report");
  term("xray_report", cfg_.beta, in.xray, in.xray_global, "xray", in.report, in.report_global, "report");
  term("xray_ct", cfg_.gamma, in.xray, in.xray_global, "xray", in.ct, in.ct_global, "ct");
  return out;
}

}  // namespace biud::losses
