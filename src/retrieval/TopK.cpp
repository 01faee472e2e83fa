#include "biud/retrieval/TopK.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::retrieval {

std::string precisionName(Precision p) {
  switch (p) {
    case Precision::BFloat16:
      return "bf16";
    case Precision::Float16:
      return "fp16";
    default:
      return "fp32";
  }
}

Precision parsePrecision(const std::string& name) {
  if (name == "fp32" || name == "float32") return Precision::Float32;
  if (name == "bf16" || name == "bfloat16") return Precision::BFloat16;
  if (name == "fp16" || name == "float16") return Precision::Float16;
  BIUD_THROW(ValueError, "feature precision `{}` is not one of fp32, bf16, fp16", name);
}

torch::Dtype precisionDtype(Precision p) {
  switch (p) {
    case Precision::BFloat16:
      return torch::kBFloat16;
    case Precision::Float16:
      return torch::kFloat16;
    default:
      return torch::kFloat32;
  }
}

namespace {

/// Features rounded to the precision, as fp32 on `dev` (no copy when they already are).
torch::Tensor asScoringFloat(const torch::Tensor& x, Precision p, const torch::Device& dev) {
  const auto dt = precisionDtype(p);
  if (x.scalar_type() == dt) return x.to(dev, torch::kFloat32);
  return x.to(dev, dt).to(torch::kFloat32);
}

/// In slices of rows: isfinite() makes |x| and two bool tensors (1.75x the slice) at once.
void requireFinite(const torch::Tensor& x, std::int64_t firstRow, const char* what) {
  constexpr std::int64_t kSlice = 16384;
  for (std::int64_t r = 0; r < x.size(0); r += kSlice) {
    const auto part = x.narrow(0, r, std::min(kSlice, x.size(0) - r));
    if (torch::isfinite(part).all().item<bool>()) continue;
    const auto bad = torch::nonzero(~torch::isfinite(part).all(1)).flatten();
    BIUD_THROW(DataError, "{} row {} has a NaN or infinite feature; features must be finite", what,
               firstRow + r + bad[0].item<std::int64_t>());
  }
}

/// Insert (v, idx) into the row's sorted top-K, given v > S[k-1]. Entries of equal score stay
/// ahead of it: they came from lower database indices.
inline void insertSorted(float v, std::int64_t idx, float* S, std::int64_t* I, std::int64_t k) {
  std::int64_t p = k - 1;
  while (p > 0 && S[p - 1] < v) {
    S[p] = S[p - 1];
    I[p] = I[p - 1];
    --p;
  }
  S[p] = v;
  I[p] = idx;
}

/// One tile row: scores s[0, n) of database rows base + j. Returns false if a score was NaN/+Inf.
/// `!(v <= thr)` is true for a NaN too, so the 16-wide test sends NaNs to the slow path; the
/// OR-reduction over a fixed 16 is vectorised by the compiler (SSE/AVX compares, no branch).
bool scanRow(const float* s, std::int64_t n, std::int64_t base, float* S, std::int64_t* I, std::int64_t k) {
  bool ok = true;
  float thr = S[k - 1];
  auto one = [&](std::int64_t j) {
    const float v = s[j];
    if (!(v <= thr)) {
      if (!std::isfinite(v)) {
        ok = false;
        return;
      }
      insertSorted(v, base + j, S, I, k);
      thr = S[k - 1];
    }
  };
  std::int64_t j = 0;
  constexpr std::int64_t W = 16;
  for (; j + W <= n; j += W) {
    int hit = 0;
    for (std::int64_t t = 0; t < W; ++t) hit |= !(s[j + t] <= thr);
    if (hit)
      for (std::int64_t t = 0; t < W; ++t) one(j + t);
  }
  for (; j < n; ++j) one(j);
  return ok;
}

/// CPU: update bestS/bestI ([nq, k] contiguous rows) from the tile s [nq, nb] (contiguous).
void scanMerge(const torch::Tensor& s, std::int64_t base, torch::Tensor& bestS, torch::Tensor& bestI, std::int64_t k,
               std::atomic<bool>& overflow) {
  const std::int64_t nq = s.size(0), nb = s.size(1);
  const float* sp = s.data_ptr<float>();
  float* bs = bestS.data_ptr<float>();
  std::int64_t* bi = bestI.data_ptr<std::int64_t>();
  at::parallel_for(0, nq, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      if (!scanRow(sp + r * nb, nb, base, bs + r * k, bi + r * k, k)) overflow = true;
  });
}

/// Rows sorted by (score descending, index ascending): sort by index, then a stable sort by score.
std::pair<torch::Tensor, torch::Tensor> orderByScoreThenIndex(torch::Tensor v, torch::Tensor i) {
  auto byI = std::get<1>(i.sort(/*stable=*/true, 1, /*descending=*/false));
  v = v.gather(1, byI);
  i = i.gather(1, byI);
  auto byV = std::get<1>(v.sort(/*stable=*/true, 1, /*descending=*/true));
  return {v.gather(1, byV), i.gather(1, byV)};
}

