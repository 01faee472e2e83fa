// SyncBatchNorm against torch's BatchNorm in one process. A fake group of two "ranks" that hold
// identical rows (the gather repeats this rank's statistics, the allreduce doubles the sums)
// must give exactly the single-process forward and input gradient: the global batch is this
// batch twice. The 2-rank Gloo tests (tests/dist, tests/integration/DistTrainTest.cpp) check the
// real collectives against the full batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/models/ResNet.h"
#include "biud/models/SyncBatchNorm.h"

using namespace biud::models;

namespace {

/// Two ranks with the same rows.
class MirrorGroup : public BatchNormGroup {
 public:
  int worldSize() const override { return 2; }
  torch::Tensor allGather(const torch::Tensor& t) override {
    ++gathers;
    return torch::cat({t, t});
  }
  void allreduceSum(torch::Tensor& t) override {
    ++reduces;
    t.mul_(2);
  }
  int gathers = 0, reduces = 0;
};

struct Case {
  const char* name;
  std::vector<std::int64_t> shape;
  int layout;  // 0 contiguous, 1 channels-last, 2 a transposed view (generic path)
  torch::Dtype dtype;
};

torch::Tensor makeInput(const Case& c) {
  torch::manual_seed(7);
  // A large offset against a small spread: E[x^2] - E[x]^2 would lose the variance in float.
  auto x = torch::randn(c.shape, torch::TensorOptions().dtype(torch::kDouble)) * 0.5 + 40.0;
  x = x.to(c.dtype);
  if (c.layout == 1)
    x = x.contiguous(c.shape.size() == 5 ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::ChannelsLast);
  if (c.layout == 2) x = x.transpose(0, 2).contiguous().transpose(0, 2);  // same values, odd strides
  return x;
}

}  // namespace

TEST(SyncBatchNorm, MirroredRanksGiveTorchsBatchNormForwardAndGradients) {
  const std::vector<Case> cases = {
      {"3d contiguous", {3, 5, 4, 6, 7}, 0, torch::kFloat},
      {"3d channels-last", {3, 5, 4, 6, 7}, 1, torch::kFloat},
      {"3d strided view", {3, 5, 4, 6, 7}, 2, torch::kFloat},
      {"2d channels-last", {4, 6, 9, 5}, 1, torch::kFloat},
      {"2d contiguous, more than one block", {2, 3, 40, 40}, 0, torch::kFloat},
      {"3d channels-last, more than one block", {2, 3, 8, 16, 16}, 1, torch::kFloat},
      {"3d double", {3, 5, 4, 6, 7}, 0, torch::kDouble},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const bool is3d = c.shape.size() == 5;
    const std::int64_t ch = c.shape[1];
    auto x = makeInput(c);
    auto dy = torch::randn(c.shape, torch::TensorOptions().dtype(c.dtype));
    const double tol = c.dtype == torch::kDouble ? 1e-10 : 2e-4;

    // Reference: torch's BatchNorm (native kernel) in double, same parameters.
    auto weight = torch::rand({ch}, torch::kDouble) + 0.5, bias = torch::randn({ch}, torch::kDouble);
    auto xr = x.detach().to(torch::kDouble).requires_grad_(true);
    auto wr = weight.clone().requires_grad_(true), br = bias.clone().requires_grad_(true);
    auto rm = torch::zeros({ch}, torch::kDouble), rv = torch::ones({ch}, torch::kDouble);
    auto yr = torch::batch_norm(xr, wr, br, rm, rv, true, 0.1, 1e-5, false);
    (yr * dy.to(torch::kDouble)).sum().backward();

    std::shared_ptr<SyncableNorm> bnBase;
    torch::nn::AnyModule bn;
    if (is3d) {
      SyncBatchNorm3d m(ch);
      bn = torch::nn::AnyModule(m);
      bnBase = m.ptr();
    } else {
      SyncBatchNorm2d m(ch);
      bn = torch::nn::AnyModule(m);
      bnBase = m.ptr();
    }
    auto& module = *bn.ptr();
    module.to(c.dtype);
    {
      torch::NoGradGuard ng;
      module.named_parameters()["weight"].copy_(weight);
      module.named_parameters()["bias"].copy_(bias);
    }
    auto group = std::make_shared<MirrorGroup>();
    EXPECT_EQ(setBatchNormGroup(module, group), 1);
    EXPECT_TRUE(bnBase->synced());
    auto xs = x.detach().clone().requires_grad_(true);
    auto y = bn.forward(xs);
    (y * dy).sum().backward();
    EXPECT_EQ(group->gathers, 1);
    EXPECT_EQ(group->reduces, 1);

    auto close = [&](const torch::Tensor& a, const torch::Tensor& b, const char* what) {
      const double d = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
      const double scale = std::max(1.0, b.to(torch::kDouble).abs().max().item<double>());
      EXPECT_LE(d, tol * scale) << what << " differs by " << d;
    };
    close(y, yr, "output");
    close(xs.grad(), xr.grad(), "input gradient");
    close(module.named_parameters()["weight"].grad(), wr.grad() * 1.0, "weight gradient");  // local: this rank's rows
    close(module.named_parameters()["bias"].grad(), br.grad(), "bias gradient");
    // Running statistics: the mean of the global batch; the unbiased variance of 2n values.
    const double n = static_cast<double>(x.numel() / ch);
    auto biased = xr.detach().transpose(0, 1).reshape({ch, -1}).var(1, false);
    close(module.named_buffers()["running_mean"], rm, "running mean");
    close(module.named_buffers()["running_var"], 0.9 + 0.1 * biased * (2 * n) / (2 * n - 1), "running variance");
    EXPECT_EQ(module.named_buffers()["num_batches_tracked"].item<std::int64_t>(), 1);

    // Evaluation uses the running statistics and no collective.
    module.eval();
    torch::NoGradGuard ng;
    auto ye = bn.forward(x);
    EXPECT_EQ(group->gathers, 1);
    close(
        ye,
        torch::batch_norm(x.to(torch::kDouble), weight, bias, module.named_buffers()["running_mean"].to(torch::kDouble),
                          module.named_buffers()["running_var"].to(torch::kDouble), false, 0.1, 1e-5, false),
        "evaluation output");
  }
}

