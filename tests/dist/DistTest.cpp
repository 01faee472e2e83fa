// Distributed training on c10d: rendezvous parsing, the single-process path, and 2-rank Gloo jobs
// on loopback (collectives, DataParallel equivalence with single-process full-batch training,
// failure diagnosis, biud-launch). Each rank is a separate process: this test binary re-runs
// itself with BIUD_DIST_WORKER=<scenario> and --gtest_filter=DistWorker.Rank.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/dist/CheckpointSync.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/Contrastive.h"
#include "biud/dist/DataParallel.h"
#include "biud/dist/GlobalBatch.h"
#include "biud/dist/Rendezvous.h"
#include "biud/dist/SyncBatchNorm.h"
#include "biud/models/SyncBatchNorm.h"
#include "common/TestUtil.h"

namespace dist = biud::dist;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------------
// A small training run used both by the ranks and by the single-process reference.

struct TrainSpec {
  std::string loss = "mse";   // mse | clip | bn (a convolution with SyncBatchNorm 3D and 2D)
  std::string optim = "sgd";  // sgd | adam
  int accum = 1;              // micro-steps per optimizer step (per rank)
  int steps = 4;
  int64_t globalBatch = 8;
  torch::Dtype dtype = torch::kFloat;
  bool syncBn = true;  // bn: statistics over every rank's rows (dist::syncBatchNorm)
  // false: zero_grad(false) keeps each .grad (zeroed in place), which after finalize() shares
  // the bucket's memory: the next backward must not add into the bucket it reduces.
  bool gradToNone = true;
};

struct TrainResult {
  std::vector<torch::Tensor> values;  // [losses, params...]
  int overlapped = 0;                 // buckets launched during backward, all steps
  int overlappedFirst = -1;           // ... in step 1
  bool unusedGradDefined = false;
  int syncedLayers = 0;
};

struct MseNet : torch::nn::Module {
  torch::nn::Linear l1{nullptr}, l2{nullptr}, unused{nullptr};
  MseNet() {
    l1 = register_module("l1", torch::nn::Linear(6, 16));
    l2 = register_module("l2", torch::nn::Linear(16, 3));
    // Registered last: it lands in the first bucket, which it holds back in step 1 (no gradient);
    // DataParallel must move it to the end after step 1 (overlap asserted below).
    unused = register_module("unused", torch::nn::Linear(2, 2));
    register_buffer("scale", torch::rand({3}) + 0.5);
  }
  torch::Tensor forward(const torch::Tensor& x) { return l2(torch::tanh(l1(x))) * named_buffers()["scale"]; }
};

/// Conv3d -> SyncBatchNorm3d -> relu -> SyncBatchNorm2d -> relu -> Linear: the per-channel
/// statistics of each norm span the local rows, or with syncBatchNorm every rank's rows.
struct BnNet : torch::nn::Module {
  torch::nn::Conv3d conv{nullptr};
  biud::models::SyncBatchNorm3d bn3{nullptr};
  biud::models::SyncBatchNorm2d bn2{nullptr};
  torch::nn::Linear head{nullptr}, unused{nullptr};
  BnNet() {
    conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(1, 4, {1, 2, 2})));
    bn3 = register_module("bn3", biud::models::SyncBatchNorm3d(4));
    bn2 = register_module("bn2", biud::models::SyncBatchNorm2d(4));
    head = register_module("head", torch::nn::Linear(8, 3));
    unused = register_module("unused", torch::nn::Linear(2, 2));
    // Away from torch's identity initialisation, so that the affine part is exercised.
    torch::NoGradGuard ng;
    bn3->weight.uniform_(0.5, 1.5), bn3->bias.uniform_(-0.5, 0.5);
    bn2->weight.uniform_(0.5, 1.5), bn2->bias.uniform_(-0.5, 0.5);
  }
  torch::Tensor forward(const torch::Tensor& x) {  // x [B, 6]
    const auto b = x.size(0);
    auto h = torch::relu(bn3(conv(x.view({b, 1, 1, 2, 3}))));  // [B, 4, 1, 1, 2]
    h = torch::relu(bn2(h.view({b, 4, 1, 2})));
    return head(h.flatten(1));
  }
};

struct ClipNet : torch::nn::Module {
  torch::nn::Linear img{nullptr}, txt{nullptr}, unused{nullptr};
  torch::Tensor logitScale;
  ClipNet() {
    img = register_module("img", torch::nn::Linear(6, 5));
    txt = register_module("txt", torch::nn::Linear(4, 5));
    unused = register_module("unused", torch::nn::Linear(2, 2));
    logitScale = register_parameter("logit_scale", torch::full({1}, std::log(1 / 0.07)));
  }
};

