#pragma once
/// \file Rng.h
/// Deterministic seeding: one run seed derives every stream (C++ RNG, torch generators, per
/// worker and per rank) through SplitMix64, so streams are independent and reproducible.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace biud {

/// FNV-1a (64 bit) of the bytes: a stable hash across machines, compilers and releases (cache
/// hashes, hashed splits, seeds from labels).
std::uint64_t fnv1a(std::string_view bytes);
/// SplitMix64 step: a good 64-bit mix of `x`.
std::uint64_t splitmix64(std::uint64_t x);
/// Seed of stream `stream` derived from `seed` (e.g. worker id, rank, epoch).
std::uint64_t deriveSeed(std::uint64_t seed, std::uint64_t stream);
/// Seed derived from a seed and a string label (e.g. "augment", "mask").
std::uint64_t deriveSeed(std::uint64_t seed, const std::string& label);

/// The project-wide C++ random engine, serialisable for exact resume.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}
  std::mt19937_64& engine() { return engine_; }
  std::uint64_t next() { return engine_(); }
  double uniform(double lo = 0.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
  double normal(double mean = 0.0, double sd = 1.0) { return std::normal_distribution<double>(mean, sd)(engine_); }
  /// Integer in [lo, hi] inclusive.
  std::int64_t uniformInt(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(engine_);
  }
  bool bernoulli(double p) { return uniform() < p; }
  /// Engine state as text (std::mt19937_64 stream format) and back.
  std::string state() const;
  void setState(const std::string& s);

 private:
  std::mt19937_64 engine_;
};

}  // namespace biud
