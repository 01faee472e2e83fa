#pragma once
/// \file Rendezvous.h
/// Who am I, how many are we, where is the store: read from the environment that a launcher
/// sets, then one c10d::TCPStore (hosted by rank 0) and one process group.
///
/// Sources, first match wins:
///   - torchrun / biud-launch: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
///   - SLURM (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the store host is MASTER_ADDR
///     or else the first host of SLURM_JOB_NODELIST / SLURM_NODELIST (bracket ranges such as
///     `node[01-04]` are expanded); the port is MASTER_PORT or else 20000 + SLURM_JOB_ID % 20000;
///   - nothing set: a single process (no store, no sockets).
#include <functional>
#include <memory>
#include <string>

#include <c10/core/Device.h>

#include "biud/config/TrainerConfig.h"
#include "biud/dist/Communicator.h"

namespace biud::dist {

/// What the environment says about this process.
struct RankInfo {
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  std::string masterAddr;  ///< store host ("" for a single process)
  int masterPort = 0;
  std::string source = "none";  ///< "torchrun", "slurm" or "none"
};

/// Reads RankInfo through `getenv` (injectable for tests). Throws ConfigError naming the
/// variable on malformed or inconsistent values (e.g. RANK >= WORLD_SIZE, RANK without MASTER_ADDR).
RankInfo detectRankInfo(const std::function<const char*(const char*)>& getenv);
/// The same with the process environment.
RankInfo detectRankInfo();

/// First host of a SLURM node list: `node[01-04],gpu7` -> `node01`, `a-[3,5-6]-ib` -> `a-3-ib`.
/// Throws ConfigError on an empty or unbalanced list.
std::string firstSlurmHost(const std::string& nodelist);

/// Resolve "auto|gloo|nccl" against the device: auto = nccl on CUDA, gloo otherwise.
/// nccl with a CPU device, or nccl in a build without CUDA, is a ConfigError.
std::string resolveBackend(const std::string& backend, const c10::Device& device);

/// Rendezvous and create the communicator for `info` (world size 1 -> the single-process one).
/// `device` is where the training tensors live (its type picks the backend under "auto").
/// Blocks until all ranks joined, at most `cfg.timeout_s`; throws DistError naming the store
/// address and the ranks that did not arrive.
std::shared_ptr<Communicator> connect(const RankInfo& info, const DistributedConfig& cfg, const c10::Device& device);
/// detectRankInfo() + connect(); also tells the logger the rank (log::setRank).
std::shared_ptr<Communicator> initFromEnv(const DistributedConfig& cfg, const c10::Device& device);

}  // namespace biud::dist
