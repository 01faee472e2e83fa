// biud-dist-selftest: check a distributed setup (rendezvous, collectives with known answers) and
// measure gradient-allreduce bandwidth: DataParallel's bucketed reducer against one allreduce per
// tensor. Run it under a launcher:
//   biud-launch --nproc 2 -- biud-dist-selftest --bench
#include <chrono>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/DataParallel.h"
#include "biud/dist/Rendezvous.h"
#include "biud/tensor/Runtime.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace dist = biud::dist;

/// Known-answer checks: every rank contributes values derived from its rank.
void selfTest(dist::Communicator& c, const c10::Device& dev) {
  const int r = c.rank(), w = c.worldSize();
  const auto opt = torch::TensorOptions().device(dev);
  torch::Tensor t = torch::full({1000}, static_cast<float>(r + 1), opt);
  c.allreduce(t);
  const float want = static_cast<float>(w * (w + 1) / 2);
  BIUD_CHECK(torch::all(t == want).item<bool>(), biud::DistError,
             "selftest: allreduce gave {} instead of {} on rank {}", t[0].item<float>(), want, r);
  torch::Tensor g = c.allGather(torch::full({2, 3}, static_cast<float>(r), opt));
  BIUD_CHECK(g.size(0) == 2 * w, biud::DistError, "selftest: allgather returned {} rows, expected {}", g.size(0),
             2 * w);
  for (int q = 0; q < w; ++q)
    BIUD_CHECK(torch::all(g.narrow(0, 2 * q, 2) == q).item<bool>(), biud::DistError,
               "selftest: allgather rows of rank {} are wrong on rank {}", q, r);
  torch::Tensor b = torch::full({7}, r == 0 ? 42.0f : -1.0f, opt);
  c.broadcast(b, 0);
  BIUD_CHECK(torch::all(b == 42.0f).item<bool>(), biud::DistError, "selftest: broadcast failed on rank {}", r);
  c.barrier();
  biud::log::info("selftest", "allreduce, allgather, broadcast and barrier agree on all {} rank(s) ({})", w,
                  c.backend());
}

struct BenchResult {
  double ms = 0, gbps = 0;
};

template <class F>
BenchResult timeIt(dist::Communicator& c, int iters, double bytes, F&& f) {
  f();  // warm-up (connections, buffers)
  c.barrier();
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) f();
  c.barrier();
  BenchResult r;
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / iters;
  r.gbps = bytes / (r.ms * 1e-3) / 1e9;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  biud::app::App app("biud-dist-selftest",
                     "Check the distributed setup (rendezvous and collectives against known answers) and, with "
                     "--bench, measure gradient allreduce: DataParallel's bucketed reducer vs one allreduce per "
                     "tensor. Start it with biud-launch, torchrun or srun; alone it runs as a single process.");
  app.addCommon(biud::app::kDevice | biud::app::kThreads);
  bool bench = false;
  int layers = 4, width = 384, iters = 5;
  double bucketMb = 25, timeoutS = 120;
  std::string backend = "auto", json;
  auto& cli = app.cli();
  cli.add_flag("--bench", bench, "also measure allreduce bandwidth (bucketed vs per tensor)");
  cli.add_option("--layers", layers, "benchmark model: transformer blocks (12 tensors each)")
      ->check(CLI::Range(1, 1000));
  cli.add_option("--width", width, "benchmark model: hidden width (block = 12*width^2 + 13*width floats)")
      ->check(CLI::Range(8, 16384));
  cli.add_option("--iters", iters, "timed iterations per method")->check(CLI::Range(1, 100000));
  cli.add_option("--bucket-mb", bucketMb, "DataParallel bucket size in MiB")->check(CLI::PositiveNumber);
  cli.add_option("--backend", backend, "auto, gloo or nccl")->check(CLI::IsMember({"auto", "gloo", "nccl"}));
  cli.add_option("--timeout", timeoutS, "collective timeout in seconds")->check(CLI::PositiveNumber);
  cli.add_option("--json", json, "write the results (rank 0) to this JSON file");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    const auto info = dist::detectRankInfo();
    const c10::Device dev = biud::runtime::selectDevice(cfg.device, info.localRank);
    biud::runtime::setThreads(cfg.threads);
    biud::DistributedConfig dcfg;
    dcfg.backend = backend;
    dcfg.timeout_s = timeoutS;
    dcfg.bucket_mb = bucketMb;
    biud::log::setRank(info.rank, info.worldSize);
    auto comm = dist::connect(info, dcfg, dev);
    selfTest(*comm, dev);
    if (!bench) return 0;

    // A stack of transformer-block-shaped gradients.
    torch::manual_seed(7);
    const auto opt = torch::TensorOptions().device(dev);
    std::vector<torch::Tensor> params;
    const int64_t W = width;
    for (int l = 0; l < layers; ++l) {
      for (auto shape : std::vector<std::vector<int64_t>>{
               {3 * W, W}, {3 * W}, {W, W}, {W}, {4 * W, W}, {4 * W}, {W, 4 * W}, {W}, {W}, {W}, {W}, {W}}) {
        auto p = torch::randn(shape, opt).requires_grad_();
        p.mutable_grad() = torch::randn(shape, opt);
        params.push_back(p);
      }
    }
    double bytes = 0;
    for (auto& p : params) bytes += static_cast<double>(p.numel()) * 4;
    dist::DataParallel dp(comm, params, {}, bucketMb);
    auto bucketed = timeIt(*comm, iters, bytes, [&] { dp.finalize(); });
    auto perTensorAsync = timeIt(*comm, iters, bytes, [&] {
      std::vector<std::unique_ptr<dist::PendingWork>> works;
      for (auto& p : params) works.push_back(comm->allreduceAsync({p.mutable_grad()}));
      for (auto& w : works) w->wait();
    });
    auto perTensorSync = timeIt(*comm, iters, bytes, [&] {
      for (auto& p : params) comm->allreduce(p.mutable_grad());
    });
    if (comm->isMain()) {
      std::printf("allreduce of %zu gradient tensors, %.1f MiB, %d rank(s), %s on %s, %d iterations:\n", params.size(),
                  bytes / 1048576.0, comm->worldSize(), comm->backend().c_str(), dev.str().c_str(), iters);
      std::printf("  bucketed (DataParallel, %g MiB buckets, %d buckets): %8.2f ms  %6.3f GB/s\n", bucketMb,
                  dp.numBuckets(), bucketed.ms, bucketed.gbps);
      std::printf("  per tensor, all in flight:                        %8.2f ms  %6.3f GB/s\n", perTensorAsync.ms,
                  perTensorAsync.gbps);
      std::printf("  per tensor, one after another:                    %8.2f ms  %6.3f GB/s\n", perTensorSync.ms,
                  perTensorSync.gbps);
      if (!json.empty()) {
        nlohmann::json j;
        j["world_size"] = comm->worldSize();
        j["backend"] = comm->backend();
        j["tensors"] = params.size();
        j["mib"] = bytes / 1048576.0;
        j["bucket_mb"] = bucketMb;
        j["buckets"] = dp.numBuckets();
        j["bucketed"] = {{"ms", bucketed.ms}, {"gbps", bucketed.gbps}};
        j["per_tensor_async"] = {{"ms", perTensorAsync.ms}, {"gbps", perTensorAsync.gbps}};
        j["per_tensor_sync"] = {{"ms", perTensorSync.ms}, {"gbps", perTensorSync.gbps}};
        biud::fs::atomicWrite(json, j.dump(2) + "\n");
      }
    }
    return 0;
  });
}
