#include "biud/dist/Rendezvous.h"

#include <cctype>
#include <cstdlib>
#include <thread>

#include <fmt/ranges.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "C10dCommunicator.h"
#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::dist {

namespace {

bool has(const std::function<const char*(const char*)>& env, const char* name) {
  const char* v = env(name);
  return v && *v;
}

long long intVar(const std::function<const char*(const char*)>& env, const char* name, long long lo, long long hi) {
  const char* v = env(name);
  BIUD_CHECK(v && *v, ConfigError, "environment variable {} is not set", name);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  BIUD_CHECK(errno == 0 && end != v && *end == '\0', ConfigError, "environment variable {}=`{}` is not an integer",
             name, v);
  BIUD_CHECK(x >= lo && x <= hi, ConfigError, "environment variable {}={} is out of range [{}, {}]", name, x, lo, hi);
  return x;
}

bool isLoopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

std::string firstSlurmHost(const std::string& nodelist) {
  BIUD_CHECK(!nodelist.empty(), ConfigError, "SLURM node list is empty (SLURM_JOB_NODELIST)");
  // The first entry is everything up to the first comma outside brackets.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    BIUD_CHECK(depth >= 0 && depth <= 1, ConfigError, "SLURM node list `{}` has unbalanced brackets", nodelist);
    if (c == ',' && depth == 0) break;
    first += c;
  }
  BIUD_CHECK(depth == 0 || first.size() < nodelist.size(), ConfigError, "SLURM node list `{}` has unbalanced brackets",
             nodelist);
  BIUD_CHECK(depth == 0, ConfigError, "SLURM node list `{}` has unbalanced brackets", nodelist);
  // Replace each bracket group by its first value: `[01-04,07]` -> `01`.
  std::string host;
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] != '[') {
      host += first[i];
      continue;
    }
    const size_t close = first.find(']', i);
    BIUD_CHECK(close != std::string::npos, ConfigError, "SLURM node list `{}` has unbalanced brackets", nodelist);
    std::string inner = first.substr(i + 1, close - i - 1);
    std::string value;
    for (char c : inner) {
      if (c == '-' || c == ',') break;
      value += c;
    }
    BIUD_CHECK(!value.empty(), ConfigError, "SLURM node list `{}` has an empty range `[{}]`", nodelist, inner);
    host += value;
    i = close;
  }
  BIUD_CHECK(!host.empty(), ConfigError, "SLURM node list `{}` names no host", nodelist);
  return host;
}

RankInfo detectRankInfo(const std::function<const char*(const char*)>& env) {
  RankInfo info;
  if (has(env, "RANK") || has(env, "WORLD_SIZE")) {
    info.source = "torchrun";
    info.worldSize = static_cast<int>(intVar(env, "WORLD_SIZE", 1, 1 << 20));
    info.rank = static_cast<int>(intVar(env, "RANK", 0, info.worldSize - 1));
    info.localRank = has(env, "LOCAL_RANK") ? static_cast<int>(intVar(env, "LOCAL_RANK", 0, info.worldSize - 1)) : 0;
    if (info.worldSize > 1) {
      BIUD_CHECK(
          has(env, "MASTER_ADDR"), ConfigError,
          "RANK/WORLD_SIZE are set but MASTER_ADDR is not: set it to the host of rank 0 (biud-launch and torchrun do)");
      info.masterAddr = env("MASTER_ADDR");
      info.masterPort = static_cast<int>(intVar(env, "MASTER_PORT", 1, 65535));
    }
    return info;
  }
  if (has(env, "SLURM_PROCID") && has(env, "SLURM_NTASKS")) {
    info.source = "slurm";
    info.worldSize = static_cast<int>(intVar(env, "SLURM_NTASKS", 1, 1 << 20));
    info.rank = static_cast<int>(intVar(env, "SLURM_PROCID", 0, info.worldSize - 1));
    info.localRank =
        has(env, "SLURM_LOCALID") ? static_cast<int>(intVar(env, "SLURM_LOCALID", 0, info.worldSize - 1)) : 0;
    if (info.worldSize > 1) {
      if (has(env, "MASTER_ADDR")) {
        info.masterAddr = env("MASTER_ADDR");
      } else {
        const char* list = has(env, "SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST");
        BIUD_CHECK(
            list && *list, ConfigError,
            "SLURM job without SLURM_JOB_NODELIST/SLURM_NODELIST or MASTER_ADDR: cannot find the host of rank 0");
        info.masterAddr = firstSlurmHost(list);
      }
      if (has(env, "MASTER_PORT")) {
        info.masterPort = static_cast<int>(intVar(env, "MASTER_PORT", 1, 65535));
      } else {
        // Every task of a job derives the same port; different jobs on one node rarely collide.
        const long long job = has(env, "SLURM_JOB_ID") ? intVar(env, "SLURM_JOB_ID", 0, 1LL << 62) : 0;
        info.masterPort = static_cast<int>(20000 + job % 20000);
      }
    }
    return info;
  }
  return info;
}

