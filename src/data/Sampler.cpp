#include "biud/data/Sampler.h"

#include <algorithm>
#include <deque>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"

namespace biud::data {

std::vector<std::int64_t> epochOrder(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  // Fisher-Yates with our own engine and integer draws: std::shuffle's use of the engine is
  // implementation-defined, this is the same on every platform.
  Rng rng(deriveSeed(deriveSeed(seed, "sampler"), static_cast<std::uint64_t>(epoch)));
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::vector<std::vector<std::int64_t>> makeBatches(const std::vector<std::int64_t>& order, std::int64_t batchSize,
                                                   bool dropLast, const std::vector<std::int64_t>* groups) {
  BIUD_CHECK(batchSize >= 1, ConfigError, "batch size must be at least 1, got {}", batchSize);
  std::vector<std::vector<std::int64_t>> out;
  if (!groups) {
    for (size_t i = 0; i < order.size(); i += static_cast<size_t>(batchSize)) {
      const size_t e = std::min(order.size(), i + static_cast<size_t>(batchSize));
      if (dropLast && e - i < static_cast<size_t>(batchSize)) break;
      out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i), order.begin() + static_cast<std::ptrdiff_t>(e));
    }
    return out;
  }
  std::deque<std::int64_t> waiting;
  size_t pos = 0;
  while (pos < order.size() || !waiting.empty()) {
    std::vector<std::int64_t> batch;
    std::unordered_set<std::int64_t> used;
    auto tryAdd = [&](std::int64_t idx) {
      const std::int64_t g = (*groups)[static_cast<size_t>(idx)];
      if (used.count(g)) return false;
      used.insert(g);
      batch.push_back(idx);
      return true;
    };
    // Items that waited go first (in their order), then fresh ones.
    const size_t nWait = waiting.size();
    for (size_t w = 0; w < nWait && static_cast<std::int64_t>(batch.size()) < batchSize; ++w) {
      const std::int64_t idx = waiting.front();
      waiting.pop_front();
      if (!tryAdd(idx)) waiting.push_back(idx);
    }
    while (static_cast<std::int64_t>(batch.size()) < batchSize && pos < order.size()) {
      const std::int64_t idx = order[pos++];
      if (!tryAdd(idx)) waiting.push_back(idx);
    }
    if (batch.empty()) break;
    if (static_cast<std::int64_t>(batch.size()) < batchSize && dropLast) {
      // No full batch can be formed any more (stream exhausted): the rest is dropped.
      break;
    }
    out.push_back(std::move(batch));
  }
  return out;
}

std::vector<std::int64_t> groupIds(const std::vector<std::string>& names) {
  std::unordered_map<std::string, std::int64_t> ids;
  std::vector<std::int64_t> out;
  out.reserve(names.size());
  for (const auto& n : names) out.push_back(ids.emplace(n, static_cast<std::int64_t>(ids.size())).first->second);
  return out;
}

BatchSampler::BatchSampler(std::int64_t n, std::vector<std::int64_t> groups, SamplerOptions opt)
    : n_(n), groups_(std::move(groups)), opt_(std::move(opt)) {
  BIUD_CHECK(opt_.world >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world, ConfigError,
             "sampler: rank {} is not in [0, world={})", opt_.rank, opt_.world);
  BIUD_CHECK(opt_.mode == "random" || opt_.mode == "sequential" || opt_.mode == "unique_patient", ConfigError,
             "data.loader.sampler `{}` unknown (random, sequential, unique_patient)", opt_.mode);
  BIUD_CHECK(opt_.mode != "unique_patient" || static_cast<std::int64_t>(groups_.size()) == n_, ValueError,
             "sampler: {} group ids for {} items", groups_.size(), n_);
}

std::vector<std::vector<std::int64_t>> BatchSampler::epoch(std::int64_t e) const {
  const bool shuffle = opt_.shuffle && opt_.mode != "sequential";
  const auto order = epochOrder(n_, opt_.seed, e, shuffle);
  const std::int64_t global = opt_.batchSize * opt_.world;
  const bool unique = opt_.mode == "unique_patient";
  auto batches = makeBatches(order, global, opt_.dropLast || opt_.world > 1, unique ? &groups_ : nullptr);
  if (opt_.world == 1) return batches;
  std::vector<std::vector<std::int64_t>> mine;
  mine.reserve(batches.size());
  for (const auto& b : batches)
    mine.emplace_back(b.begin() + opt_.rank * opt_.batchSize, b.begin() + (opt_.rank + 1) * opt_.batchSize);
  return mine;
}

}  // namespace biud::data
