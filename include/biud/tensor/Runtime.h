#pragma once
/// \file Runtime.h
/// Process-wide LibTorch set-up shared by every app: device choice, threads, seeding.
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace biud::runtime {

/// "auto" -> CUDA when available, else CPU; "cuda" without a GPU is a ConfigError.
/// With several local GPUs, `localRank` picks the card.
c10::Device selectDevice(const std::string& choice, int localRank = 0);
/// Intra-op threads (0 = leave LibTorch's default: all cores).
void setThreads(int threads);
/// Seed torch's CPU and CUDA generators from the run seed (and the rank).
void seedTorch(std::uint64_t seed, int rank = 0);
/// One line: LibTorch version, CUDA devices, threads.
std::string describe();

}  // namespace biud::runtime
