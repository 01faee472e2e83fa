#pragma once
/// \file Retrieval.h
/// Cross-modal retrieval metrics from a similarity matrix S (queries x gallery): Recall@K,
/// mean average precision and median rank, in both directions (S and its transpose).
/// Relevance: gallery item j is relevant to query i when their ids are equal (by default
/// ids are the row/column indices, i.e. the diagonal of a square matrix). Ties are counted
/// pessimistically: a relevant item's rank is 1 + the number of items scoring strictly higher
/// + the number of other items with an equal score, so constant similarities never look good.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace biud::eval {

using Matrix = std::vector<std::vector<double>>;

struct RetrievalScores {
  std::vector<int> ks = {1, 5, 10};
  std::vector<double> recall;  ///< fraction of queries with a relevant item in the top K (per ks)
  double map = 0;              ///< mean over queries of average precision
  double medianRank = 0;       ///< median over queries of the best relevant item's rank (1-based)
  double meanRank = 0;
  std::size_t queries = 0;
  nlohmann::json toJson() const;
};

/// One direction: rows are queries. `queryIds`/`galleryIds` empty = indices. Every query needs at
/// least one relevant item (ValueError naming the query otherwise); NaN similarities are errors.
RetrievalScores retrievalScores(const Matrix& sim, const std::vector<std::string>& queryIds = {},
                                const std::vector<std::string>& galleryIds = {},
                                const std::vector<int>& ks = {1, 5, 10});

/// Cosine similarities between the rows of `a` and the rows of `b` (same width; zero rows are errors).
Matrix cosineSimilarity(const Matrix& a, const Matrix& b);
Matrix transpose(const Matrix& m);

}  // namespace biud::eval
