// Multi-process training through the apps (biud-launch --nproc 2 -- biud-train) on a tiny
// synthetic set, for the real clip2d, biud and report tasks:
//  - 2 ranks with a per-rank batch of B/2 follow the trajectory of 1 rank with batch B: the same
//    losses at every step and the same final weights (1e-5). This covers the global-batch
//    sharding of the samplers, item-keyed augmentation and EFM masking, the gathered
//    contrastive/relation losses (local_loss + gather_with_grad), the globally normalised EFM and report token
//    losses (dist/GlobalBatch.h) and DataParallel's gradient averaging. The reference is the single-process run, which
//    the other tests check against PyTorch.
//  - a rank killed mid-run (SIGKILL) ends the job with an error naming it, and `--resume latest`
//    with the same world size then ends with exactly the weights of an uninterrupted run.
//  - a resume with another world size is refused with the fix in the message.
#include <algorithm>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;
using biud::test::tinyQuickstartFlags;

/// The shared tiny data set, tokenizer, CT cache and X-ray teacher (built once per binary run).
class DistTrain : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    dir_ = new biud::test::TempDir("dist-train");
    const std::string D = dir_->str();
    const std::string cfg = (biud::test::sourceDir() / "configs" / "quickstart.yaml").string();
    common_ = " --config " + quote(cfg) + " --set threads=1 --set data.manifest=" + D + "/data/ct/manifest.csv" +
              " --set data.xray_manifest=" + D + "/data/cxr/manifest.csv --set data.cache_dir=" + D + "/cache" +
              " --set data.pairing=" + D + "/retrieval/pairing.csv --set text.vocab=" + D + "/tok/vocab.txt" +
              " --set model.teacher=" + D + "/teacher --set schedule.name=constant --set schedule.warmup_steps=0" +
              " --set trainer.val_every=0 --set eval.bootstrap=0 --set eval.prompts= --set logging.every_steps=1" +
              " --set data.loader.workers=1 --set data.loader.batch_size=8 --set distributed.timeout_s=20 --quiet" +
              // A ViT CT encoder by default; the ResNet tests below switch to the quickstart's
              // 3D ResNet, whose BatchNorm is synchronised over the ranks (SyncBatchNorm).
              " --set model.ct_encoder.arch=vit3d" + tinyQuickstartFlags() + " --set data.augment.random_crop=[]";
    setupOk(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=24 --set synth.n_external=0" +
            " --set synth.n_cxr=40 --set synth.size=[48,48,24] --set synth.xray_size=64 --out " + D + "/data --quiet");
    setupOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 300 --input " + D +
            "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet");
    setupOk(app("biud-preprocess") + common_ + " --manifest " + D + "/data/ct/manifest.csv --out " + D + "/cache");
    setupOk(app("biud-train") + common_ + " --set task=clip2d --set trainer.steps=1 --out " + D + "/teacher");
    setupOk(app("biud-retrieve") + common_ + " --out " + D + "/retrieval");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static void setupOk(const std::string& cmd) {
    auto r = biud::test::run(cmd);
    if (r.rc != 0) {
      setupError_ += cmd + "\n" + r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0) + "\n";
    }
  }
  void SetUp() override { ASSERT_TRUE(setupError_.empty()) << setupError_; }

  static std::string D() { return dir_->str(); }
  /// biud-train with `args`; `nproc` > 1 runs it under biud-launch.
  /// `quiet` = false drops --quiet, so that the run's log.txt gets the info lines.
  static biud::test::CommandResult train(int nproc, const std::string& args, const std::string& env = "",
                                         bool quiet = true) {
    std::string cmd = env + " timeout 120 ";
    if (nproc > 1) cmd += quote(app("biud-launch")) + " --nproc " + std::to_string(nproc) + " --grace 20 -- ";
    std::string common = common_;
    if (!quiet) common.erase(common.find(" --quiet"), 8);
    cmd += quote(app("biud-train")) + common + " " + args;
    return biud::test::run(cmd);
  }

  static biud::test::TempDir* dir_;
  static std::string common_, setupError_;
};
biud::test::TempDir* DistTrain::dir_ = nullptr;
std::string DistTrain::common_, DistTrain::setupError_;

