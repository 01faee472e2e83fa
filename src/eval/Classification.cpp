#include "biud/eval/Classification.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"

namespace biud::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void checkInputs(const std::vector<double>& scores, const std::vector<int>& labels) {
  BIUD_CHECK(scores.size() == labels.size(), ValueError, "scores ({}) and labels ({}) differ in length", scores.size(),
             labels.size());
  for (std::size_t i = 0; i < scores.size(); ++i) {
    BIUD_CHECK(std::isfinite(scores[i]), ValueError, "score {} at index {} is not finite", scores[i], i);
    BIUD_CHECK(labels[i] == 0 || labels[i] == 1, ValueError, "label {} at index {} is not 0 or 1", labels[i], i);
  }
}

/// Indices sorted by score, highest first (ties keep index order; ties are grouped anyway).
std::vector<std::size_t> orderDesc(const double* scores, const std::vector<std::size_t>& idx) {
  std::vector<std::size_t> o = idx;
  std::stable_sort(o.begin(), o.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return o;
}

struct CurveStats {
  double auroc = kNaN, ap = kNaN, pos = 0, neg = 0;
};

/// AUROC (trapezoids over tied-score groups) and AP (sum of recall steps times precision) in one
/// pass over the rows in descending-score order; `w` are per-row weights (bootstrap counts) or null.
CurveStats curveStats(const double* scores, const int* labels, const std::vector<std::size_t>& order, const double* w) {
  double tp = 0, fp = 0, tpPrev = 0, fpPrev = 0, area = 0, ap = 0;
  const std::size_t n = order.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t r = order[i];
    const double wi = w ? w[r] : 1.0;
    if (labels[r])
      tp += wi;
    else
      fp += wi;
    if (i + 1 == n || scores[order[i + 1]] != scores[r]) {
      if (tp + fp > 0) {
        area += (fp - fpPrev) * (tp + tpPrev) * 0.5;
        if (tp > tpPrev) ap += (tp - tpPrev) * (tp / (tp + fp));
      }
      tpPrev = tp;
      fpPrev = fp;
    }
  }
  CurveStats s;
  s.pos = tp;
  s.neg = fp;
  if (tp > 0 && fp > 0) s.auroc = area / (tp * fp);
  if (tp > 0) s.ap = ap / tp;
  return s;
}

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

RocCurve rocCurve(const std::vector<double>& scores, const std::vector<int>& labels, bool dropIntermediate) {
  checkInputs(scores, labels);
  const auto order = orderDesc(scores.data(), iota(scores.size()));
  std::vector<double> tps, fps, thr;
  double tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::size_t r = order[i];
    (labels[r] ? tp : fp) += 1;
    if (i + 1 == order.size() || scores[order[i + 1]] != scores[r]) {
      tps.push_back(tp);
      fps.push_back(fp);
      thr.push_back(scores[r]);
    }
  }
  if (dropIntermediate && fps.size() > 2) {
    // Keep the ends and every point where the second difference of fps or tps is non-zero
    // (drops points on straight segments; same rule as sklearn).
    std::vector<double> t2, f2, h2;
    for (std::size_t i = 0; i < fps.size(); ++i) {
      bool keep = i == 0 || i + 1 == fps.size();
      if (!keep) {
        const double dF = fps[i + 1] - 2 * fps[i] + fps[i - 1], dT = tps[i + 1] - 2 * tps[i] + tps[i - 1];
        keep = dF != 0 || dT != 0;
      }
      if (keep) {
        t2.push_back(tps[i]);
        f2.push_back(fps[i]);
        h2.push_back(thr[i]);
      }
    }
    tps.swap(t2);
    fps.swap(f2);
    thr.swap(h2);
  }
  RocCurve c;
  c.fpr.push_back(0);
  c.tpr.push_back(0);
  c.thresholds.push_back(std::numeric_limits<double>::infinity());
  const double P = tps.empty() ? 0 : tps.back(), N = fps.empty() ? 0 : fps.back();
  for (std::size_t i = 0; i < tps.size(); ++i) {
    c.fpr.push_back(fps[i]);
    c.tpr.push_back(tps[i]);
    c.thresholds.push_back(thr[i]);
  }
  for (auto& v : c.fpr) v = N > 0 ? v / N : kNaN;
  for (auto& v : c.tpr) v = P > 0 ? v / P : kNaN;
  return c;
}