TrainResult train(const std::shared_ptr<dist::Communicator>& comm, const TrainSpec& spec) {
  const int world = comm->worldSize(), rank = comm->rank();
  const int64_t local = spec.globalBatch / world, micro = local / spec.accum;
  // Every rank builds the same global batch; its rows are [rank*local, (rank+1)*local).
  torch::manual_seed(1234);
  auto opt = torch::TensorOptions().dtype(spec.dtype);
  torch::Tensor X = torch::randn({spec.steps, spec.globalBatch, 6}, opt);
  torch::Tensor Y = spec.loss != "clip" ? torch::randn({spec.steps, spec.globalBatch, 3}, opt)
                                        : torch::randn({spec.steps, spec.globalBatch, 4}, opt);
  // Different initial weights per rank: DataParallel must broadcast rank 0's.
  torch::manual_seed(100 + rank);
  TrainResult res;
  std::shared_ptr<torch::nn::Module> model;
  std::shared_ptr<MseNet> mse;
  std::shared_ptr<ClipNet> clip;
  std::shared_ptr<BnNet> bnNet;
  if (spec.loss == "mse")
    model = mse = std::make_shared<MseNet>();
  else if (spec.loss == "bn")
    model = bnNet = std::make_shared<BnNet>();
  else
    model = clip = std::make_shared<ClipNet>();
  model->to(spec.dtype);
  dist::DataParallel dp(comm, model->parameters(), model->buffers(), /*bucketMb=*/0.0001);
  const int synced = spec.syncBn ? dist::syncBatchNorm(*model, comm) : 0;
  res.syncedLayers = synced;
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (spec.optim == "sgd")
    optim = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  else
    optim = std::make_unique<torch::optim::Adam>(model->parameters(), torch::optim::AdamOptions(0.01));

  std::vector<double> losses;
  for (int s = 0; s < spec.steps; ++s) {
    optim->zero_grad(spec.gradToNone);
    double stepLoss = 0;
    for (int m = 0; m < spec.accum; ++m) {
      const int64_t r0 = rank * local + m * micro;
      torch::Tensor x = X[s].narrow(0, r0, micro), y = Y[s].narrow(0, r0, micro);
      torch::Tensor loss;
      if (mse) {
        loss = torch::mse_loss(mse->forward(x), y);
      } else if (bnNet) {
        loss = torch::mse_loss(bnNet->forward(x), y);
      } else {
        auto fi = torch::nn::functional::normalize(clip->img(x), torch::nn::functional::NormalizeFuncOptions().dim(1));
        auto ft = torch::nn::functional::normalize(clip->txt(y), torch::nn::functional::NormalizeFuncOptions().dim(1));
        auto allI = dist::allGatherWithGrad(comm, fi), allT = dist::allGatherWithGrad(comm, ft);
        auto scale = clip->logitScale.exp();
        auto labels = dist::globalRowIndices(*comm, micro);
        auto li = scale * fi.matmul(allT.t()), lt = scale * ft.matmul(allI.t());
        loss = (torch::cross_entropy_loss(li, labels) + torch::cross_entropy_loss(lt, labels)) / 2;
      }
      dp.setSync(m == spec.accum - 1);
      (loss / spec.accum).backward();
      stepLoss += loss.item<double>() / spec.accum;
    }
    dp.finalize();
    res.overlapped += dp.bucketsLaunchedDuringBackward();
    if (s == 0) res.overlappedFirst = dp.bucketsLaunchedDuringBackward();
    optim->step();
    torch::Tensor l = torch::full({1}, stepLoss, torch::kDouble);
    comm->allreduce(l, dist::ReduceOp::Avg);
    losses.push_back(l.item<double>());
  }
  res.unusedGradDefined = (mse ? mse->unused : bnNet ? bnNet->unused : clip->unused)->weight.grad().defined();
  res.values.push_back(torch::tensor(losses, torch::kDouble));
  for (auto& p : model->parameters()) res.values.push_back(p.detach().to(torch::kDouble).clone());
  for (auto& b : model->buffers()) res.values.push_back(b.detach().to(torch::kDouble).clone());
  return res;
}

std::vector<TrainSpec> trainSpecs() {
  std::vector<TrainSpec> v;
  v.push_back({"mse", "sgd", 1});
  v.push_back({"mse", "adam", 2, 4, 8, torch::kDouble});  // gradient accumulation with noSync
  v.push_back({"clip", "sgd", 1});
  v.push_back({"clip", "adam", 1, 4, 8, torch::kDouble});
  v.push_back({"bn", "sgd", 1});
  v.push_back({"bn", "adam", 1, 4, 8, torch::kDouble});
  v.push_back({"bn", "sgd", 1, 4, 8, torch::kFloat, /*syncBn=*/false});  // per-rank statistics: must differ
  v.push_back({"mse", "adam", 2, 4, 8, torch::kDouble, true, /*gradToNone=*/false});
  return v;
}

