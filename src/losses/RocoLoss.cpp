#include "biud/losses/RocoLoss.h"

#include <limits>

#include "Detail.h"

namespace biud::losses {

using detail::shapeOf;

namespace {

/// bool [B_local, B_global], true at (i, offset + i).
torch::Tensor diagonalMask(int64_t bl, int64_t n, int64_t offset, const torch::Device& dev) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(dev);
  return torch::arange(offset, offset + bl, opts).unsqueeze(1).eq(torch::arange(n, opts).unsqueeze(0));
}

torch::Tensor offDiagonalRate(const torch::Tensor& m, int64_t bl, int64_t n) {
  const double pairs = static_cast<double>(bl) * static_cast<double>(n - 1);
  return scalarOf(m.sum().to(torch::kDouble) / std::max(pairs, 1.0));
}

}  // namespace

FalseNegatives detectFalseNegatives(const torch::Tensor& reportEmbeddings, const torch::Tensor& findings,
                                    int64_t bLocal, int64_t offset, const FalseNegativeOptions& opt) {
  detail::NoAutocast noAutocast;
  torch::NoGradGuard noGrad;
  FalseNegatives fn;
  int64_t n = -1;
  c10::optional<torch::Device> dev;
  if (opt.by_similarity) {
    detail::checkFloat(reportEmbeddings, 2, "RoCo false negatives", "report_embeddings");
    n = reportEmbeddings.size(0);
    dev = reportEmbeddings.device();
  }
  if (opt.by_entities) {
    BIUD_CHECK(
        findings.defined() && (findings.dim() == 1 || findings.dim() == 2), ValueError,
        "RoCo false negatives: `findings` has shape {}, expected [B_global] finding-set ids or [B_global, F] labels",
        shapeOf(findings));
    BIUD_CHECK(n < 0 || findings.size(0) == n, ValueError,
               "RoCo false negatives: findings {} and report_embeddings {} cover different batches", shapeOf(findings),
               shapeOf(reportEmbeddings));
    n = findings.size(0);
    if (!dev) dev = findings.device();
  }
  BIUD_CHECK(n >= 0, ValueError,
             "RoCo false negatives: both criteria are off; enable fn_by_similarity or fn_by_entities");
  BIUD_CHECK(bLocal > 0 && offset >= 0 && offset + bLocal <= n, ValueError,
             "RoCo false negatives: local rows [{}, {}) do not fit in the {} gathered entries", offset, offset + bLocal,
             n);
  const auto diagonal = diagonalMask(bLocal, n, offset, *dev);
  fn.mask = torch::zeros({bLocal, n}, torch::TensorOptions().dtype(torch::kBool).device(*dev));
  if (opt.by_similarity) {
    const auto e = detail::l2norm(reportEmbeddings);
    const auto r = torch::matmul(e.narrow(0, offset, bLocal), e.t());
    fn.by_similarity = r.ge(opt.threshold).logical_and(diagonal.logical_not());
    fn.mask = fn.mask.logical_or(fn.by_similarity);
  }
  if (opt.by_entities) {
    const auto f = findings.to(*dev);
    const auto rows = f.narrow(0, offset, bLocal);
    torch::Tensor same, known;
    if (f.dim() == 1) {
      same = rows.unsqueeze(1).eq(f.unsqueeze(0));
      known = f.ge(0);
    } else {
      same = rows.unsqueeze(1).eq(f.unsqueeze(0)).all(-1);
      known = f.ge(0).all(-1);
    }
    const auto knownPair = known.narrow(0, offset, bLocal).unsqueeze(1).logical_and(known.unsqueeze(0));
    fn.by_entities = same.logical_and(knownPair).logical_and(diagonal.logical_not());
    fn.mask = fn.mask.logical_or(fn.by_entities);
  }
  return fn;
}

LossOutput rocoLoss(const ContrastivePair& p, const torch::Tensor& tau, const torch::Tensor& fnMask,
                    const std::string& mode, double alpha) {
  detail::NoAutocast noAutocast;
  BIUD_CHECK(mode == "none" || mode == "remove" || mode == "soft", ConfigError,
             "RoCo: unknown mode `{}` (loss.roco.mode); use none, remove or soft", mode);
  BIUD_CHECK(alpha >= 0, ConfigError, "RoCo: alpha {} must be >= 0 (loss.roco.alpha)", alpha);
  const auto lg = contrastiveLogits(p, tau, "RoCo");
  const int64_t bl = lg.ab.size(0), n = lg.ab.size(1);
  torch::Tensor fn;
  if (fnMask.defined()) {
    BIUD_CHECK(fnMask.dim() == 2 && fnMask.size(0) == bl && fnMask.size(1) == n, ValueError,
               "RoCo: false-negative mask has shape {}, expected [{}, {}] (local rows x gathered columns)",
               shapeOf(fnMask), bl, n);
    fn = fnMask.to(lg.ab.device())
             .to(torch::kBool)
             .logical_and(diagonalMask(bl, n, p.offset, lg.ab.device()).logical_not());
  } else {
    BIUD_CHECK(mode == "none", ValueError, "RoCo: mode `{}` needs a false-negative mask", mode);
  }

  auto direction = [&](const torch::Tensor& logits) -> torch::Tensor {
    if (mode == "none" || (mode == "soft" && alpha == 0.0))
      return torch::nn::functional::cross_entropy(logits, lg.labels);
    if (mode == "remove")
      return torch::nn::functional::cross_entropy(logits.masked_fill(fn, -std::numeric_limits<double>::infinity()),
                                                  lg.labels);
    // soft: y_i ∝ onehot(offset + i) + alpha * FN(i, ·)
    auto target =
        torch::nn::functional::one_hot(lg.labels, n).to(logits.scalar_type()) + alpha * fn.to(logits.scalar_type());
    target = target / target.sum(1, /*keepdim=*/true);
    return -(target * torch::log_softmax(logits, 1)).sum(1).mean();
  };
  const auto i2t = direction(lg.ab), t2i = direction(lg.ba);
  LossOutput out;
  out.total = 0.5 * (i2t + t2i);
  out.terms["i2t"] = scalarOf(i2t);
  out.terms["t2i"] = scalarOf(t2i);
  out.metrics["tau"] = scalarOf(tau);
  out.metrics["acc_i2t"] = scalarOf(lg.ab.argmax(1).eq(lg.labels).to(torch::kFloat).mean());
  out.metrics["acc_t2i"] = scalarOf(lg.ba.argmax(1).eq(lg.labels).to(torch::kFloat).mean());
  if (fn.defined()) out.metrics["fn_rate"] = offDiagonalRate(fn, bl, n);
  return out;
}

