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
/// Intra-op threads per process. `threads` > 0 is used as given. 0 means "my share of this
/// machine": LibTorch's default (OMP_NUM_THREADS when set, else all physical cores), divided by
/// the ranks started on this node (LOCAL_WORLD_SIZE from biud-launch or torchrun) when
/// OMP_NUM_THREADS is not set, so that N ranks on one CPU do not each start one thread per core.
/// Returns the number of threads in use.
int setThreads(int threads);
/// The rule of setThreads: the thread count to set, or 0 to leave LibTorch's default.
/// `ompNumThreads` is the OMP_NUM_THREADS variable (null when unset), `localWorld` the
/// LOCAL_WORLD_SIZE variable (null when unset), `defaultThreads` LibTorch's default.
int autoThreads(int threads, const char* ompNumThreads, const char* localWorld, int defaultThreads);
/// Seed torch's CPU and CUDA generators from the run seed (and the rank).
void seedTorch(std::uint64_t seed, int rank = 0);
/// One line: LibTorch version, CUDA devices, threads.
std::string describe();

}  // namespace biud::runtime