std::string specName(const TrainSpec& s) {
  return s.loss + "_" + s.optim + "_accum" + std::to_string(s.accum) + (s.syncBn ? "" : "_nosync") +
         (s.gradToNone ? "" : "_zeroed");
}

// ---------------------------------------------------------------------------------------------
// Spawning ranks.

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string selfExe() { return fs::read_symlink("/proc/self/exe").string(); }

struct RankRun {
  int status = -1;
  bool exited = false;
  std::string log;
};

/// Start `world` ranks of scenario `name` (this binary, DistWorker.Rank); wait at most `limit`.
/// `waitFor` = ranks whose end we wait for (others are killed once those ended).
std::vector<RankRun> runRanks(const std::string& name, int world, const fs::path& dir, double timeoutS,
                              std::chrono::seconds limit, std::vector<int> waitFor = {}) {
  const int port = freePort();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const std::string logPath = (dir / ("rank" + std::to_string(r) + ".log")).string();
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::setenv("BIUD_DIST_WORKER", name.c_str(), 1);
      ::setenv("BIUD_DIST_DIR", dir.c_str(), 1);
      ::setenv("BIUD_DIST_TIMEOUT", std::to_string(timeoutS).c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      const std::string exe = selfExe();
      ::execl(exe.c_str(), exe.c_str(), "--gtest_filter=DistWorker.Rank", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  if (waitFor.empty())
    for (int r = 0; r < world; ++r) waitFor.push_back(r);
  std::vector<RankRun> runs(world);
  const auto deadline = Clock::now() + limit;
  auto pending = [&] {
    for (int r : waitFor)
      if (!runs[r].exited) return true;
    return false;
  };
  while (pending() && Clock::now() < deadline) {
    for (int r = 0; r < world; ++r) {
      if (runs[r].exited) continue;
      int st = 0;
      if (::waitpid(pids[r], &st, WNOHANG) == pids[r]) {
        runs[r].exited = true;
        runs[r].status = st;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int r = 0; r < world; ++r) {
    if (runs[r].exited) continue;
    ::kill(pids[r], SIGKILL);
    int st = 0;
    ::waitpid(pids[r], &st, 0);
    runs[r].status = st;
  }
  for (int r = 0; r < world; ++r) runs[r].log = biud::test::readText(dir / ("rank" + std::to_string(r) + ".log"));
  return runs;
}

bool exitedOk(const RankRun& r) { return r.exited && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0; }

void expectClose(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double tol,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].sizes(), b[i].sizes()) << what << " tensor " << i;
    const double d = (a[i] - b[i]).abs().max().item<double>();
    EXPECT_LE(d, tol) << what << ": tensor " << i << " (0 = losses) differs by " << d;
  }
}

// ---------------------------------------------------------------------------------------------
// Worker scenarios (inside a rank process).

void workerCollectives(dist::Communicator& c) {
  const int r = c.rank(), w = c.worldSize();
  ASSERT_EQ(w, 2);
  EXPECT_EQ(c.backend(), "gloo");
  // allreduce: rank r holds [r+1, 10(r+1), -r]; sum = [3, 30, -1].
  torch::Tensor t = torch::tensor({1.0f, 10.0f, 0.0f}) * (r + 1);
  t[2] = -r;
  c.allreduce(t, dist::ReduceOp::Sum);
  EXPECT_TRUE(torch::equal(t, torch::tensor({3.0f, 30.0f, -1.0f}))) << t;
  torch::Tensor d = torch::full({2, 3}, static_cast<double>(r * 4), torch::kDouble);  // avg of 0 and 4
  c.allreduce(d, dist::ReduceOp::Avg);
  EXPECT_TRUE(torch::equal(d, torch::full({2, 3}, 2.0, torch::kDouble)));
  torch::Tensor i64 = torch::tensor({int64_t(1) << 40}) * (r + 1);  // integers survive exactly
  c.allreduce(i64);
  EXPECT_EQ(i64.item<int64_t>(), 3 * (int64_t(1) << 40));
  // allgather: rank r holds rows [[r, r+0.5]]; gathered = [[0, .5], [1, 1.5]].
  torch::Tensor g = c.allGather(torch::tensor({{float(r), float(r) + 0.5f}}));
  EXPECT_TRUE(torch::equal(g, torch::tensor({{0.0f, 0.5f}, {1.0f, 1.5f}}))) << g;
  // broadcast from rank 1.
  torch::Tensor b = torch::arange(5, torch::kFloat) * (r == 1 ? 7 : -1);
  c.broadcast(b, 1);
  EXPECT_TRUE(torch::equal(b, torch::arange(5, torch::kFloat) * 7));
  // non-contiguous tensor in place.
  torch::Tensor nc = torch::arange(6, torch::kFloat).view({3, 2}).t();  // transposed view
  ASSERT_FALSE(nc.is_contiguous());
  c.allreduce(nc);
  EXPECT_TRUE(torch::equal(nc, torch::arange(6, torch::kFloat).view({3, 2}).t() * 2));
  // async: two tensors.
  std::vector<torch::Tensor> v{torch::ones({4}) * r, torch::ones({3}) * (r + 2)};
  auto work = c.allreduceAsync(v);
  work->wait();
  EXPECT_TRUE(torch::equal(v[0], torch::ones({4})));
  EXPECT_TRUE(torch::equal(v[1], torch::ones({3}) * 5));
  c.barrier();
  // global rows of rank r for a local batch of 3.
  EXPECT_TRUE(torch::equal(dist::globalRowIndices(c, 3), torch::arange(3) + 3 * r));
  // gather with grad: loss = sum_i w_i * gathered_i with w = [1, 2, 3, 4] on rank 0 and
  // [10, 20, 30, 40] on rank 1; each rank's 2 rows get the summed weights of their slice.
  auto comm = std::shared_ptr<dist::Communicator>(&c, [](dist::Communicator*) {});
  torch::Tensor x = torch::ones({2, 1}, torch::requires_grad());
  torch::Tensor all = dist::allGatherWithGrad(comm, x * (r + 1));
  torch::Tensor wts = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({4, 1}) * (r == 0 ? 1 : 10);
  (all * wts).sum().backward();
  const torch::Tensor expect = r == 0 ? torch::tensor({11.0f, 22.0f}) : torch::tensor({66.0f, 88.0f});
  EXPECT_TRUE(torch::allclose(x.grad().view({2}), expect)) << x.grad();
  // GlobalBatch: the same gather with gradient, constants without, this rank's offset, and a
  // per-rank mean rescaled to the global one. Rank 0 averaged 3.0 over 1 element (sum 3), rank 1
  // 2.0 over 3 (sum 6): the global mean is 9 / 4; rescaled 3 * 2 * 1 / 4 = 1.5 and 2 * 2 * 3 / 4
  // = 3, whose average over the ranks (what DataParallel takes) is 2.25.
  {
    const dist::GlobalBatch g(comm);
    EXPECT_TRUE(g.distributed());
    EXPECT_EQ(g.offset(3), 3 * r);
    torch::Tensor y = torch::ones({2, 1}, torch::requires_grad());
    torch::Tensor gy = g.withGrad(y * (r + 1));
    (gy * wts).sum().backward();
    EXPECT_TRUE(torch::allclose(y.grad().view({2}), expect)) << y.grad();
    torch::Tensor k = g.constant(y * (r + 1));
    EXPECT_FALSE(k.requires_grad());
    EXPECT_TRUE(torch::equal(k.view({4}), torch::tensor({1.0f, 1.0f, 2.0f, 2.0f}))) << k;
    EXPECT_TRUE(torch::equal(g.allRows(torch::tensor({int64_t(r) + 5})), torch::tensor({int64_t(5), int64_t(6)})));
    // gather_with_grad false: this rank's rows get the gradient of this rank's loss only.
    torch::Tensor z = torch::ones({2, 1}, torch::requires_grad());
    (dist::GlobalBatch(comm, false).withGrad(z * (r + 1)) * wts).sum().backward();
    const torch::Tensor own = r == 0 ? torch::tensor({1.0f, 2.0f}) : torch::tensor({60.0f, 80.0f});
    EXPECT_TRUE(torch::allclose(z.grad().view({2}), own)) << z.grad();
    torch::Tensor scaled = g.globalMean(torch::tensor({r == 0 ? 3.0 : 2.0}, torch::kDouble), r == 0 ? 1 : 3);
    EXPECT_NEAR(scaled.item<double>(), r == 0 ? 1.5 : 3.0, 1e-12);
    c.allreduce(scaled, dist::ReduceOp::Avg);
    EXPECT_NEAR(scaled.item<double>(), 2.25, 1e-12);
  }
  // rank 0 writes; a failing write stops everybody with rank 0's message.
  dist::writeOnMain(c, [] {});
  try {
    dist::writeOnMain(c, [] { throw biud::IoError("disk full"); });
    ADD_FAILURE() << "writeOnMain did not throw";
  } catch (const biud::DistError& e) {
    EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
  }
}

void workerTrain(const std::shared_ptr<dist::Communicator>& c, const fs::path& dir) {
  for (const auto& spec : trainSpecs()) {
    TrainResult res = train(c, spec);
    EXPECT_EQ(res.syncedLayers, spec.loss == "bn" && spec.syncBn ? 2 : 0) << specName(spec);
    EXPECT_EQ(res.overlappedFirst, 0) << specName(spec) << ": the unused parameter should hold back step 1";
    EXPECT_GT(res.overlapped, 0) << specName(spec) << ": no bucket was launched during backward after step 1";
    EXPECT_FALSE(res.unusedGradDefined) << specName(spec) << ": an unused parameter got a gradient";
    torch::save(res.values, (dir / (specName(spec) + ".rank" + std::to_string(c->rank()) + ".pt")).string());
  }
}

/// Rank `victim` dies (SIGKILL) or hangs after the first collective; the other must fail naming it.
void workerFailure(dist::Communicator& c, bool die, const fs::path& dir, int victim = 1) {
  torch::Tensor t = torch::ones({4});
  c.allreduce(t);
  if (c.rank() != victim) biud::test::writeText(dir / ("done1.rank" + std::to_string(c.rank())), "");
  if (c.rank() == victim) {
    // Die only once the others have finished collective #1 (otherwise which collective fails
    // on them would depend on timing).
    for (int r = 0; r < c.worldSize(); ++r)
      while (r != victim && !fs::exists(dir / ("done1.rank" + std::to_string(r))))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (die) ::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return;
  }
  const auto t0 = Clock::now();
  try {
    c.allreduce(t);
    ADD_FAILURE() << "allreduce with a dead/hung peer returned";
  } catch (const biud::DistError& e) {
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    biud::test::writeText(dir / "error.txt", std::string(e.what()) + "\n" + std::to_string(secs));
  }
}

}  // namespace