double rocAuc(const std::vector<double>& scores, const std::vector<int>& labels) {
  checkInputs(scores, labels);
  const auto order = orderDesc(scores.data(), iota(scores.size()));
  return curveStats(scores.data(), labels.data(), order, nullptr).auroc;
}

double averagePrecision(const std::vector<double>& scores, const std::vector<int>& labels) {
  checkInputs(scores, labels);
  const auto order = orderDesc(scores.data(), iota(scores.size()));
  return curveStats(scores.data(), labels.data(), order, nullptr).ap;
}

Confusion confusionAt(const std::vector<double>& scores, const std::vector<int>& labels, double threshold) {
  checkInputs(scores, labels);
  Confusion c;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const bool p = scores[i] >= threshold;
    if (labels[i])
      (p ? c.tp : c.fn)++;
    else
      (p ? c.fp : c.tn)++;
  }
  return c;
}

namespace {
ThresholdMetrics metricsFromCounts(double tp, double fp, double tn, double fn) {
  ThresholdMetrics m;
  const double n = tp + fp + tn + fn;
  m.accuracy = n > 0 ? (tp + tn) / n : kNaN;
  m.precision = tp + fp > 0 ? tp / (tp + fp) : 0.0;
  m.f1 = 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
  m.sensitivity = tp + fn > 0 ? tp / (tp + fn) : kNaN;
  m.specificity = tn + fp > 0 ? tn / (tn + fp) : kNaN;
  return m;
}
}  // namespace

ThresholdMetrics thresholdMetrics(const Confusion& c) {
  return metricsFromCounts(static_cast<double>(c.tp), static_cast<double>(c.fp), static_cast<double>(c.tn),
                           static_cast<double>(c.fn));
}

double youdenThreshold(const std::vector<double>& scores, const std::vector<int>& labels) {
  const RocCurve c = rocCurve(scores, labels, /*dropIntermediate=*/false);
  if (c.fpr.size() < 2 || std::isnan(c.fpr.back()) || std::isnan(c.tpr.back())) return kNaN;
  std::size_t best = 0;
  double bestJ = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < c.fpr.size(); ++i) {
    const double j = c.tpr[i] - c.fpr[i];
    if (j > bestJ) {
      bestJ = j;
      best = i;
    }
  }
  // The first point (threshold +inf, J = 0) wins only when nothing beats chance; then predict
  // positive only for the highest score rather than never.
  if (best == 0) best = 1;
  return c.thresholds[best];
}

std::map<std::string, double> validationThresholds(const std::vector<std::vector<double>>& probs,
                                                   const std::vector<std::vector<double>>& labels,
                                                   const std::vector<std::string>& findings,
                                                   std::vector<std::string>* warnings) {
  BIUD_CHECK(probs.size() == labels.size(), ValueError, "validation thresholds: {} prediction rows but {} label rows",
             probs.size(), labels.size());
  std::map<std::string, double> out;
  for (std::size_t l = 0; l < findings.size(); ++l) {
    std::vector<double> s;
    std::vector<int> y;
    for (std::size_t i = 0; i < probs.size(); ++i) {
      BIUD_CHECK(probs[i].size() == findings.size() && labels[i].size() == findings.size(), ValueError,
                 "validation thresholds: row {} has {} predictions and {} labels for {} findings", i, probs[i].size(),
                 labels[i].size(), findings.size());
      if (!std::isnan(labels[i][l])) {
        s.push_back(probs[i][l]);
        y.push_back(labels[i][l] > 0.5 ? 1 : 0);
      }
    }
    double t = s.empty() ? kNaN : youdenThreshold(s, y);
    if (!std::isfinite(t)) {
      if (warnings)
        warnings->push_back(fmt::format("finding `{}`: validation set has one class; threshold 0.5", findings[l]));
      t = 0.5;
    }
    out[findings[l]] = t;
  }
  return out;
}

