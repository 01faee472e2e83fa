#include "C10dCommunicator.h"

#include <chrono>
#include <sstream>
#include <thread>

#include <fmt/ranges.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::dist {
namespace detail {

namespace {
using Clock = std::chrono::steady_clock;

std::string hbKey(int rank) { return "biud/hb/" + std::to_string(rank); }

std::string toString(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> toBytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

/// A short-timeout client connection to the store (for the heartbeat and for probes): it must
/// never block for the full collective timeout when the store host is gone.
c10::intrusive_ptr<c10d::Store> shortClient(const RankInfo& info, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(info.masterPort);
  o.isServer = false;
  o.waitWorkers = false;
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(info.masterAddr, o);
}

/// Run a c10d/Gloo/NCCL call; exceptions become DistError with context.
template <class F>
auto guarded(const char* what, int rank, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const biud::Error&) {
    throw;
  } catch (const std::exception& e) {
    BIUD_THROW(DistError, "{} on rank {} could not be started: {}", what, rank, e.what());
  }
}

/// What the peers' heartbeats say: "beat seq" per rank, or nullopt when the key is missing.
struct Beat {
  bool present = false;
  long long beat = 0;
  unsigned long long seq = 0;
};

Beat readBeat(c10d::Store& s, int rank) {
  Beat b;
  const std::string key = hbKey(rank);
  if (!s.check({key})) return b;
  std::istringstream in(toString(s.get(key)));
  in >> b.beat >> b.seq;
  b.present = static_cast<bool>(in);
  return b;
}
}  // namespace

std::chrono::milliseconds heartbeatPeriod(std::chrono::milliseconds timeout) {
  using namespace std::chrono;
  const auto p = timeout / 10;
  return std::clamp(p, milliseconds(200), milliseconds(1000));
}

// --- Heartbeat ----------------------------------------------------------------------------------

Heartbeat::Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, std::chrono::milliseconds period,
                     const std::atomic<uint64_t>& seq)
    : store_(std::move(store)), rank_(rank), period_(period), seq_(seq) {
  // The first beat is published here, synchronously, and read back on the same connection (the
  // store answers one connection's requests in order, and `set` has no reply): it is in the
  // store before this rank takes part in any collective. Published by the thread instead, a
  // rank that dies right after its first collective could die before its thread ever ran (or
  // its first beat could reach the store after a peer's first probe): the peer's diagnosis then
  // said "never published a heartbeat" or "alive but has not reached this collective" instead
  // of "dead" (the flaky DistGloo.KilledRankEndsTheJobNamingIt under load).
  try {
    beat();
    (void)store_->get(hbKey(rank_));
  } catch (const std::exception& e) {
    BIUD_THROW(DistError, "rank {} could not publish its heartbeat to the rendezvous store: {}", rank_,
               firstLine(e.what()));
  }
  thread_ = std::thread([this] { loop(); });
}