std::string tail(const std::string& s) { return s.substr(s.size() > 4000 ? s.size() - 4000 : 0); }

/// The logged training losses of a run, in step order.
std::vector<double> losses(const std::string& run) {
  std::vector<double> out;
  std::istringstream in(biud::test::readText(run + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss") && j["loss"].is_number()) out.push_back(j["loss"].get<double>());
  }
  return out;
}

std::map<std::string, torch::Tensor> weights(const std::string& run, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%06d", step);
  return biud::tensor::readSafetensors(run + "/checkpoints/" + name + "/model.safetensors");
}

/// Largest absolute difference over all tensors (inf when the key sets differ).
double maxDiff(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b,
               std::string* where = nullptr) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double worst = 0;
  for (const auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second.sizes() != t.sizes()) return INFINITY;
    const double d = (t.to(torch::kFloat64) - it->second.to(torch::kFloat64)).abs().max().item<double>();
    if (d > worst) {
      worst = d;
      if (where) *where = k;
    }
  }
  return worst;
}

/// 1 rank with batch 2b vs 2 ranks with batch b: same losses and weights; and the comparison can
/// fail (2 ranks with batch 2b, i.e. another global batch, end elsewhere).
void expectTwoRanksLikeOne(const std::string& name, const std::string& args, int b, int steps) {
  const std::string one = DistTrain::D() + "/" + name + "_1x" + std::to_string(2 * b);
  const std::string two = DistTrain::D() + "/" + name + "_2x" + std::to_string(b);
  const std::string big = DistTrain::D() + "/" + name + "_2x" + std::to_string(2 * b);
  // SGD with momentum: with Adam, coordinates whose gradient is zero up to rounding (attention
  // key biases: softmax ignores them) move by +-lr from rounding noise alone, in one process
  // too, so weights could only be compared to ~lr. The gradients are what must match.
  const std::string s =
      " --set trainer.steps=" + std::to_string(steps) + " --set optimizer.name=sgd --set optimizer.lr=0.2 ";
  auto r1 = DistTrain::train(1, args + s + "--set data.loader.batch_size=" + std::to_string(2 * b) + " --out " + one);
  ASSERT_EQ(r1.rc, 0) << tail(r1.out);
  auto r2 = DistTrain::train(2, args + s + "--set data.loader.batch_size=" + std::to_string(b) + " --out " + two);
  ASSERT_EQ(r2.rc, 0) << tail(r2.out);
  auto r3 = DistTrain::train(2, args + s + "--set data.loader.batch_size=" + std::to_string(2 * b) + " --out " + big);
  ASSERT_EQ(r3.rc, 0) << tail(r3.out);

  const auto l1 = losses(one), l2 = losses(two), l3 = losses(big);
  ASSERT_EQ(l1.size(), static_cast<size_t>(steps)) << one;
  ASSERT_EQ(l2.size(), l1.size()) << two;
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l1[i], l2[i], 1e-5) << name << ": loss of step " << i + 1;
  // Ten times the tolerance above: the runs really trained (the losses are logged to 1e-6).
  EXPECT_GT(std::abs(l1.back() - l1.front()), 1e-4) << name << ": the loss does not move";

  std::string where;
  const auto w1 = weights(one, steps), w2 = weights(two, steps), w3 = weights(big, steps);
  const double d = maxDiff(w1, w2, &where);
  EXPECT_LE(d, 1e-5) << name << ": final weights differ by " << d << " (at " << where << ")";
  // The comparison can fail: another global batch ends elsewhere.
  EXPECT_GT(maxDiff(w1, w3), 1e-4) << name << ": 2 ranks x " << 2 * b << " ended where 1 rank x " << 2 * b << " did";
  EXPECT_GT(std::abs(l1.back() - l3.back()), 1e-5) << name;
}

}  // namespace

