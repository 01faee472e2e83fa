#include "biud/dist/CheckpointSync.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::dist {

void writeOnMain(Communicator& comm, const std::function<void()>& write) {
  std::string err;
  if (comm.isMain()) {
    try {
      write();
    } catch (const std::exception& e) {
      err = e.what();
      if (!comm.distributed()) throw;
    }
  }
  if (!comm.distributed()) return;
  // Rank 0 tells everybody whether the write worked, and why not.
  const auto dev = comm.commDevice(c10::Device(c10::kCPU));
  torch::Tensor len =
      torch::full({1}, static_cast<int64_t>(err.size()), torch::TensorOptions().dtype(torch::kLong).device(dev));
  comm.broadcast(len, 0);
  const int64_t n = len.item<int64_t>();
  if (n == 0) return;
  torch::Tensor bytes = torch::zeros({n}, torch::TensorOptions().dtype(torch::kUInt8));
  if (comm.isMain()) std::memcpy(bytes.data_ptr<uint8_t>(), err.data(), static_cast<size_t>(n));
  torch::Tensor onDev = bytes.to(dev);
  comm.broadcast(onDev, 0);
  bytes = onDev.cpu();
  const std::string msg(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(n));
  BIUD_THROW(DistError, "rank 0 failed to write (all ranks stop): {}", msg);
}

void checkResumeWorldSize(int savedWorld, int currentWorld, const std::string& what) {
  BIUD_CHECK(savedWorld == currentWorld, ConfigError,
             "cannot resume `{}`: it was trained with world size {} but this job has {} rank(s). The per-rank batch, "
             "data sharding and schedule depend on it: relaunch with {} process(es) (biud-launch --nproc {} or "
             "torchrun/srun), or start a new run from its weights",
             what, savedWorld, currentWorld, savedWorld, savedWorld);
}

void checkResumeWorldSize(const std::string& metaJson, int currentWorld, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(metaJson);
  } catch (const std::exception& e) {
    BIUD_THROW(DataError, "cannot resume `{}`: its metadata is not valid JSON ({})", what, e.what());
  }
  if (!j.is_object() || !j.contains("world_size")) {
    checkResumeWorldSize(1, currentWorld, what);
    return;
  }
  BIUD_CHECK(j["world_size"].is_number_integer(), DataError,
             "cannot resume `{}`: `world_size` in its metadata is not an integer ({})", what, j["world_size"].dump());
  checkResumeWorldSize(j["world_size"].get<int>(), currentWorld, what);
}

std::string distMetaJson(const Communicator& comm) {
  nlohmann::json j;
  j["world_size"] = comm.worldSize();
  j["backend"] = comm.backend();
  return j.dump();
}

}  // namespace biud::dist