double sensitivityAtSpecificity(const RocCurve& roc, double specificity) {
  double best = kNaN;
  for (std::size_t i = 0; i < roc.fpr.size(); ++i)
    if (1.0 - roc.fpr[i] >= specificity - 1e-12 && (std::isnan(best) || roc.tpr[i] > best)) best = roc.tpr[i];
  return best;
}

double specificityAtSensitivity(const RocCurve& roc, double sensitivity) {
  double best = kNaN;
  for (std::size_t i = 0; i < roc.fpr.size(); ++i)
    if (roc.tpr[i] >= sensitivity - 1e-12 && (std::isnan(best) || 1.0 - roc.fpr[i] > best)) best = 1.0 - roc.fpr[i];
  return best;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const double f = pos - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * f;
}

const std::vector<std::string>& classificationMetricNames() {
  static const std::vector<std::string> names = {"auroc",       "ap",          "f1",       "accuracy",
                                                 "sensitivity", "specificity", "precision"};
  return names;
}

namespace {

double metricOf(const LabelReport& r, const std::string& m) {
  if (m == "auroc") return r.auroc;
  if (m == "ap") return r.ap;
  if (m == "f1") return r.f1;
  if (m == "accuracy") return r.accuracy;
  if (m == "sensitivity") return r.sensitivity;
  if (m == "specificity") return r.specificity;
  if (m == "precision") return r.precision;
  return kNaN;
}

/// Per-finding data prepared once: the rows with a known label, sorted by score.
struct Prepared {
  std::vector<std::size_t> order;  ///< known rows, descending score
  std::vector<int> label;          ///< per row (0 for unknown rows; they are never visited)
  std::vector<double> score;       ///< per row
  double threshold = 0;
};

/// Metrics of one finding under row weights (null = all 1): {auroc, ap, f1, acc, sens, spec, prec}.
std::vector<double> weightedMetrics(const Prepared& p, const double* w, double* posOut, double* negOut) {
  const CurveStats s = curveStats(p.score.data(), p.label.data(), p.order, w);
  double tp = 0, fp = 0, tn = 0, fn = 0;
  for (std::size_t r : p.order) {
    const double wi = w ? w[r] : 1.0;
    if (wi == 0) continue;
    const bool pred = p.score[r] >= p.threshold;
    if (p.label[r])
      (pred ? tp : fn) += wi;
    else
      (pred ? fp : tn) += wi;
  }
  const ThresholdMetrics m = metricsFromCounts(tp, fp, tn, fn);
  if (posOut) *posOut = s.pos;
  if (negOut) *negOut = s.neg;
  return {s.auroc, s.ap, m.f1, m.accuracy, m.sensitivity, m.specificity, m.precision};
}

}  // namespace

const LabelReport* ClassificationReport::find(const std::string& name) const {
  for (const auto& l : labels)
    if (l.name == name) return &l;
  return nullptr;
}

