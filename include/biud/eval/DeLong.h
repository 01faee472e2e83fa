#pragma once
/// \file DeLong.h
/// DeLong's test for two correlated AUROCs (the same cases scored by two models), with the fast
/// midrank algorithm of Sun & Xu (2014): O(n log n) per model instead of the O(m n) placement
/// comparisons. Ties count one half, as in the AUROC itself.
#include <cstdint>
#include <vector>

namespace biud::eval {

struct DeLongResult {
  double auc1 = 0, auc2 = 0;
  double diff = 0;            ///< auc1 - auc2
  double variance = 0;        ///< variance of the difference
  double z = 0;               ///< diff / sqrt(variance); NaN when the variance is 0
  double p = 0;               ///< two-sided p-value (1 when both models are identical)
  double ciLo = 0, ciHi = 0;  ///< CI of the difference at `ci`
  double var1 = 0, var2 = 0, cov = 0;
  std::int64_t nPos = 0, nNeg = 0;
};

/// Compare two score vectors on the same 0/1 labels. ValueError with one class or mismatched sizes.
DeLongResult delongTest(const std::vector<double>& scores1, const std::vector<double>& scores2,
                        const std::vector<int>& labels, double ci = 0.95);

/// DeLong variance of one AUROC (for a normal-approximation CI).
double delongVariance(const std::vector<double>& scores, const std::vector<int>& labels);

/// Midranks (1-based, ties get the average rank), as used by the fast algorithm.
std::vector<double> midranks(const std::vector<double>& x);

/// Standard normal quantile (inverse CDF) for p in (0,1).
double normalQuantile(double p);

}  // namespace biud::eval
