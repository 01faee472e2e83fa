#pragma once
// Internal: the c10d-backed communicator shared by the Gloo and NCCL paths (Rendezvous.cpp
// builds it; Communicator_cuda.cpp makes the NCCL backend).
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "biud/dist/Communicator.h"
#include "biud/dist/Rendezvous.h"

namespace biud::dist::detail {

/// Publishes this rank's heartbeat and collective counter to the store once per `period`, so that
/// a rank whose collective failed can tell which peer died (heartbeat stopped) or hung (counter
/// behind). Uses its own store connection.
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, std::chrono::milliseconds period,
            const std::atomic<uint64_t>& seq);
  ~Heartbeat();

 private:
  void loop();
  void beat();  ///< publish "<beat> <collective counter>"
  c10::intrusive_ptr<c10d::Store> store_;
  int rank_;
  long long beat_ = 0;
  std::chrono::milliseconds period_;
  const std::atomic<uint64_t>& seq_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(const RankInfo& info, std::string backend, std::chrono::milliseconds timeout,
                   c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> pg);
  ~C10dCommunicator() override;

  int rank() const override { return info_.rank; }
  int worldSize() const override { return info_.worldSize; }
  int localRank() const override { return info_.localRank; }
  std::string backend() const override { return backend_; }
  std::chrono::milliseconds timeout() const override { return timeout_; }
  c10::Device commDevice(const c10::Device& d) const override;

  void allreduce(torch::Tensor& t, ReduceOp op) override;
  std::unique_ptr<PendingWork> allreduceAsync(std::vector<torch::Tensor> tensors) override;
  torch::Tensor allGather(const torch::Tensor& t) override;
  void broadcast(torch::Tensor& t, int root) override;
  void barrier() override;

  /// Wait for `work` (collective number `seq`, named `what`); on failure throw DistError that
  /// names the rank(s) responsible.
  void waitOrThrow(const c10::intrusive_ptr<c10d::Work>& work, uint64_t seq, const char* what);
  /// Build the DistError message for a failed collective: probes the peers' heartbeats.
  std::string diagnose(uint64_t seq, const char* what, const std::string& cause, double seconds);

 private:
  uint64_t nextSeq() { return ++seq_; }
  RankInfo info_;
  std::string backend_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> pg_;
  std::atomic<uint64_t> seq_{0};
  std::unique_ptr<Heartbeat> heartbeat_;
};

/// Heartbeat period (also how long a probe waits to see a heartbeat move).
std::chrono::milliseconds heartbeatPeriod(std::chrono::milliseconds timeout);

#ifdef BIUD_WITH_CUDA
/// Defined in Communicator_cuda.cpp (CUDA builds only).
c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                                  std::chrono::milliseconds timeout, int localRank);
#endif

}  // namespace biud::dist::detail