void Heartbeat::beat() {
  store_->set(hbKey(rank_), toBytes(std::to_string(++beat_) + " " + std::to_string(seq_.load())));
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::loop() {
  int failures = 0;
  std::unique_lock<std::mutex> lk(mu_);
  // The constructor published beat 1: wait one period first.
  cv_.wait_for(lk, period_, [this] { return stop_; });
  while (!stop_) {
    lk.unlock();
    try {
      beat();
      failures = 0;
    } catch (const std::exception&) {
      // A hiccup is retried; three failures in a row mean the store host (rank 0) is gone: a
      // collective will fail and diagnose it. Stop beating so that shutdown never waits on a
      // dead connection.
      if (++failures >= 3) return;
    }
    lk.lock();
    cv_.wait_for(lk, period_, [this] { return stop_; });
  }
}

// --- C10dCommunicator ---------------------------------------------------------------------------

C10dCommunicator::C10dCommunicator(const RankInfo& info, std::string backend, std::chrono::milliseconds timeout,
                                   c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> pg)
    : info_(info), backend_(std::move(backend)), timeout_(timeout), store_(std::move(store)), pg_(std::move(pg)) {
  const auto period = heartbeatPeriod(timeout_);
  heartbeat_ = std::make_unique<Heartbeat>(shortClient(info_, std::min(timeout_, std::chrono::milliseconds(3000))),
                                           info_.rank, period, seq_);
}

C10dCommunicator::~C10dCommunicator() {
  heartbeat_.reset();
  pg_.reset();
  store_.reset();
}

c10::Device C10dCommunicator::commDevice(const c10::Device& d) const {
  return backend_ == "gloo" ? c10::Device(c10::kCPU) : d;
}

std::string C10dCommunicator::diagnose(uint64_t seq, const char* what, const std::string& cause, double seconds) {
  std::string head =
      fmt::format("{} #{} failed on rank {} of {} after {:.1f} s", what, seq, info_.rank, info_.worldSize, seconds);
  std::vector<std::string> culprits;
  try {
    auto probe = shortClient(info_, std::chrono::milliseconds(2000));
    std::vector<Beat> first(info_.worldSize), second(info_.worldSize);
    for (int r = 0; r < info_.worldSize; ++r)
      if (r != info_.rank) first[r] = readBeat(*probe, r);
    // A live rank beats once per period. Look again every quarter period until every peer's beat
    // moved (alive) or three periods passed (no move: dead). Three, not one: on a loaded machine
    // a live rank's heartbeat thread can be late by a period, and calling it dead would be wrong.
    const auto period = heartbeatPeriod(timeout_);
    const auto until = Clock::now() + 3 * period + std::chrono::milliseconds(200);
    for (;;) {
      bool allMoved = true;
      for (int r = 0; r < info_.worldSize; ++r) {
        if (r == info_.rank) continue;
        second[r] = readBeat(*probe, r);
        allMoved = allMoved && second[r].present && (!first[r].present || second[r].beat != first[r].beat);
      }
      if (allMoved || Clock::now() >= until) break;
      std::this_thread::sleep_for(period / 4);
    }
    for (int r = 0; r < info_.worldSize; ++r) {
      if (r == info_.rank) continue;
      if (!second[r].present) {
        culprits.push_back(fmt::format("rank {} never published a heartbeat (it died at start-up?)", r));
      } else if (first[r].present && second[r].beat == first[r].beat) {
        culprits.push_back(fmt::format("rank {} is dead (its heartbeat stopped at collective #{})", r, second[r].seq));
      } else if (second[r].seq < seq) {
        culprits.push_back(
            fmt::format("rank {} is alive but has not reached this collective (it is at #{}): "
                        "it hangs or runs a different code path",
                        r, second[r].seq));
      }
    }
  } catch (const std::exception& e) {
    if (info_.rank != 0)
      culprits.push_back(fmt::format("rank 0 is dead (the rendezvous store it hosts at {}:{} no longer answers)",
                                     info_.masterAddr, info_.masterPort));
    else  // this process hosts the store: it is alive, only the probe failed
      culprits.push_back(
          fmt::format("the peers' heartbeats could not be read from this rank's store ({})", firstLine(e.what())));
  }
  std::string who =
      culprits.empty() ? std::string("no peer looks dead or behind") : fmt::format("{}", fmt::join(culprits, "; "));
  std::string msg = fmt::format("{}: {}. Backend said: {}", head, who, cause);
  if (seconds * 1000.0 >= 0.95 * static_cast<double>(timeout_.count()))
    msg += fmt::format(" (timeout {:.0f} s: distributed.timeout_s)", timeout_.count() / 1000.0);
  return msg;
}

void C10dCommunicator::waitOrThrow(const c10::intrusive_ptr<c10d::Work>& work, uint64_t seq, const char* what) {
  const auto t0 = Clock::now();
  std::string cause;
  try {
    if (work->wait()) return;
    cause = "the work reported failure";
  } catch (const std::exception& e) {
    cause = e.what();
  }
  // c10 errors carry a C++ backtrace after the first line; keep the message readable.
  cause = firstLine(cause);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  throw DistError(diagnose(seq, what, cause, secs), __FILE__, __LINE__);
}

namespace {
class WorkList : public PendingWork {
 public:
  C10dCommunicator* comm = nullptr;
  std::vector<std::pair<c10::intrusive_ptr<c10d::Work>, uint64_t>> works;
  void wait() override {
    for (auto& [w, s] : works) comm->waitOrThrow(w, s, "allreduce");
    works.clear();
  }
};
}  // namespace

void C10dCommunicator::allreduce(torch::Tensor& t, ReduceOp op) {
  BIUD_CHECK(op != ReduceOp::Avg || t.is_floating_point(), ValueError,
             "allreduce Avg needs a floating-point tensor (got {}): use Sum and divide yourself",
             c10::toString(t.scalar_type()));
  const bool stage = commDevice(t.device()) != t.device() || !t.is_contiguous();
  torch::Tensor buf = stage ? t.to(commDevice(t.device())).contiguous() : t;
  std::vector<torch::Tensor> v{buf};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = timeout_;
  const uint64_t seq = nextSeq();
  auto w = guarded("allreduce", info_.rank, [&] { return pg_->allreduce(v, o); });
  waitOrThrow(w, seq, "allreduce");
  if (op == ReduceOp::Avg) buf.div_(info_.worldSize);
  if (stage) t.copy_(buf);
}

std::unique_ptr<PendingWork> C10dCommunicator::allreduceAsync(std::vector<torch::Tensor> tensors) {
  auto list = std::make_unique<WorkList>();
  list->comm = this;
  for (auto& t : tensors) {
    BIUD_CHECK(t.device() == commDevice(t.device()) && t.is_contiguous(), ValueError,
               "allreduceAsync: tensor on {} (contiguous: {}) but the {} backend needs contiguous tensors on {}",
               t.device().str(), t.is_contiguous(), backend_, commDevice(t.device()).str());
    std::vector<torch::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.timeout = timeout_;
    const uint64_t seq = nextSeq();
    list->works.emplace_back(guarded("allreduce", info_.rank, [&] { return pg_->allreduce(v, o); }), seq);
  }
  return list;
}

torch::Tensor C10dCommunicator::allGather(const torch::Tensor& t) {
  BIUD_CHECK(t.dim() >= 1, ValueError, "allGather needs a tensor with at least one dimension (got a scalar)");
  const auto dev = commDevice(t.device());
  torch::Tensor in = t.detach().to(dev).contiguous();
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < info_.worldSize; ++r) out[0].push_back(torch::empty_like(in));
  std::vector<torch::Tensor> inputs{in};
  c10d::AllgatherOptions o;
  o.timeout = timeout_;
  const uint64_t seq = nextSeq();
  auto w = guarded("allgather", info_.rank, [&] { return pg_->allgather(out, inputs, o); });
  waitOrThrow(w, seq, "allgather");
  return torch::cat(out[0], 0).to(t.device());
}