// The rank entry point: does nothing unless started by runRanks()/biud-launch with a scenario.
TEST(DistWorker, Rank) {
  const char* scenario = std::getenv("BIUD_DIST_WORKER");
  if (!scenario) GTEST_SKIP() << "rank entry point of the 2-process tests (runs only when spawned by them)";
  torch::set_num_threads(1);
  const std::string name = scenario;
  const fs::path dir = std::getenv("BIUD_DIST_DIR") ? std::getenv("BIUD_DIST_DIR") : ".";
  if (name == "fail") {  // for the launcher test: rank 1 fails, rank 0 would run long
    if (std::getenv("RANK") && std::string(std::getenv("RANK")) == "1") {
      std::fprintf(stderr, "boom: rank one cannot go on\n");
      std::fflush(stderr);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return;
  }
  biud::DistributedConfig cfg;
  cfg.timeout_s = std::getenv("BIUD_DIST_TIMEOUT") ? std::atof(std::getenv("BIUD_DIST_TIMEOUT")) : 30;
  auto comm = dist::initFromEnv(cfg, c10::Device(c10::kCPU));
  if (name == "collectives")
    workerCollectives(*comm);
  else if (name == "train")
    workerTrain(comm, dir);
  else if (name == "die")
    workerFailure(*comm, true, dir);
  else if (name == "hang")
    workerFailure(*comm, false, dir);
  else if (name == "die0")
    workerFailure(*comm, true, dir, 0);
  else
    FAIL() << "unknown scenario " << name;
}

// ---------------------------------------------------------------------------------------------
// Rendezvous from the environment.

TEST(DistRendezvous, SlurmNodeLists) {
  EXPECT_EQ(dist::firstSlurmHost("node[01-04]"), "node01");
  EXPECT_EQ(dist::firstSlurmHost("node[07,01-03]"), "node07");
  EXPECT_EQ(dist::firstSlurmHost("gpu-a100-3"), "gpu-a100-3");
  EXPECT_EQ(dist::firstSlurmHost("a[3-4],b[1-2]"), "a3");
  EXPECT_EQ(dist::firstSlurmHost("cn001,cn002"), "cn001");
  EXPECT_EQ(dist::firstSlurmHost("rack[2-3]-n[010-012]"), "rack2-n010");
  EXPECT_THROW(dist::firstSlurmHost(""), biud::ConfigError);
  EXPECT_THROW(dist::firstSlurmHost("node[01-04"), biud::ConfigError);
  EXPECT_THROW(dist::firstSlurmHost("node[]"), biud::ConfigError);
}

TEST(DistRendezvous, EnvironmentSources) {
  auto from = [](std::map<std::string, std::string> m) {
    return dist::detectRankInfo([m](const char* k) -> const char* {
      auto it = m.find(k);
      return it == m.end() ? nullptr : it->second.c_str();
    });
  };
  auto none = from({});
  EXPECT_EQ(none.worldSize, 1);
  EXPECT_EQ(none.source, "none");
  auto tr = from(
      {{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "29501"}});
  EXPECT_EQ(tr.source, "torchrun");
  EXPECT_EQ(tr.rank, 3);
  EXPECT_EQ(tr.worldSize, 8);
  EXPECT_EQ(tr.localRank, 1);
  EXPECT_EQ(tr.masterAddr, "10.0.0.5");
  EXPECT_EQ(tr.masterPort, 29501);
  auto sl = from({{"SLURM_PROCID", "5"},
                  {"SLURM_NTASKS", "8"},
                  {"SLURM_LOCALID", "1"},
                  {"SLURM_JOB_NODELIST", "gpu[12-15]"},
                  {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(sl.source, "slurm");
  EXPECT_EQ(sl.rank, 5);
  EXPECT_EQ(sl.worldSize, 8);
  EXPECT_EQ(sl.localRank, 1);
  EXPECT_EQ(sl.masterAddr, "gpu12");
  EXPECT_EQ(sl.masterPort, 20000 + 123456 % 20000);
  // torchrun variables win over SLURM's (torchrun inside an allocation).
  auto both = from({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(both.source, "torchrun");
  EXPECT_EQ(both.worldSize, 1);
  // Errors name the variable.
  try {
    from({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
    ADD_FAILURE();
  } catch (const biud::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(from({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}), biud::ConfigError);  // no MASTER_ADDR
  EXPECT_THROW(from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), biud::ConfigError);
}

TEST(DistRendezvous, BackendChoice) {
  EXPECT_EQ(dist::resolveBackend("auto", c10::Device(c10::kCPU)), "gloo");
  EXPECT_EQ(dist::resolveBackend("gloo", c10::Device(c10::kCPU)), "gloo");
  EXPECT_THROW(dist::resolveBackend("nccl", c10::Device(c10::kCPU)), biud::ConfigError);
#ifdef BIUD_WITH_CUDA
  EXPECT_EQ(dist::resolveBackend("auto", c10::Device(c10::kCUDA, 0)), "nccl");
#endif
}

TEST(DistCheckpoint, WorldSizeOnResume) {
  EXPECT_NO_THROW(dist::checkResumeWorldSize(2, 2, "runs/a/ckpt-100"));
  try {
    dist::checkResumeWorldSize(4, 2, "runs/a/ckpt-100");
    ADD_FAILURE();
  } catch (const biud::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("runs/a/ckpt-100"), std::string::npos) << m;
    EXPECT_NE(m.find("world size 4"), std::string::npos) << m;
    EXPECT_NE(m.find("--nproc 4"), std::string::npos) << m;
  }
  auto single = dist::makeSingleProcess();
  const std::string meta = dist::distMetaJson(*single);
  EXPECT_EQ(meta, R"({"backend":"single","world_size":1})");
  EXPECT_NO_THROW(dist::checkResumeWorldSize(meta, 1, "x"));
  EXPECT_THROW(dist::checkResumeWorldSize(meta, 2, "x"), biud::ConfigError);
  EXPECT_NO_THROW(dist::checkResumeWorldSize("{}", 1, "x"));  // older metadata: single process only
  EXPECT_THROW(dist::checkResumeWorldSize("{}", 8, "x"), biud::ConfigError);
  EXPECT_THROW(dist::checkResumeWorldSize("{not json", 1, "x"), biud::DataError);
}

// ---------------------------------------------------------------------------------------------
// Single process: the same code path, collectives are identities.

TEST(DistSingle, IdentityCollectivesAndNoOpDataParallel) {
  auto c = dist::makeSingleProcess();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->worldSize(), 1);
  EXPECT_FALSE(c->distributed());
  torch::Tensor t = torch::tensor({1.0f, 2.0f});
  c->allreduce(t, dist::ReduceOp::Avg);
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0f, 2.0f})));
  EXPECT_TRUE(torch::equal(c->allGather(t.view({1, 2})), t.view({1, 2})));
  torch::Tensor x = torch::ones({3, 2}, torch::requires_grad());
  EXPECT_TRUE(dist::allGatherWithGrad(c, x).is_same(x));
  EXPECT_TRUE(torch::equal(dist::globalRowIndices(*c, 3), torch::arange(3)));
  // DataParallel leaves gradients exactly as backward made them.
  torch::Tensor w = torch::full({2}, 3.0f, torch::requires_grad());
  dist::DataParallel dp(c, {w});
  (w * w).sum().backward();
  dp.finalize();
  EXPECT_TRUE(torch::equal(w.grad(), torch::full({2}, 6.0f)));
  EXPECT_THROW(c->broadcast(t, 1), biud::ValueError);
  // GlobalBatch in one process: the losses' "undefined global = local" and no rescaling, so a
  // task runs exactly the single-process arithmetic.
  for (const auto& comm : {c, std::shared_ptr<dist::Communicator>()}) {
    const dist::GlobalBatch g(comm);
    EXPECT_FALSE(g.distributed());
    EXPECT_FALSE(g.withGrad(x).defined());
    EXPECT_FALSE(g.constant(x).defined());
    EXPECT_TRUE(g.allRows(x).is_same(x));
    EXPECT_EQ(g.offset(3), 0);
    const torch::Tensor m = torch::tensor({2.5});
    EXPECT_TRUE(g.globalMean(m, 7).is_same(m));
  }
}

// ---------------------------------------------------------------------------------------------
// Two ranks on Gloo (loopback).

TEST(DistGloo, CollectivesThroughBiudLaunch) {
  biud::test::TempDir tmp("dist-coll");
  const std::string launch = biud::test::app("biud-launch");
  ASSERT_TRUE(fs::exists(launch)) << launch << " is missing: build all targets (scripts/build.sh)";
  const std::string cmd = "BIUD_DIST_WORKER=collectives BIUD_DIST_TIMEOUT=30 timeout 120 " + biud::test::quote(launch) +
                          " --nproc 2 --prefix -- " + biud::test::quote(selfExe()) + " --gtest_filter=DistWorker.Rank";
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("[rank 1] [  PASSED  ] 1 test"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank 0] [  PASSED  ] 1 test"), std::string::npos) << r.out;
}

TEST(DistGloo, TwoRanksTrainLikeOneRankWithTheFullBatch) {
  biud::test::TempDir tmp("dist-train");
  auto runs = runRanks("train", 2, tmp.path(), 30, std::chrono::seconds(120));
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(exitedOk(runs[r])) << "rank " << r << ":\n" << runs[r].log;
  torch::set_num_threads(1);
  auto single = dist::makeSingleProcess();
  for (const auto& spec : trainSpecs()) {
    TrainSpec ref = spec;
    ref.accum = 1;  // the reference takes the whole global batch at once
    TrainResult expect = train(single, ref);
    EXPECT_EQ(expect.syncedLayers, 0) << "a single process attaches no SyncBatchNorm group";
    for (int r = 0; r < 2; ++r) {
      std::vector<torch::Tensor> got;
      torch::load(got, (tmp.path() / (specName(spec) + ".rank" + std::to_string(r) + ".pt")).string());
      if (spec.loss == "bn" && !spec.syncBn) {
        // Per-rank BatchNorm (4 of the 8 rows each) is another computation: losses, weights and
        // running statistics end elsewhere. This is what makes the synced comparison able to fail.
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i)
          worst = std::max(worst, (got[i] - expect.values[i]).abs().max().item<double>());
        EXPECT_GT(worst, 1e-3) << specName(spec) << " rank " << r << ": per-rank statistics matched the full batch";
        continue;
      }
      // bn: SyncBatchNorm over 2 ranks against torch's BatchNorm over the whole batch in one
      // process, running mean and variance included (they are buffers in `values`).
      expectClose(got, expect.values, 1e-5, specName(spec) + " rank " + std::to_string(r));
    }
    // The comparison can fail: a run whose gradients are not averaged (sum) ends elsewhere.
    EXPECT_GT((expect.values[0] - expect.values[0][0]).abs().max().item<double>(), 1e-3) << "losses do not move";
  }
}

TEST(DistGloo, KilledRankEndsTheJobNamingIt) {
  biud::test::TempDir tmp("dist-die");
  const double timeout = 5;
  const auto t0 = Clock::now();
  auto runs = runRanks("die", 2, tmp.path(), timeout, std::chrono::seconds(60), {0});
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(WIFSIGNALED(runs[1].status) && WTERMSIG(runs[1].status) == SIGKILL) << runs[1].log;
  ASSERT_TRUE(exitedOk(runs[0])) << runs[0].log;
  const std::string err = biud::test::readText(tmp.path() / "error.txt");
  EXPECT_NE(err.find("failed on rank 0"), std::string::npos) << err;
  EXPECT_NE(err.find("rank 1 is dead"), std::string::npos) << err;
  EXPECT_LT(secs, 30) << err;
}

TEST(DistGloo, KilledRankZeroIsNamedByTheOthers) {
  // Rank 0 also hosts the rendezvous store: its death is seen through the store going away.
  biud::test::TempDir tmp("dist-die0");
  auto runs = runRanks("die0", 2, tmp.path(), 5, std::chrono::seconds(60), {1});
  EXPECT_TRUE(WIFSIGNALED(runs[0].status) && WTERMSIG(runs[0].status) == SIGKILL) << runs[0].log;
  ASSERT_TRUE(exitedOk(runs[1])) << runs[1].log;
  const std::string err = biud::test::readText(tmp.path() / "error.txt");
  EXPECT_NE(err.find("failed on rank 1"), std::string::npos) << err;
  EXPECT_NE(err.find("rank 0 is dead"), std::string::npos) << err;
}

TEST(DistGloo, HungRankTimesOutNamingIt) {
  biud::test::TempDir tmp("dist-hang");
  auto runs = runRanks("hang", 2, tmp.path(), 3, std::chrono::seconds(60), {0});
  ASSERT_TRUE(exitedOk(runs[0])) << runs[0].log;
  const std::string err = biud::test::readText(tmp.path() / "error.txt");
  EXPECT_NE(err.find("rank 1 is alive but has not reached this collective (it is at #1)"), std::string::npos) << err;
  EXPECT_NE(err.find("allreduce #2"), std::string::npos) << err;
  const double secs = std::stod(err.substr(err.rfind('\n') + 1));
  EXPECT_GE(secs, 2.5) << err;  // it waited for the timeout (3 s) ...
  EXPECT_LT(secs, 10) << err;   // ... and not much longer
}

TEST(DistLaunch, FailedRankStopsTheJobAndIsReported) {
  const std::string launch = biud::test::app("biud-launch");
  ASSERT_TRUE(fs::exists(launch)) << launch << " is missing: build all targets (scripts/build.sh)";
  const auto t0 = Clock::now();
  auto r = biud::test::run("BIUD_DIST_WORKER=fail timeout 120 " + biud::test::quote(launch) + " --nproc 2 --grace 2 " +
                           biud::test::quote(selfExe()) + " --gtest_filter=DistWorker.Rank");
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("rank 1 failed (exit code 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank 1] boom: rank one cannot go on"), std::string::npos) << r.out;
  EXPECT_LT(secs, 30) << r.out;  // rank 0 (sleeping 60 s) was stopped
}

