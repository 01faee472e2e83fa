#include "biud/eval/DeLong.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "biud/core/Error.h"

namespace biud::eval {

std::vector<double> midranks(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<std::size_t> o(n);
  std::iota(o.begin(), o.end(), 0);
  std::sort(o.begin(), o.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> r(n);
  std::size_t i = 0;
  while (i < n) {
    std::size_t j = i;
    while (j < n && x[o[j]] == x[o[i]]) ++j;
    // Positions i..j-1 (0-based) share the mean 1-based rank.
    const double mid = 0.5 * (static_cast<double>(i) + static_cast<double>(j - 1)) + 1.0;
    for (std::size_t k = i; k < j; ++k) r[o[k]] = mid;
    i = j;
  }
  return r;
}

double normalQuantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
    (cdf < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

namespace {

/// Structural components of one model: V10 (one per positive), V01 (one per negative), AUC.
struct Components {
  std::vector<double> v10, v01;
  double auc = 0;
};

Components components(const std::vector<double>& s, const std::vector<int>& y) {
  std::vector<double> pos, neg;
  for (std::size_t i = 0; i < s.size(); ++i) (y[i] ? pos : neg).push_back(s[i]);
  const double m = static_cast<double>(pos.size()), n = static_cast<double>(neg.size());
  std::vector<double> all = pos;
  all.insert(all.end(), neg.begin(), neg.end());
  const auto tz = midranks(all), tx = midranks(pos), ty = midranks(neg);
  Components c;
  double sumPos = 0;
  for (std::size_t i = 0; i < pos.size(); ++i) {
    c.v10.push_back((tz[i] - tx[i]) / n);
    sumPos += tz[i];
  }
  for (std::size_t j = 0; j < neg.size(); ++j) c.v01.push_back(1.0 - (tz[pos.size() + j] - ty[j]) / m);
  c.auc = sumPos / (m * n) - (m + 1.0) / (2.0 * n);
  return c;
}

double cov(const std::vector<double>& a, const std::vector<double>& b) {
  const double k = static_cast<double>(a.size());
  if (a.size() < 2) return 0;
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / k, mb = std::accumulate(b.begin(), b.end(), 0.0) / k;
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - ma) * (b[i] - mb);
  return s / (k - 1.0);
}

void check(const std::vector<double>& s, const std::vector<int>& y, std::int64_t& nPos, std::int64_t& nNeg) {
  BIUD_CHECK(s.size() == y.size(), ValueError, "DeLong: {} scores but {} labels", s.size(), y.size());
  nPos = nNeg = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    BIUD_CHECK(std::isfinite(s[i]), ValueError, "DeLong: score {} at index {} is not finite", s[i], i);
    BIUD_CHECK(y[i] == 0 || y[i] == 1, ValueError, "DeLong: label {} at index {} is not 0 or 1", y[i], i);
    (y[i] ? nPos : nNeg)++;
  }
  BIUD_CHECK(nPos > 0 && nNeg > 0, ValueError, "DeLong needs positives and negatives ({} positive, {} negative)", nPos,
             nNeg);
}

}  // namespace

double delongVariance(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::int64_t p, q;
  check(scores, labels, p, q);
  const Components c = components(scores, labels);
  return cov(c.v10, c.v10) / static_cast<double>(p) + cov(c.v01, c.v01) / static_cast<double>(q);
}

DeLongResult delongTest(const std::vector<double>& s1, const std::vector<double>& s2, const std::vector<int>& y,
                        double ci) {
  DeLongResult r;
  check(s1, y, r.nPos, r.nNeg);
  check(s2, y, r.nPos, r.nNeg);
  BIUD_CHECK(ci > 0 && ci < 1, ValueError, "DeLong: confidence level {} must lie in (0, 1)", ci);
  const Components a = components(s1, y), b = components(s2, y);
  const double m = static_cast<double>(r.nPos), n = static_cast<double>(r.nNeg);
  r.auc1 = a.auc;
  r.auc2 = b.auc;
  r.diff = a.auc - b.auc;
  r.var1 = cov(a.v10, a.v10) / m + cov(a.v01, a.v01) / n;
  r.var2 = cov(b.v10, b.v10) / m + cov(b.v01, b.v01) / n;
  r.cov = cov(a.v10, b.v10) / m + cov(a.v01, b.v01) / n;
  r.variance = std::max(0.0, r.var1 + r.var2 - 2.0 * r.cov);
  const double sd = std::sqrt(r.variance);
  if (sd > 0) {
    r.z = r.diff / sd;
    r.p = std::erfc(std::fabs(r.z) / std::sqrt(2.0));
  } else {
    r.z = r.diff == 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    r.p = r.diff == 0 ? 1.0 : 0.0;
  }
  const double q = normalQuantile(0.5 + ci / 2.0);
  r.ciLo = r.diff - q * sd;
  r.ciHi = r.diff + q * sd;
  return r;
}

}  // namespace biud::eval