RocoLoss::RocoLoss(RocoConfig cfg) : cfg_(std::move(cfg)) {
  BIUD_CHECK(cfg_.mode == "none" || cfg_.mode == "remove" || cfg_.mode == "soft", ConfigError,
             "loss.roco.mode: `{}` is not one of none, remove, soft", cfg_.mode);
  BIUD_CHECK(cfg_.temperature_min > 0 && cfg_.temperature_min <= cfg_.temperature_max, ConfigError,
             "loss.roco.temperature_min {} / temperature_max {}: need 0 < min <= max", cfg_.temperature_min,
             cfg_.temperature_max);
  BIUD_CHECK(cfg_.mode == "none" || cfg_.fn_by_similarity || cfg_.fn_by_entities, ConfigError,
             "loss.roco.mode `{}` corrects false negatives but fn_by_similarity and fn_by_entities are both false; "
             "enable one or set mode: none",
             cfg_.mode);
}

LossOutput RocoLoss::operator()(const RocoInputs& in) const {
  detail::NoAutocast noAutocast;
  BIUD_CHECK(
      in.tau.defined() || !cfg_.learn_temperature, ValueError,
      "RoCo: loss.roco.learn_temperature is true but no temperature tensor was passed; pass the model's tau or set "
      "learn_temperature: false");
  const auto tau = resolveTemperature(in.tau, cfg_.temperature_init, cfg_.temperature_min, cfg_.temperature_max);
  BIUD_CHECK(in.features.a.defined(), ValueError, "RoCo: image features `a` are undefined");
  const int64_t bl = in.features.a.size(0);

  FalseNegativeOptions opt{cfg_.fn_by_similarity, cfg_.fn_threshold, cfg_.fn_by_entities};
  if (cfg_.mode == "none") {
    // Baseline: detect only what the inputs allow, for the FN-rate diagnostics.
    opt.by_similarity = opt.by_similarity && in.report_embeddings.defined();
    opt.by_entities = opt.by_entities && in.findings.defined();
  } else {
    BIUD_CHECK(
        !opt.by_similarity || in.report_embeddings.defined(), ValueError,
        "RoCo: loss.roco.fn_by_similarity is true but no teacher report embeddings were passed; pass them or set "
        "fn_by_similarity: false");
    BIUD_CHECK(!opt.by_entities || in.findings.defined(), ValueError,
               "RoCo: loss.roco.fn_by_entities is true but no finding sets were passed; pass them or set "
               "fn_by_entities: false");
  }
  FalseNegatives fn;
  if (opt.by_similarity || opt.by_entities)
    fn = detectFalseNegatives(in.report_embeddings, in.findings, bl, in.features.offset, opt);

  auto out = rocoLoss(in.features, tau, cfg_.mode == "none" ? torch::Tensor() : fn.mask, cfg_.mode, cfg_.alpha);
  if (fn.mask.defined()) {
    const int64_t n = fn.mask.size(1);
    out.metrics["fn_rate"] = offDiagonalRate(fn.mask, bl, n);
    if (fn.by_similarity.defined()) out.metrics["fn_rate_similarity"] = offDiagonalRate(fn.by_similarity, bl, n);
    if (fn.by_entities.defined()) out.metrics["fn_rate_entities"] = offDiagonalRate(fn.by_entities, bl, n);
  }
  if (in.true_findings.defined()) {
    // The truth: the same identical-sets rule on the true finding sets (diagonal excluded).
    const auto truth = detectFalseNegatives({}, in.true_findings, bl, in.features.offset, {false, 0.0, true}).mask;
    const int64_t n = truth.size(1);
    BIUD_CHECK(!fn.mask.defined() || fn.mask.size(1) == n, ValueError,
               "RoCo: true_findings {} cover another batch than the false-negative evidence ({} columns)",
               shapeOf(in.true_findings), fn.mask.size(1));
    torch::NoGradGuard ng;
    const auto nTrue = truth.sum().to(torch::kDouble);
    out.metrics["fn_rate_true"] = offDiagonalRate(truth, bl, n);
    if (fn.mask.defined()) {
      const auto flagged = fn.mask.to(truth.device());
      const auto hit = flagged.logical_and(truth).sum().to(torch::kDouble);
      const auto nFlagged = flagged.sum().to(torch::kDouble);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      out.metrics["fn_precision"] = scalarOf(torch::where(nFlagged > 0, hit / nFlagged.clamp_min(1), nan));
      out.metrics["fn_recall"] = scalarOf(torch::where(nTrue > 0, hit / nTrue.clamp_min(1), nan));
    }
  }
  return out;
}

}  // namespace biud::losses