TEST(DistLaunch, UsageErrors) {
  const std::string launch = biud::test::app("biud-launch");
  ASSERT_TRUE(fs::exists(launch));
  auto r = biud::test::run(biud::test::quote(launch) + " --nproc 2");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("no program given"), std::string::npos) << r.out;
  r = biud::test::run(biud::test::quote(launch) + " --nproc 1 -- /nonexistent/prog");
  EXPECT_EQ(r.rc, 127) << r.out;
  EXPECT_NE(r.out.find("cannot run `/nonexistent/prog`"), std::string::npos) << r.out;
  r = biud::test::run(biud::test::quote(launch) + " --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--nproc"), std::string::npos);
}

#ifdef BIUD_WITH_CUDA
// The NCCL backend is compiled and linked in CUDA builds. Without a GPU, creating it must end in a
// clear DistError from ProcessGroupNCCL (not a link error or a hang); with one, it must work.
TEST(DistNccl, BackendIsBuiltAndReachable) {
  const int port = freePort();
  biud::DistributedConfig cfg;
  cfg.backend = "nccl";
  cfg.timeout_s = 20;
  std::string outcome[2];
  auto rank = [&](int r) {
    dist::RankInfo info;
    info.rank = r;
    info.worldSize = 2;
    info.masterAddr = "127.0.0.1";
    info.masterPort = port;
    info.source = "test";
    try {
      auto c = dist::connect(info, cfg, c10::Device(c10::kCUDA, 0));
      outcome[r] = "backend " + c->backend();
    } catch (const biud::DistError& e) {
      outcome[r] = e.what();
    } catch (const std::exception& e) {
      outcome[r] = std::string("unexpected: ") + e.what();
    }
  };
  std::thread t0(rank, 0), t1(rank, 1);
  t0.join();
  t1.join();
  for (int r = 0; r < 2; ++r) {
    const bool built =
        outcome[r] == "backend nccl" || outcome[r].find("creating the nccl process group") != std::string::npos;
    EXPECT_TRUE(built) << "rank " << r << ": " << outcome[r];
    std::printf("rank %d: %s\n", r, outcome[r].c_str());
  }
}
#endif