RankInfo detectRankInfo() {
  return detectRankInfo([](const char* n) { return std::getenv(n); });
}

std::string resolveBackend(const std::string& backend, const c10::Device& device) {
  std::string b = backend;
  if (b == "auto") b = device.is_cuda() ? "nccl" : "gloo";
  BIUD_CHECK(b == "gloo" || b == "nccl", ConfigError, "distributed.backend `{}`: use auto, gloo or nccl", backend);
#ifndef BIUD_WITH_CUDA
  BIUD_CHECK(b != "nccl", ConfigError, "distributed.backend nccl: this build has no CUDA; use gloo (or auto)");
#endif
  BIUD_CHECK(!(b == "nccl" && !device.is_cuda()), ConfigError,
             "distributed.backend nccl needs a CUDA device, but training runs on {}: use gloo or --device cuda",
             device.str());
  return b;
}

std::shared_ptr<Communicator> connect(const RankInfo& info, const DistributedConfig& cfg, const c10::Device& device) {
  if (info.worldSize <= 1) return makeSingleProcess();
  const std::string backend = resolveBackend(cfg.backend, device);
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(cfg.timeout_s * 1000.0));
  const std::string where = fmt::format("{}:{}", info.masterAddr, info.masterPort);

  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(info.masterPort);
    o.isServer = info.rank == 0;
    o.numWorkers = info.worldSize;
    o.waitWorkers = false;  // we wait ourselves below, to name the ranks that did not come
    o.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(info.masterAddr, o);
  } catch (const std::exception& e) {
    const std::string cause = firstLine(e.what());
    if (info.rank == 0)
      BIUD_THROW(DistError,
                 "rank 0 could not open the rendezvous store on port {} ({}): is the port in use? "
                 "Pick another MASTER_PORT",
                 info.masterPort, cause);
    BIUD_THROW(DistError,
               "rank {} could not reach the rendezvous store at {} within {:.0f} s ({}): is rank 0 running, "
               "and is MASTER_ADDR reachable from this host?",
               info.rank, where, cfg.timeout_s, cause);
  }

  // Everybody checks in, then waits for everybody.
  std::vector<std::string> keys;
  for (int r = 0; r < info.worldSize; ++r) keys.push_back("biud/join/" + std::to_string(r));
  try {
    store->set(keys[info.rank], std::vector<uint8_t>{'1'});
    store->wait(keys, timeout);
  } catch (const std::exception& e) {
    std::vector<int> missing;
    try {
      for (int r = 0; r < info.worldSize; ++r)
        if (!store->check({keys[r]})) missing.push_back(r);
    } catch (const std::exception&) {
    }
    BIUD_THROW(DistError,
               "rendezvous at {} timed out after {:.0f} s on rank {}: rank(s) {} did not join (world size {}). "
               "Did they start, with the same MASTER_ADDR/MASTER_PORT?",
               where, cfg.timeout_s, info.rank,
               missing.empty() ? std::string("?") : fmt::format("{}", fmt::join(missing, ", ")), info.worldSize);
  }

  auto pgStore = c10::make_intrusive<c10d::PrefixStore>("biud/pg", store);
  c10::intrusive_ptr<c10d::Backend> pg;
  try {
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (isLoopback(info.masterAddr))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      opts->threads = 2;
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pgStore, info.rank, info.worldSize, opts);
    } else {
#ifdef BIUD_WITH_CUDA
      pg = detail::makeNcclBackend(pgStore, info.rank, info.worldSize, timeout, info.localRank);
#endif
    }
  } catch (const std::exception& e) {
    const std::string cause = firstLine(e.what());
    BIUD_THROW(DistError, "rank {}: creating the {} process group (store {}) failed: {}", info.rank, backend, where,
               cause);
  }
  log::info("dist", "rank {}/{} (local {}) joined via {} at {}, backend {}", info.rank, info.worldSize, info.localRank,
            info.source, where, backend);
  return std::make_shared<detail::C10dCommunicator>(info, backend, timeout, store, pg);
}

std::shared_ptr<Communicator> initFromEnv(const DistributedConfig& cfg, const c10::Device& device) {
  const RankInfo info = detectRankInfo();
  log::setRank(info.rank, info.worldSize);
  return connect(info, cfg, device);
}

}  // namespace biud::dist
