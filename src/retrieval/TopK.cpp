#include "biud/retrieval/TopK.h"

#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::retrieval {

TopKResult blockedTopK(const torch::Tensor& queries, std::int64_t dbRows, const BlockFn& block, const TopKOptions& opt) {
  BIUD_CHECK(queries.dim() == 2, ValueError, "queries must be [N, d], got {} dims", queries.dim());
  BIUD_CHECK(dbRows > 0, ValueError, "empty retrieval database");
  BIUD_CHECK(opt.k >= 1, ValueError, "top-K needs k >= 1, got {}", opt.k);
  const std::int64_t n = queries.size(0);
  const std::int64_t k = std::min<std::int64_t>(opt.k, dbRows);
  auto fopts = queries.options().dtype(torch::kFloat32);
  torch::Tensor bestS = torch::full({n, k}, -std::numeric_limits<float>::infinity(), fopts);
  torch::Tensor bestI = torch::full({n, k}, std::numeric_limits<std::int64_t>::max(), fopts.dtype(torch::kInt64));
  torch::NoGradGuard ng;
  const auto q = queries.to(torch::kFloat32);
  for (std::int64_t b0 = 0; b0 < dbRows; b0 += opt.dbBlock) {
    const std::int64_t b1 = std::min(dbRows, b0 + opt.dbBlock);
    torch::Tensor db = block(b0, b1).to(q.device(), torch::kFloat32);
    BIUD_CHECK(db.dim() == 2 && db.size(0) == b1 - b0 && db.size(1) == q.size(1), ValueError,
               "database block [{}, {}) has shape {}, expected [{}, {}]", b0, b1, c10::str(db.sizes()), b1 - b0, q.size(1));
    const auto idx = torch::arange(b0, b1, fopts.dtype(torch::kInt64));
    for (std::int64_t q0 = 0; q0 < n; q0 += opt.queryBlock) {
      const std::int64_t q1 = std::min(n, q0 + opt.queryBlock);
      auto s = torch::matmul(q.slice(0, q0, q1), db.t());                        // [nq, nb]
      auto candS = torch::cat({bestS.slice(0, q0, q1), s}, 1);
      auto candI = torch::cat({bestI.slice(0, q0, q1), idx.unsqueeze(0).expand({q1 - q0, b1 - b0})}, 1);
      // Deterministic ties: sort by index first, then a stable sort by score.
      auto byIdx = std::get<1>(candI.sort(/*stable=*/true, 1, /*descending=*/false));
      candS = candS.gather(1, byIdx);
      candI = candI.gather(1, byIdx);
      auto order = std::get<1>(candS.sort(/*stable=*/true, 1, /*descending=*/true)).slice(1, 0, k);
      bestS.slice(0, q0, q1).copy_(candS.gather(1, order));
      bestI.slice(0, q0, q1).copy_(candI.gather(1, order));
    }
    if (opt.onBlock) opt.onBlock(b1);
  }
  return {bestS, bestI};
}

TopKResult blockedTopK(const torch::Tensor& queries, const torch::Tensor& database, const TopKOptions& opt) {
  BIUD_CHECK(database.dim() == 2, ValueError, "database must be [M, d], got {} dims", database.dim());
  return blockedTopK(queries, database.size(0), [&](std::int64_t b, std::int64_t e) { return database.slice(0, b, e); }, opt);
}

torch::Tensor sampleFromTopK(const TopKResult& r, double tau, torch::Generator gen) {
  BIUD_CHECK(tau > 0, ValueError, "retrieval sampling temperature must be > 0, got {}", tau);
  auto p = torch::softmax(r.scores / tau, 1);
  auto pick = torch::multinomial(p, 1, /*replacement=*/false, gen);
  return r.indices.gather(1, pick).squeeze(1);
}

}  // namespace biud::retrieval