TEST(SyncBatchNorm, WithoutAGroupItIsTorchsBatchNorm) {
  // The ResNets build their norms from it: no group means torch's own BatchNorm path.
  torch::manual_seed(3);
  SyncBatchNorm3d s(4);
  torch::nn::BatchNorm3d t(4);
  auto x = torch::randn({2, 4, 3, 5, 5}) * 3 + 1;
  EXPECT_FALSE(s->synced());
  EXPECT_TRUE(torch::equal(s(x), t(x)));
  EXPECT_TRUE(torch::equal(s->running_var, t->running_var));
  // The parameter and buffer names (and so checkpoints) are torch's.
  std::vector<std::string> a, b;
  for (const auto& p : s->named_parameters()) a.push_back(p.key());
  for (const auto& p : s->named_buffers()) a.push_back(p.key());
  for (const auto& p : t->named_parameters()) b.push_back(p.key());
  for (const auto& p : t->named_buffers()) b.push_back(p.key());
  EXPECT_EQ(a, b);
  // setBatchNormGroup finds every norm of a ResNet (stem + 2 per block + 3 downsamples in a
  // resnet18) and detaches with nullptr.
  auto o = resnetPreset("resnet18", 3);
  o.width = 4;
  o.in_channels = 1;
  ResNet net(o);
  auto g = std::make_shared<MirrorGroup>();
  EXPECT_EQ(setBatchNormGroup(*net, g), 1 + 2 * 8 + 3);
  EXPECT_EQ(setBatchNormGroup(*net, nullptr), 20);
}

TEST(SyncBatchNorm, OneValuePerChannelIsAnError) {
  SyncBatchNorm2d bn(3);
  struct Single : BatchNormGroup {
    int worldSize() const override { return 2; }
    torch::Tensor allGather(const torch::Tensor& t) override {  // the other rank holds no rows
      auto other = t.clone();
      other.zero_();
      return torch::cat({t, other});
    }
    void allreduceSum(torch::Tensor&) override {}
  };
  setBatchNormGroup(*bn, std::make_shared<Single>());
  try {
    bn(torch::randn({1, 3, 1, 1}));
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1 value per channel"), std::string::npos) << e.what();
  }
}

TEST(SyncBatchNorm, EvaluationIsNeverACollective) {
  // Validation may run on some ranks only: a norm without running statistics normalises with
  // this rank's batch in evaluation (as torch's does) instead of waiting for the others.
  SyncBatchNorm3d bn(torch::nn::BatchNormOptions(2).track_running_stats(false));
  torch::nn::BatchNorm3d ref(torch::nn::BatchNormOptions(2).track_running_stats(false));
  auto g = std::make_shared<MirrorGroup>();
  setBatchNormGroup(*bn, g);
  bn->eval();
  ref->eval();
  auto x = torch::randn({3, 2, 2, 3, 3}) * 2 + 1;
  EXPECT_TRUE(torch::equal(bn(x), ref(x)));
  EXPECT_EQ(g->gathers, 0);
  bn->train();
  bn(x);
  EXPECT_EQ(g->gathers, 1);
}
