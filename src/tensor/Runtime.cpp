#include "biud/tensor/Runtime.h"

#include <algorithm>
#include <cstdlib>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"

namespace biud::runtime {

c10::Device selectDevice(const std::string& choice, int localRank) {
  const bool cuda = torch::cuda::is_available();
  if (choice == "cpu" || (choice == "auto" && !cuda)) return c10::Device(c10::kCPU);
  BIUD_CHECK(cuda, ConfigError,
             "device `cuda` was asked for, but no CUDA device is visible (use --device cpu or auto)");
  const int n = static_cast<int>(torch::cuda::device_count());
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(localRank % std::max(1, n)));
}

int autoThreads(int threads, const char* ompNumThreads, const char* localWorld, int defaultThreads) {
  if (threads > 0) return threads;
  if (ompNumThreads != nullptr && *ompNumThreads != '\0') return 0;  // the user's choice
  if (localWorld == nullptr) return 0;
  char* end = nullptr;
  const long ranks = std::strtol(localWorld, &end, 10);
  if (end == localWorld || *end != '\0' || ranks <= 1) return 0;
  return static_cast<int>(std::max(1L, static_cast<long>(defaultThreads) / ranks));
}

int setThreads(int threads) {
  const int n =
      autoThreads(threads, std::getenv("OMP_NUM_THREADS"), std::getenv("LOCAL_WORLD_SIZE"), at::get_num_threads());
  if (n > 0 && n != at::get_num_threads()) at::set_num_threads(n);
  return at::get_num_threads();
}

void seedTorch(std::uint64_t seed, int rank) {
  const std::uint64_t s = deriveSeed(seed, static_cast<std::uint64_t>(rank) + 0x746f726368ULL);
  torch::manual_seed(s);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(s);
}

std::string describe() {
  return fmt::format("LibTorch {}, {} CUDA device(s), {} intra-op threads", TORCH_VERSION,
                     torch::cuda::is_available() ? torch::cuda::device_count() : 0, at::get_num_threads());
}

}  // namespace biud::runtime