ClassificationReport evaluateClassification(const std::vector<std::vector<double>>& probs,
                                            const std::vector<std::vector<double>>& labels,
                                            const std::vector<std::string>& names, const ClassificationOptions& opt) {
  const std::size_t n = probs.size(), L = names.size();
  BIUD_CHECK(labels.size() == n, ValueError, "{} prediction rows but {} label rows", n, labels.size());
  BIUD_CHECK(opt.ci > 0 && opt.ci < 1, ValueError, "confidence level {} must lie in (0, 1)", opt.ci);
  BIUD_CHECK(opt.bootstrap >= 0, ValueError, "bootstrap resamples {} must be >= 0", opt.bootstrap);
  BIUD_CHECK(opt.thresholdMode == "youden" || opt.thresholdMode == "fixed" || opt.thresholdMode == "given", ValueError,
             "threshold mode `{}`: use youden, fixed or given", opt.thresholdMode);
  const auto& metricNames = classificationMetricNames();
  ClassificationReport rep;
  rep.bootstrap = opt.bootstrap;
  rep.ciLevel = opt.ci;
  rep.seed = opt.seed;
  rep.thresholdMode = opt.thresholdMode;

  std::vector<Prepared> prep(L);
  for (std::size_t l = 0; l < L; ++l) {
    LabelReport r;
    r.name = names[l];
    Prepared& p = prep[l];
    p.label.assign(n, 0);
    p.score.assign(n, 0.0);
    std::vector<std::size_t> known;
    std::vector<double> ks;
    std::vector<int> kl;
    for (std::size_t i = 0; i < n; ++i) {
      BIUD_CHECK(probs[i].size() == L && labels[i].size() == L, ValueError,
                 "row {} has {} predictions and {} labels, expected {}", i, probs[i].size(), labels[i].size(), L);
      const double y = labels[i][l];
      if (std::isnan(y)) {
        ++r.nUnknown;
        continue;
      }
      BIUD_CHECK(y == 0 || y == 1, ValueError, "finding `{}`, row {}: label {} is not 0, 1 or empty", names[l], i, y);
      BIUD_CHECK(std::isfinite(probs[i][l]), ValueError, "finding `{}`, row {}: prediction {} is not finite", names[l],
                 i, probs[i][l]);
      p.label[i] = static_cast<int>(y);
      p.score[i] = probs[i][l];
      known.push_back(i);
      ks.push_back(probs[i][l]);
      kl.push_back(static_cast<int>(y));
      (y == 1 ? r.nPos : r.nNeg)++;
    }
    p.order = orderDesc(p.score.data(), known);
    // Operating point.
    if (opt.thresholdMode == "fixed") {
      p.threshold = opt.fixedThreshold;
    } else if (opt.thresholdMode == "given") {
      auto it = opt.thresholds.find(names[l]);
      BIUD_CHECK(it != opt.thresholds.end(), ValueError,
                 "no threshold given for finding `{}` (validation set lacks it?)", names[l]);
      p.threshold = it->second;
    } else {
      p.threshold = ks.empty() ? kNaN : youdenThreshold(ks, kl);
    }
    if (std::isnan(p.threshold)) {
      r.warnings.push_back(
          fmt::format("finding `{}`: only one class among {} known labels ({} positive); AUROC and the Youden "
                      "threshold are undefined, threshold 0.5 used",
                      names[l], r.nPos + r.nNeg, r.nPos));
      p.threshold = 0.5;
    } else if (r.nPos == 0 || r.nNeg == 0) {
      r.warnings.push_back(
          fmt::format("finding `{}`: only one class among {} known labels ({} positive); AUROC is undefined", names[l],
                      r.nPos + r.nNeg, r.nPos));
    }
    r.threshold = p.threshold;
    const auto m = weightedMetrics(p, nullptr, nullptr, nullptr);
    r.auroc = m[0];
    r.ap = m[1];
    r.f1 = m[2];
    r.accuracy = m[3];
    r.sensitivity = m[4];
    r.specificity = m[5];
    r.precision = m[6];
    for (const auto& w : r.warnings) log::warn("eval", "{}", w);
    rep.labels.push_back(std::move(r));
  }

  const std::size_t M = metricNames.size();
  for (std::size_t k = 0; k < M; ++k) {
    double s = 0;
    int c = 0;
    for (const auto& r : rep.labels) {
      // Only findings with both classes enter the macro (the bootstrap macro uses the same set).
      if (r.nPos == 0 || r.nNeg == 0) continue;
      const double v = metricOf(r, metricNames[k]);
      if (std::isfinite(v)) {
        s += v;
        ++c;
      }
    }
    rep.macro[metricNames[k]] = c ? s / c : kNaN;
  }

  if (opt.bootstrap > 0 && n > 0) {
    // samples[l][k] = metric k of finding l over the usable resamples; macro[k] likewise.
    std::vector<std::vector<std::vector<double>>> samples(L, std::vector<std::vector<double>>(M));
    std::vector<std::vector<double>> macroSamples(M);
    Rng rng(deriveSeed(opt.seed, "bootstrap"));
    std::vector<double> w(n);
    std::optional<Progress> bar;
    if (opt.progress) bar.emplace("bootstrap", static_cast<std::uint64_t>(opt.bootstrap), "resamples");
    for (int b = 0; b < opt.bootstrap; ++b) {
      std::fill(w.begin(), w.end(), 0.0);
      for (std::size_t i = 0; i < n; ++i)
        w[static_cast<std::size_t>(rng.uniformInt(0, static_cast<std::int64_t>(n) - 1))] += 1;
      std::vector<double> macroSum(M, 0.0);
      std::vector<int> macroCnt(M, 0);
      bool macroOk = true;
      for (std::size_t l = 0; l < L; ++l) {
        auto& r = rep.labels[l];
        double pos = 0, neg = 0;
        const auto m = weightedMetrics(prep[l], w.data(), &pos, &neg);
        if (pos == 0 || neg == 0) {
          ++r.bootstrapSkipped;
          // Findings whose AUROC is defined on the full data must be defined in every resample
          // that enters the macro CI; otherwise the macro would average different findings.
          if (std::isfinite(r.auroc)) macroOk = false;
          continue;
        }
        ++r.bootstrapUsed;
        for (std::size_t k = 0; k < M; ++k) {
          samples[l][k].push_back(m[k]);
          if (std::isfinite(metricOf(r, metricNames[k])) && std::isfinite(m[k])) {
            macroSum[k] += m[k];
            ++macroCnt[k];
          }
        }
      }
      if (macroOk) {
        for (std::size_t k = 0; k < M; ++k)
          if (macroCnt[k] > 0) macroSamples[k].push_back(macroSum[k] / macroCnt[k]);
      } else {
        ++rep.macroBootstrapSkipped;
      }
      if (bar) bar->advance();
    }
    if (bar) bar->finish();
    const double a = (1.0 - opt.ci) / 2.0;
    auto interval = [&](const std::vector<double>& v) {
      std::vector<double> f;
      for (double x : v)
        if (std::isfinite(x)) f.push_back(x);
      return f.empty() ? Interval{kNaN, kNaN} : Interval{percentile(f, a), percentile(f, 1.0 - a)};
    };
    for (std::size_t l = 0; l < L; ++l) {
      auto& r = rep.labels[l];
      for (std::size_t k = 0; k < M; ++k) r.ci[metricNames[k]] = interval(samples[l][k]);
      if (r.bootstrapSkipped > 0 && r.bootstrapUsed > 0)
        log::info("eval", "finding `{}`: {} of {} bootstrap resamples had one class and were skipped", r.name,
                  r.bootstrapSkipped, opt.bootstrap);
    }
    for (std::size_t k = 0; k < M; ++k) rep.macroCi[metricNames[k]] = interval(macroSamples[k]);
  }
  return rep;
}

