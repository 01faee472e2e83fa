#include "biud/eval/Retrieval.h"

#include <algorithm>
#include <cmath>

#include "biud/core/Error.h"
#include "biud/eval/Classification.h"

namespace biud::eval {

nlohmann::json RetrievalScores::toJson() const {
  nlohmann::json j;
  for (std::size_t i = 0; i < ks.size(); ++i) j["recall@" + std::to_string(ks[i])] = recall[i];
  j["map"] = map;
  j["median_rank"] = medianRank;
  j["mean_rank"] = meanRank;
  j["queries"] = queries;
  return j;
}

RetrievalScores retrievalScores(const Matrix& sim, const std::vector<std::string>& qIds,
                                const std::vector<std::string>& gIds, const std::vector<int>& ks) {
  RetrievalScores out;
  out.ks = ks;
  out.recall.assign(ks.size(), 0.0);
  const std::size_t nq = sim.size();
  BIUD_CHECK(nq > 0, ValueError, "retrieval: empty similarity matrix");
  const std::size_t ng = sim[0].size();
  BIUD_CHECK(qIds.empty() || qIds.size() == nq, ValueError, "retrieval: {} query ids for {} rows", qIds.size(), nq);
  BIUD_CHECK(gIds.empty() || gIds.size() == ng, ValueError, "retrieval: {} gallery ids for {} columns", gIds.size(),
             ng);
  auto qid = [&](std::size_t i) { return qIds.empty() ? std::to_string(i) : qIds[i]; };
  auto gid = [&](std::size_t j) { return gIds.empty() ? std::to_string(j) : gIds[j]; };
  std::vector<double> bestRanks;
  double apSum = 0;
  for (std::size_t i = 0; i < nq; ++i) {
    const auto& row = sim[i];
    BIUD_CHECK(row.size() == ng, ValueError, "retrieval: row {} has {} columns, expected {}", i, row.size(), ng);
    for (std::size_t j = 0; j < ng; ++j)
      BIUD_CHECK(std::isfinite(row[j]), ValueError, "retrieval: similarity [{}][{}] = {} is not finite", i, j, row[j]);
    std::vector<double> rel;  // scores of relevant items
    for (std::size_t j = 0; j < ng; ++j)
      if (gid(j) == qid(i)) rel.push_back(row[j]);
    BIUD_CHECK(!rel.empty(), ValueError, "retrieval: query `{}` has no relevant gallery item (ids must match)", qid(i));
    // Pessimistic rank of each relevant item among all items, and the number of relevant items
    // ranked at or above it, for AP.
    std::vector<double> ranks;
    for (double s : rel) {
      std::size_t higherOrEqual = 0;
      for (std::size_t j = 0; j < ng; ++j)
        if (row[j] >= s) ++higherOrEqual;
      ranks.push_back(static_cast<double>(higherOrEqual));  // includes itself and ties
    }
    std::sort(ranks.begin(), ranks.end());
    double ap = 0;
    for (std::size_t k = 0; k < ranks.size(); ++k) {
      // Relevant items at or above rank r: those with rank <= r (ties share the worst rank).
      const double relAtOrAbove =
          static_cast<double>(std::upper_bound(ranks.begin(), ranks.end(), ranks[k]) - ranks.begin());
      ap += relAtOrAbove / ranks[k];
    }
    apSum += ap / static_cast<double>(ranks.size());
    bestRanks.push_back(ranks.front());
    for (std::size_t k = 0; k < ks.size(); ++k)
      if (ranks.front() <= ks[k]) out.recall[k] += 1;
  }
  for (auto& r : out.recall) r /= static_cast<double>(nq);
  out.map = apSum / static_cast<double>(nq);
  out.medianRank = percentile(bestRanks, 0.5);
  double s = 0;
  for (double r : bestRanks) s += r;
  out.meanRank = s / static_cast<double>(nq);
  out.queries = nq;
  return out;
}

Matrix transpose(const Matrix& m) {
  if (m.empty()) return {};
  Matrix t(m[0].size(), std::vector<double>(m.size()));
  for (std::size_t i = 0; i < m.size(); ++i)
    for (std::size_t j = 0; j < m[i].size(); ++j) t[j][i] = m[i][j];
  return t;
}

Matrix cosineSimilarity(const Matrix& a, const Matrix& b) {
  BIUD_CHECK(!a.empty() && !b.empty(), ValueError, "cosine similarity: empty embedding matrix");
  const std::size_t d = a[0].size();
  auto normed = [&](const Matrix& m, const char* which) {
    Matrix o = m;
    for (std::size_t i = 0; i < o.size(); ++i) {
      BIUD_CHECK(o[i].size() == d, ValueError, "{} embeddings: row {} has width {}, expected {}", which, i, o[i].size(),
                 d);
      double n = 0;
      for (double v : o[i]) n += v * v;
      n = std::sqrt(n);
      BIUD_CHECK(n > 0 && std::isfinite(n), ValueError, "{} embeddings: row {} has zero or non-finite norm", which, i);
      for (double& v : o[i]) v /= n;
    }
    return o;
  };
  const Matrix an = normed(a, "first"), bn = normed(b, "second");
  Matrix s(a.size(), std::vector<double>(b.size()));
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) {
      double v = 0;
      for (std::size_t k = 0; k < d; ++k) v += an[i][k] * bn[j][k];
      s[i][j] = v;
    }
  return s;
}

}  // namespace biud::eval