void C10dCommunicator::broadcast(torch::Tensor& t, int root) {
  BIUD_CHECK(root >= 0 && root < info_.worldSize, ValueError, "broadcast root {} out of range (world size {})", root,
             info_.worldSize);
  const bool stage = commDevice(t.device()) != t.device() || !t.is_contiguous();
  torch::Tensor buf = stage ? t.detach().to(commDevice(t.device())).contiguous() : t.detach();
  std::vector<torch::Tensor> v{buf};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = timeout_;
  const uint64_t seq = nextSeq();
  auto w = guarded("broadcast", info_.rank, [&] { return pg_->broadcast(v, o); });
  waitOrThrow(w, seq, "broadcast");
  if (stage) {
    torch::NoGradGuard ng;
    t.copy_(buf);
  }
}

void C10dCommunicator::barrier() {
  // An allreduce of one element: same timeout and failure diagnosis as every other collective,
  // and no guessing of the device for NCCL's barrier.
  const auto dev = backend_ == "nccl" ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(info_.localRank))
                                      : c10::Device(c10::kCPU);
  torch::Tensor one = torch::ones({1}, torch::TensorOptions().device(dev));
  allreduce(one, ReduceOp::Sum);
  if (backend_ == "nccl") (void)one.item<float>();  // block the host until the GPU finished
}

}  // namespace detail

// --- single process -----------------------------------------------------------------------------

namespace {
class NoWork : public PendingWork {
 public:
  void wait() override {}
};

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int worldSize() const override { return 1; }
  int localRank() const override { return 0; }
  std::string backend() const override { return "single"; }
  std::chrono::milliseconds timeout() const override { return std::chrono::milliseconds::max(); }
  c10::Device commDevice(const c10::Device& d) const override { return d; }
  void allreduce(torch::Tensor&, ReduceOp) override {}
  std::unique_ptr<PendingWork> allreduceAsync(std::vector<torch::Tensor>) override {
    return std::make_unique<NoWork>();
  }
  torch::Tensor allGather(const torch::Tensor& t) override {
    BIUD_CHECK(t.dim() >= 1, ValueError, "allGather needs a tensor with at least one dimension (got a scalar)");
    return t.detach().clone();
  }
  void broadcast(torch::Tensor&, int root) override {
    BIUD_CHECK(root == 0, ValueError, "broadcast root {} out of range (world size 1)", root);
  }
  void barrier() override {}
};
}  // namespace

std::shared_ptr<Communicator> makeSingleProcess() { return std::make_shared<SingleProcess>(); }

}  // namespace biud::dist