TEST_F(DistTrain, Clip2dTwoRanksWithHalfTheBatchTrainLikeOneRank) {
  // A ViT X-ray encoder (LayerNorm); the ResNet one is below.
  expectTwoRanksLikeOne("clip2d",
                        "--set task=clip2d --set model.xray_encoder.arch=vit2d --set model.xray_encoder.image_size=[64]"
                        " --set model.xray_encoder.patch=[16] --set trainer.save_every=0",
                        4, 4);
}

TEST_F(DistTrain, BiudTwoRanksWithHalfTheBatchTrainLikeOneRank) {
  // All losses on (RoCo soft with false negatives, pair, sem, EFM), 2 micro-batches per step.
  expectTwoRanksLikeOne("biud", "--set task=biud --set trainer.grad_accum=2 --set trainer.save_every=0", 2, 3);
}

/// BatchNorm models (the quickstart's ResNets): 2 ranks with batch b and SyncBatchNorm against
/// 1 process with batch 2b, after one SGD step. A ResNet's gradient is sensitive to float rounding
/// (in one process, the channels-last and the default memory layout already end 1e-5 apart after
/// one step; after a few steps the runs drift apart), so the yardstick is that layout
/// difference, not a fixed 1e-5: SyncBatchNorm must be as close to the single process as the
/// single process is to itself. Per-rank statistics (distributed.sync_batchnorm=false, DDP's
/// default) must land far outside it, which shows the comparison can fail.
void expectSyncedLikeOne(const std::string& name, const std::string& args, int b) {
  const std::string base = DistTrain::D() + "/" + name;
  const std::string s =
      " --set trainer.steps=1 --set trainer.save_every=1 --set optimizer.name=sgd"
      " --set optimizer.lr=0.02 ";
  const std::string one = " --set data.loader.batch_size=" + std::to_string(2 * b);
  const std::string half = " --set data.loader.batch_size=" + std::to_string(b);
  auto r1 = DistTrain::train(1, args + s + one + " --out " + base + "_1");
  ASSERT_EQ(r1.rc, 0) << tail(r1.out);
  auto r1c = DistTrain::train(1, args + s + one + " --out " + base + "_1_contiguous", "BIUD_CHANNELS_LAST=0");
  ASSERT_EQ(r1c.rc, 0) << tail(r1c.out);
  auto r2 = DistTrain::train(2, args + s + half + " --out " + base + "_2");
  ASSERT_EQ(r2.rc, 0) << tail(r2.out);
  auto r2n = DistTrain::train(2, args + s + half + " --set distributed.sync_batchnorm=false --out " + base + "_2_own");
  ASSERT_EQ(r2n.rc, 0) << tail(r2n.out);

  const auto w1 = weights(base + "_1", 1), w1c = weights(base + "_1_contiguous", 1), w2 = weights(base + "_2", 1),
             w2n = weights(base + "_2_own", 1);
  std::string where, whereOwn;
  const double layout = maxDiff(w1, w1c), synced = maxDiff(w1, w2, &where), own = maxDiff(w1, w2n, &whereOwn);
  const double bound = std::max(3 * layout, 2e-5);
  EXPECT_LE(synced, bound) << name << ": 2 ranks with SyncBatchNorm differ by " << synced << " (at " << where
                           << ") from 1 process; its two memory layouts differ by " << layout;
  EXPECT_GT(own, 10 * bound) << name << ": per-rank BatchNorm (" << own << " at " << whereOwn
                             << ") is as close to the full batch as SyncBatchNorm";
  // Running statistics are part of the weights compared (model.safetensors holds the buffers).
  EXPECT_TRUE(w2.count("ct_encoder.bn1.running_var") || w2.count("image_encoder.bn1.running_var")) << name;
  // The first loss (the forward through the global statistics), with the same yardstick.
  const auto l1 = losses(base + "_1"), l1c = losses(base + "_1_contiguous"), l2 = losses(base + "_2"),
             l2n = losses(base + "_2_own");
  ASSERT_TRUE(l1.size() == 1 && l1c.size() == 1 && l2.size() == 1 && l2n.size() == 1) << name;
  const double lossBound = std::max(3 * std::abs(l1[0] - l1c[0]), 2e-5);
  EXPECT_LE(std::abs(l1[0] - l2[0]), lossBound)
      << name << ": first loss " << l2[0] << " against " << l1[0] << "; the layouts' " << l1c[0];
  std::printf(
      "%s: first loss 1 process %.7f (contiguous %.7f), 2 ranks synced %.7f, per rank %.7f; weights: "
      "layouts %.2e, synced %.2e, per rank %.2e\n",
      name.c_str(), l1[0], l1c[0], l2[0], l2n[0], layout, synced, own);
}