namespace {
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json interval(const Interval& i) { return nlohmann::json::array({num(i.lo), num(i.hi)}); }
}  // namespace

nlohmann::json ClassificationReport::toJson() const {
  nlohmann::json j;
  nlohmann::json per = nlohmann::json::object();
  for (const auto& r : labels) {
    nlohmann::json o;
    for (const auto& m : classificationMetricNames()) {
      o[m] = num(metricOf(r, m));
      auto it = r.ci.find(m);
      if (it != r.ci.end()) o[m + "_ci"] = interval(it->second);
    }
    o["threshold"] = num(r.threshold);
    o["n_pos"] = r.nPos;
    o["n_neg"] = r.nNeg;
    o["n_unknown"] = r.nUnknown;
    if (bootstrap > 0) {
      o["bootstrap_used"] = r.bootstrapUsed;
      o["bootstrap_skipped"] = r.bootstrapSkipped;
    }
    if (!r.warnings.empty()) o["warnings"] = r.warnings;
    per[r.name] = o;
  }
  j["per_label"] = per;
  nlohmann::json mac;
  for (const auto& [k, v] : macro) {
    mac[k] = num(v);
    auto it = macroCi.find(k);
    if (it != macroCi.end()) mac[k + "_ci"] = interval(it->second);
  }
  j["macro"] = mac;
  j["bootstrap"] = {{"resamples", bootstrap},
                    {"ci", ciLevel},
                    {"seed", seed},
                    {"method", "percentile"},
                    {"macro_skipped", macroBootstrapSkipped}};
  j["threshold_mode"] = thresholdMode;
  return j;
}

}  // namespace biud::eval