/// Any device: topk per tile (exact under ties: when equal scores straddle the K-th place, the
/// tile is stably sorted instead), then a stable merge with the running top-K, whose indices are
/// all lower than the tile's.
void sortMerge(const torch::Tensor& s, std::int64_t base, torch::Tensor bestS, torch::Tensor bestI, std::int64_t k) {
  const std::int64_t nb = s.size(1), kk = std::min(k, nb);
  auto [v, i] = s.topk(kk, 1, /*largest=*/true, /*sorted=*/true);
  const auto kth = v.narrow(1, kk - 1, 1);
  if (kk < nb && ((s == kth).sum(1) != (v == kth).sum(1)).any().item<bool>()) {
    auto [sv, si] = s.sort(/*stable=*/true, 1, /*descending=*/true);
    v = sv.narrow(1, 0, kk);
    i = si.narrow(1, 0, kk);
  } else {
    std::tie(v, i) = orderByScoreThenIndex(v, i);
  }
  auto cS = torch::cat({bestS, v}, 1);
  auto cI = torch::cat({bestI, i + base}, 1);
  auto order = std::get<1>(cS.sort(/*stable=*/true, 1, /*descending=*/true)).narrow(1, 0, k);
  bestS.copy_(cS.gather(1, order));
  bestI.copy_(cI.gather(1, order));
}

}  // namespace

TopKResult blockedTopK(const torch::Tensor& queries, std::int64_t dbRows, const BlockFn& block,
                       const TopKOptions& opt) {
  BIUD_CHECK(queries.dim() == 2, ValueError, "queries must be [N, d], got {} dims", queries.dim());
  BIUD_CHECK(queries.size(0) > 0, ValueError, "no queries");
  BIUD_CHECK(dbRows > 0, ValueError, "empty retrieval database");
  BIUD_CHECK(opt.k >= 1, ValueError, "top-K needs k >= 1, got {}", opt.k);
  BIUD_CHECK(opt.dbBlock >= 1 && opt.queryBlock >= 1, ValueError, "retrieval blocks must be >= 1, got {} and {}",
             opt.dbBlock, opt.queryBlock);
  torch::NoGradGuard ng;
  const auto dev = queries.device();
  const bool scan = opt.merge == Merge::Scan || (opt.merge == Merge::Auto && dev.is_cpu());
  BIUD_CHECK(!scan || dev.is_cpu(), ValueError, "the scan merge runs on CPU tensors; queries are on {}", dev.str());
  const std::int64_t n = queries.size(0);
  const std::int64_t k = std::min<std::int64_t>(opt.k, dbRows);
  const auto q = asScoringFloat(queries, opt.precision, dev).contiguous();
  requireFinite(q, 0, "query");
  const auto fopts = torch::TensorOptions().device(dev).dtype(torch::kFloat32);
  torch::Tensor bestS = torch::full({n, k}, -std::numeric_limits<float>::infinity(), fopts);
  torch::Tensor bestI = torch::full({n, k}, -1, fopts.dtype(torch::kInt64));
  const std::int64_t qb = std::min(n, opt.queryBlock), db = std::min(dbRows, opt.dbBlock);
  torch::Tensor tile = torch::empty({qb * db}, fopts);  // reused: no per-block allocation
  std::atomic<bool> overflow{false};
  for (std::int64_t b0 = 0; b0 < dbRows; b0 += opt.dbBlock) {
    const std::int64_t b1 = std::min(dbRows, b0 + opt.dbBlock), nb = b1 - b0;
    torch::Tensor raw = block(b0, b1);
    BIUD_CHECK(raw.dim() == 2 && raw.size(0) == nb && raw.size(1) == q.size(1), ValueError,
               "database block [{}, {}) has shape {}, expected [{}, {}]", b0, b1, c10::str(raw.sizes()), nb, q.size(1));
    const auto d = asScoringFloat(raw, opt.precision, dev);
    requireFinite(d, b0, "database");
    const auto dT = d.t();
    for (std::int64_t q0 = 0; q0 < n; q0 += opt.queryBlock) {
      const std::int64_t q1 = std::min(n, q0 + opt.queryBlock);
      auto s = tile.narrow(0, 0, (q1 - q0) * nb).view({q1 - q0, nb});
      at::mm_out(s, q.narrow(0, q0, q1 - q0), dT);
      auto rs = bestS.narrow(0, q0, q1 - q0), ri = bestI.narrow(0, q0, q1 - q0);
      if (scan)
        scanMerge(s, b0, rs, ri, k, overflow);
      else
        sortMerge(s, b0, rs, ri, k);
    }
    if (opt.onBlock) opt.onBlock(b1);
  }
  BIUD_CHECK(!overflow && torch::isfinite(bestS).all().item<bool>() && (bestI >= 0).all().item<bool>(), ValueError,
             "retrieval scores overflow float32 (query max |x| {}, features of this magnitude multiply to +-Inf); "
             "normalise the features",
             q.abs().max().item<float>());
  return {bestS, bestI};
}

TopKResult blockedTopK(const torch::Tensor& queries, const torch::Tensor& database, const TopKOptions& opt) {
  BIUD_CHECK(database.dim() == 2, ValueError, "database must be [M, d], got {} dims", database.dim());
  return blockedTopK(
      queries, database.size(0), [&](std::int64_t b, std::int64_t e) { return database.slice(0, b, e); }, opt);
}

torch::Tensor sampleFromTopK(const TopKResult& r, double tau, torch::Generator gen) {
  BIUD_CHECK(tau > 0, ValueError, "retrieval sampling temperature must be > 0, got {}", tau);
  auto p = torch::softmax(r.scores / tau, 1);
  auto pick = torch::multinomial(p, 1, /*replacement=*/false, gen);
  return r.indices.gather(1, pick).squeeze(1);
}

}  // namespace biud::retrieval