TEST_F(DistTrain, BiudResNetTwoRanksWithSyncBatchNormTrainLikeOneRank) {
  // The quickstart's 3D ResNet CT encoder (distributed.sync_batchnorm is on by default).
  expectSyncedLikeOne("biud_resnet",
                      "--set task=biud --set model.ct_encoder.arch=resnet3d18 --set model.ct_encoder.preset=tiny", 3);
}

TEST_F(DistTrain, Clip2dResNetTwoRanksWithSyncBatchNormTrainLikeOneRank) {
  // The quickstart's X-ray expert: a 2D ResNet.
  expectSyncedLikeOne("clip2d_resnet", "--set task=clip2d", 4);
}

/// The thread count a run logged ("..., N intra-op threads" in log.txt), or -1.
int loggedThreads(const std::string& run) {
  const std::string log = biud::test::readText(run + "/log.txt");
  const auto at = log.find(" intra-op threads");
  if (at == std::string::npos) return -1;
  auto b = log.rfind(' ', at - 1);
  return std::stoi(log.substr(b + 1, at - b - 1));
}

TEST_F(DistTrain, AutoThreadsGiveEachRankItsShareOfTheCores) {
  // threads: 0 = LibTorch's default in one process, that default divided by the ranks of the node
  // under biud-launch (LOCAL_WORLD_SIZE), so 2 ranks on 2 cores do not start 2 threads each.
  // Without --quiet, so that log.txt (rank 0's) holds the info line with the thread count.
  const std::string args = "--set task=clip2d --set threads=0 --set trainer.steps=1 --set trainer.save_every=0";
  auto run = [&](int nproc, const std::string& env, const std::string& out) {
    auto r = train(nproc, args + " --out " + D() + "/" + out, env, /*quiet=*/false);
    EXPECT_EQ(r.rc, 0) << tail(r.out);
    return loggedThreads(D() + "/" + out);
  };
  const int all = run(1, "env -u OMP_NUM_THREADS", "threads_1");
  ASSERT_GE(all, 1) << "no thread count in log.txt";
  EXPECT_EQ(run(2, "env -u OMP_NUM_THREADS", "threads_2"), std::max(1, all / 2));
  // OMP_NUM_THREADS set by the user is left alone (LibTorch caps it at the cores: 2 here).
  if (all >= 2) EXPECT_EQ(run(2, "env OMP_NUM_THREADS=2", "threads_omp"), 2);
}

