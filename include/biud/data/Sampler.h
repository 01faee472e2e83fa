#pragma once
/// \file Sampler.h
/// Deterministic batch order for an epoch: shuffling from (seed, epoch), distributed shards and
/// batches that never hold two items of one group (patient or scan).
///
/// With world > 1 the epoch's order is cut into *global* batches of batch_size x world items
/// (unique groups across the whole global batch, so all-gathered negatives are true negatives
/// too); rank r takes items [r*batch_size, (r+1)*batch_size) of each. Ranks therefore see disjoint
/// items and the same number of batches; an incomplete last global batch is dropped.
#include <cstdint>
#include <string>
#include <vector>

namespace biud::data {

/// Permutation of [0, n) for (seed, epoch); identity when !shuffle. Same on every rank.
std::vector<std::int64_t> epochOrder(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle);

/// Cut `order` into batches of `batchSize`. With `groups` (group id per dataset index), no batch
/// holds two items of one group: an item whose group is already in the batch waits for the next
/// batch (first in, first out). The last incomplete batch is dropped when `dropLast`.
std::vector<std::vector<std::int64_t>> makeBatches(const std::vector<std::int64_t>& order, std::int64_t batchSize,
                                                   bool dropLast, const std::vector<std::int64_t>* groups = nullptr);

/// Group ids from group names (equal names -> equal ids).
std::vector<std::int64_t> groupIds(const std::vector<std::string>& names);

struct SamplerOptions {
  std::int64_t batchSize = 8;
  bool shuffle = true;
  bool dropLast = true;
  std::string mode = "unique_patient";  ///< random | sequential | unique_patient
  std::uint64_t seed = 0;
  int rank = 0, world = 1;
};

/// The batches (dataset indices) of one rank for an epoch.
class BatchSampler {
 public:
  BatchSampler(std::int64_t n, std::vector<std::int64_t> groups, SamplerOptions opt);
  std::vector<std::vector<std::int64_t>> epoch(std::int64_t e) const;
  std::int64_t size() const { return n_; }
  const SamplerOptions& options() const { return opt_; }

 private:
  std::int64_t n_;
  std::vector<std::int64_t> groups_;
  SamplerOptions opt_;
};

}  // namespace biud::data
