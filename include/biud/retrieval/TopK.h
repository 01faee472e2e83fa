#pragma once
/// \file TopK.h
/// Top-K inner-product search in bounded memory: the database is visited in blocks, each block
/// scored against a block of queries with one matrix multiply, and a running top-K per query is
/// merged after every block. Memory is O(queryBlock x (dbBlock + K)), never N x M, so a
/// 300k-report database against 20k queries runs in a few hundred MB.
#include <torch/types.h>

#include <cstdint>
#include <functional>

namespace biud::retrieval {

struct TopKResult {
  torch::Tensor scores;   ///< [N, K] float, best first
  torch::Tensor indices;  ///< [N, K] int64 database rows
};

/// Database block provider: rows [begin, end) as a [end-begin, d] tensor (e.g. read from disk).
using BlockFn = std::function<torch::Tensor(std::int64_t begin, std::int64_t end)>;

struct TopKOptions {
  std::int64_t k = 5;
  std::int64_t dbBlock = 8192;
  std::int64_t queryBlock = 4096;
  /// Called after each database block with the number of rows done (progress bars).
  std::function<void(std::int64_t done)> onBlock;
};

/// Top-K of queries [N, d] against `dbRows` database rows served by `block`.
/// Ties are broken towards the lower database index (deterministic).
TopKResult blockedTopK(const torch::Tensor& queries, std::int64_t dbRows, const BlockFn& block, const TopKOptions& opt);

/// Convenience: database held in memory.
TopKResult blockedTopK(const torch::Tensor& queries, const torch::Tensor& database, const TopKOptions& opt);

/// Sample one of the top-K per query with probability softmax(score / tau) (METHOD §2 option).
torch::Tensor sampleFromTopK(const TopKResult& r, double tau, torch::Generator gen);

}  // namespace biud::retrieval