TEST_F(DistTrain, KilledRankEndsTheJobAndResumeEqualsAnUninterruptedRun) {
  const std::string args =
      "--set task=biud --set data.loader.batch_size=4 --set trainer.steps=4 --set trainer.save_every=2";
  const std::string full = D() + "/kill_full", cut = D() + "/kill_cut";
  auto r = train(2, args + " --out " + full);
  ASSERT_EQ(r.rc, 0) << tail(r.out);

  // Rank 1 dies (SIGKILL) right after step 3; the last checkpoint is step 2.
  auto k = train(2, args + " --out " + cut, "BIUD_FAULT_KILL_RANK_AT_STEP=1:3");
  EXPECT_EQ(k.rc, 128 + SIGKILL) << tail(k.out);
  EXPECT_NE(k.out.find("rank 1 (pid"), std::string::npos) << tail(k.out);
  EXPECT_NE(k.out.find("killed by signal 9"), std::string::npos) << tail(k.out);
  // Rank 0 saw it itself (Gloo's closed connection + the stopped heartbeat), not only the launcher.
  EXPECT_NE(k.out.find("rank 1 is dead"), std::string::npos) << tail(k.out);
  EXPECT_TRUE(std::filesystem::exists(cut + "/checkpoints/step_000002/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(cut + "/checkpoints/step_000004"));

  // Another world size is refused, naming the fix.
  auto w = train(1, args + " --resume latest --out " + cut);
  EXPECT_NE(w.rc, 0);
  EXPECT_NE(w.out.find("--nproc 2"), std::string::npos) << tail(w.out);

  auto again = train(2, args + " --resume latest --out " + cut);
  ASSERT_EQ(again.rc, 0) << tail(again.out);
  std::string where;
  const double d = maxDiff(weights(full, 4), weights(cut, 4), &where);
  EXPECT_EQ(d, 0.0) << "resumed run differs from the uninterrupted one at " << where;
  EXPECT_GT(maxDiff(weights(cut, 2), weights(cut, 4)), 0.0) << "steps 3-4 changed nothing";
}

TEST_F(DistTrain, InterruptStopsAllRanksAtTheSameStep) {
  // SIGINT reaches the ranks at slightly different steps; they must agree on one step, all save
  // it and exit 130 (a rank stopping alone would leave the other blocked in a collective).
  const std::string run = D() + "/interrupt";
  const std::string cmd = quote(app("biud-launch")) + " --nproc 2 --grace 20 -- " + quote(app("biud-train")) + common_ +
                          " --set task=clip2d --set data.loader.batch_size=4 --set trainer.steps=100000" +
                          " --set trainer.save_every=0 --out " + run;
  // Start, wait until training logged a step, interrupt the launcher, report its exit code.
  const std::string script = "( " + cmd + " ) > " + quote(run + ".log") + " 2>&1 & pid=$!; " +
                             "for i in $(seq 600); do [ -s " + quote(run + "/metrics.jsonl") +
                             " ] && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo rc=$?";
  auto r = biud::test::run("timeout 120 bash -c " + quote(script));
  const std::string log = biud::test::readText(run + ".log");
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << tail(log);
  std::vector<long> steps;
  for (const char* rank : {"[rank 0]", "[rank 1]"}) {
    const auto at = log.find(std::string(rank) + " [train] stop requested at step ");
    ASSERT_NE(at, std::string::npos) << rank << " did not stop cleanly:\n" << tail(log);
    steps.push_back(std::stol(log.substr(log.find("at step ", at) + 8)));
  }
  EXPECT_EQ(steps[0], steps[1]) << tail(log);
  EXPECT_GT(steps[0], 0);
  char name[32];
  std::snprintf(name, sizeof name, "step_%06ld", steps[0]);
  EXPECT_TRUE(std::filesystem::exists(run + "/checkpoints/" + name + "/model.safetensors")) << tail(log);
  EXPECT_EQ(log.find("DistError"), std::string::npos) << tail(log);
  EXPECT_EQ(log.find("failed on rank"), std::string::npos) << tail(log);
}

TEST_F(DistTrain, ReportTwoRanksWithHalfTheBatchTrainLikeOneRank) {
  // The report decoder's loss is a mean over tokens, and the two ranks' reports differ in length:
  // the mean over the global batch's tokens (dist::GlobalBatch::globalMean), not the mean of the
  // ranks' means, is what one process computes.
  const std::string pre = D() + "/biud_for_report";
  auto r = train(1, "--set task=biud --set trainer.steps=1 --out " + pre);
  ASSERT_EQ(r.rc, 0) << tail(r.out);
  expectTwoRanksLikeOne("report", "--set task=report --set report.run=" + pre + " --set trainer.save_every=0", 2, 3);
}
