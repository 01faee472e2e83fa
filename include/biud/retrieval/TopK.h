#pragma once
/// \file TopK.h
/// Exact top-K inner-product search in bounded memory. The database is visited in blocks of
/// `dbBlock` rows; each block is scored against `queryBlock` queries at a time with one matrix
/// multiply into a reused [queryBlock, dbBlock] fp32 tile, and each query's running top-K is
/// updated from the tile in place:
///
///  - on the CPU by one scan of the tile per row (threads split the rows): a score enters only if
///    it beats the row's current K-th best, so after the first blocks almost every score costs one
///    comparison, and there is no sort, no concatenation and no index tensor;
///  - on other devices (CUDA) by `topk(K)` per tile and a 2K-wide stable merge (tensor ops).
///
/// Cost: the matrix multiply (torch::mm, i.e. MKL/oneDNN/cuBLAS) plus a few percent. Memory: the
/// tile (4096 x 8192 x 4 bytes = 128 MiB at the defaults), one database block converted to fp32,
/// and the [N, K] result — independent of the database size. At paper scale (20k CT reports x
/// 300k X-ray reports, d = 384) that is ~140 MiB next to the 440 MiB (460 MB) of fp32 database
/// features the caller holds (220 MiB in bf16/fp16).
///
/// Determinism and ties: results are sorted by score, best first; equal scores keep the lower
/// database index first, and a later row never displaces an earlier one of equal score. A score
/// is the fp32 torch::mm of the query tile and the database block, so the scores are
/// bit-identical to PyTorch's `torch.mm` over the same tiles (a different tiling may change the
/// last bit of a score, since BLAS kernels accumulate differently per shape);
/// tests/reference/retrieval_topk.py follows the same tiles and the same tie rule.
///
/// Precision: features are rounded once to `precision` (fp32, bf16 or fp16) and the scores are
/// computed in fp32 from the rounded values. bf16/fp16 halve the memory of a database the caller
/// stores in that dtype; they do not make the CPU search faster (the multiply still runs in
/// fp32), and they change which rows win when scores are close (docs/retrieval.md has the
/// measured agreement with fp32).
#include <cstdint>
#include <functional>
#include <string>

#include <torch/types.h>

namespace biud::retrieval {

struct TopKResult {
  torch::Tensor scores;   ///< [N, K] float32, best first
  torch::Tensor indices;  ///< [N, K] int64 database rows
};

/// Database block provider: rows [begin, end) as a [end-begin, d] tensor (e.g. read from disk).
using BlockFn = std::function<torch::Tensor(std::int64_t begin, std::int64_t end)>;

/// Precision the features are rounded to before the (fp32) scoring.
enum class Precision { Float32, BFloat16, Float16 };
/// "fp32" / "bf16" / "fp16".
std::string precisionName(Precision p);
/// Parse "fp32" | "bf16" | "fp16" (also "float32", "bfloat16", "float16"); ValueError otherwise.
Precision parsePrecision(const std::string& name);
torch::Dtype precisionDtype(Precision p);

/// How the running top-K is updated from each score tile.
enum class Merge {
  Auto,  ///< Scan on the CPU, Sort elsewhere
  Scan,  ///< threshold scan of the tile (CPU tensors only)
  Sort,  ///< topk per tile + stable 2K merge with tensor ops (any device; tests run it on the CPU)
};

struct TopKOptions {
  /// Results per query. A K above the number of database rows is clamped to it (the result has
  /// min(K, rows) columns); callers that must not clamp check first.
  std::int64_t k = 5;
  std::int64_t dbBlock = 8192;
  std::int64_t queryBlock = 4096;
  Precision precision = Precision::Float32;
  Merge merge = Merge::Auto;
  /// Called after each database block with the number of rows done (progress bars).
  std::function<void(std::int64_t done)> onBlock;
};

/// Top-K of queries [N, d] against `dbRows` database rows served by `block` (see the file
/// comment). DataError if a query or database row has a NaN/Inf feature; ValueError if scores
/// overflow fp32 (features of enormous magnitude) or shapes disagree.
TopKResult blockedTopK(const torch::Tensor& queries, std::int64_t dbRows, const BlockFn& block, const TopKOptions& opt);

/// Convenience: database held in memory (any float dtype; blocks are views, converted one at a time).
TopKResult blockedTopK(const torch::Tensor& queries, const torch::Tensor& database, const TopKOptions& opt);

/// Sample one of the top-K per query with probability softmax(score / tau) (METHOD §2 option).
torch::Tensor sampleFromTopK(const TopKResult& r, double tau, torch::Generator gen);

}  // namespace biud::retrieval
