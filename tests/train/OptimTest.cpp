// Parameter grouping and the lr schedule against hand-worked values and PyTorch's optimizer.
#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/train/Optim.h"
#include "common/TestUtil.h"
#include "train/ToyTask.h"

using namespace biud;

TEST(Schedule, WarmupCosineByHand) {
  ScheduleConfig s;
  s.warmup_steps = 4;
  s.name = "cosine";
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(train::lrFactor(0, 14, s), 0.25);
  EXPECT_DOUBLE_EQ(train::lrFactor(3, 14, s), 1.0);
  EXPECT_DOUBLE_EQ(train::lrFactor(4, 14, s), 1.0);                // cosine starts at the peak
  EXPECT_NEAR(train::lrFactor(9, 14, s), 0.1 + 0.9 * 0.5, 1e-12);  // half way
  EXPECT_NEAR(train::lrFactor(14, 14, s), 0.1, 1e-12);             // the floor
  s.name = "linear";
  EXPECT_NEAR(train::lrFactor(9, 14, s), 1.0 - 0.9 * 0.5, 1e-12);
  s.name = "constant";
  EXPECT_DOUBLE_EQ(train::lrFactor(12, 14, s), 1.0);
}

TEST(Optim, GroupsExcludeNormsAndBiasesAndHonourModuleLr) {
  test::ToyNet net;
  OptimizerConfig cfg;
  cfg.lr = 1e-3;
  cfg.weight_decay = 0.05;
  cfg.module_lr = {{"fc2", 1e-4}};
  std::vector<train::ParamGroupInfo> groups;
  auto opt = train::buildOptimizer(*net, cfg, &groups);
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].names, (std::vector<std::string>{"fc1.weight"}));
  EXPECT_DOUBLE_EQ(groups[0].weightDecay, 0.05);
  EXPECT_EQ(groups[1].names, (std::vector<std::string>{"fc1.bias", "norm.weight", "norm.bias"}));
  EXPECT_DOUBLE_EQ(groups[1].weightDecay, 0.0);
  EXPECT_EQ(groups[2].names, (std::vector<std::string>{"fc2.weight"}));
  EXPECT_DOUBLE_EQ(groups[2].lr, 1e-4);
  EXPECT_EQ(groups[3].names, (std::vector<std::string>{"fc2.bias"}));
  cfg.module_lr = {{"fc3", 1e-4}};  // a typo: an error
  EXPECT_THROW(train::buildOptimizer(*net, cfg), ConfigError);
  cfg.module_lr = {{"text_encoder", 1e-4}};  // a tower of another task in a shared recipe: skipped
  EXPECT_NO_THROW(train::buildOptimizer(*net, cfg));
}

namespace {
/// Six AdamW steps of ToyNet with groups and a schedule in biud and in PyTorch
/// (tests/reference/train_adamw.py; `fused`: torch.optim.AdamW(fused=True)); `tol` < 0 asks for
/// bit-identical weights.
void compareWithPyTorchAdamW(bool fused, double tol) {
  // Same initial weights, same data, same schedule in PyTorch (tests/reference/train_adamw.py).
  torch::manual_seed(0);
  test::ToyNet net;
  net->eval();  // no dropout: deterministic forward on both sides
  OptimizerConfig oc;
  oc.lr = 0.01;
  oc.weight_decay = 0.1;
  oc.module_lr = {{"fc2", 0.003}};
  ScheduleConfig sc;
  sc.warmup_steps = 2;
  sc.min_lr_ratio = 0.05;
  const int steps = 6;
  auto opt = train::buildOptimizer(*net, oc);
  const auto base = train::groupLrs(*opt);
  torch::manual_seed(1);
  auto x = torch::randn({5, 6});
  auto y = torch::randn({5, 2});

  nlohmann::json init;
  for (auto& np : net->named_parameters()) {
    auto t = np.value().detach().contiguous();
    init[np.key()] = {{"shape", t.sizes().vec()},
                      {"data", std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())}};
  }
  auto flat = [](const torch::Tensor& t) {
    auto c = t.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  for (int s = 0; s < steps; ++s) {
    train::applyLr(*opt, base, train::lrFactor(s, steps, sc));
    opt->zero_grad();
    torch::mse_loss(net->forward(x), y).backward();
    opt->step();
  }
  test::TempDir d;
  nlohmann::json in = {{"init", init},    {"x", flat(x)}, {"y", flat(y)}, {"steps", steps},    {"lr", 0.01},
                       {"lr_fc2", 0.003}, {"wd", 0.1},    {"warmup", 2},  {"min_ratio", 0.05}, {"fused", fused}};
  fs::atomicWrite(d / "in.json", in.dump());
  const auto out = nlohmann::json::parse(test::runPython("train_adamw.py", (d / "in.json").string()));
  for (auto& np : net->named_parameters()) {
    const auto ref = out.at(np.key()).get<std::vector<float>>();
    const auto got = flat(np.value().detach());
    ASSERT_EQ(ref.size(), got.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      if (tol < 0)
        EXPECT_EQ(got[i], ref[i]) << np.key() << "[" << i << "]";
      else
        EXPECT_NEAR(got[i], ref[i], tol) << np.key() << "[" << i << "]";
    }
  }
}

/// Sets an environment variable for one scope.
struct EnvVar {
  std::string name;
  EnvVar(const char* n, const char* v) : name(n) { ::setenv(n, v, 1); }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};
}  // namespace

TEST(Optim, MatchesPyTorchAdamWWithGroupsAndSchedule) {
  // biud's default (fused) against PyTorch's default loop: equal within float rounding.
  ASSERT_TRUE(train::fusedAdamW());
  compareWithPyTorchAdamW(/*fused=*/false, 1e-6);
}

TEST(Optim, FusedAdamWIsBitIdenticalToPyTorchFusedAdamW) { compareWithPyTorchAdamW(/*fused=*/true, -1); }

TEST(Optim, LoopAdamWOnRequestMatchesPyTorchAdamW) {
  EnvVar env("BIUD_ADAMW", "loop");
  ASSERT_FALSE(train::fusedAdamW());
  compareWithPyTorchAdamW(/*fused=*/false, 1e-6);
  EnvVar bad("BIUD_ADAMW", "fast");
  EXPECT_THROW(train::fusedAdamW(), ConfigError);
}

TEST(Optim, FusedAdamWStepsChannelsLastParametersAsContiguousOnes) {
  // The fused kernel walks raw memory: a channels-last convolution weight (ResNet's layout) with a
  // contiguous gradient, and the same weight contiguous, must end bit-identical after 3 steps.
  struct Two : torch::nn::Module {
    torch::Tensor a, b;
    Two() {
      torch::manual_seed(3);
      auto w = torch::randn({4, 3, 3, 3, 3});
      a = register_parameter("a", w.contiguous(torch::MemoryFormat::ChannelsLast3d));
      b = register_parameter("b", w.clone());
    }
  } two;
  ASSERT_TRUE(two.a.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
  ASSERT_FALSE(two.a.is_contiguous());
  OptimizerConfig oc;
  oc.lr = 0.01;
  oc.weight_decay = 0.1;
  auto opt = train::buildOptimizer(two, oc);
  for (int s = 0; s < 3; ++s) {
    opt->zero_grad();
    auto g = torch::randn({4, 3, 3, 3, 3});
    two.a.mutable_grad() = g.clone();  // contiguous gradient of a channels-last parameter
    two.b.mutable_grad() = g.clone();
    opt->step();
  }
  EXPECT_TRUE(two.a.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
  EXPECT_TRUE(torch::equal(two.a.detach().contiguous(), two.b.detach()));
  EXPECT_FALSE(torch::equal(two.b.detach(), torch::zeros_like(two.b)));
}

namespace {
/// A module with two encoders named like the tasks' (`*encoder`) and a decoder: parameters
/// only, with the names the layer-id convention reads.
struct TwoEncoders : torch::nn::Module {
  static std::shared_ptr<torch::nn::Module> child(torch::nn::Module& parent, const std::string& name) {
    return parent.register_module(name, std::make_shared<torch::nn::Module>());
  }
  TwoEncoders() {
    auto ct = child(*this, "ct_encoder");                   // ResNet-like: stem, 2 stages, fc -> L = 3
    ct->register_parameter("weight", torch::ones({2, 2}));  // directly in the encoder: after the stages
    child(*ct, "conv1")->register_parameter("weight", torch::ones({2, 2}));
    child(*child(*ct, "layer1"), "0")->register_parameter("weight", torch::ones({2, 2}));
    child(*child(*ct, "layer2"), "0")->register_parameter("weight", torch::ones({2, 2}));
    auto text = child(*this, "text_encoder");  // BERT-like: embeddings, 3 layers, pooler -> L = 4
    child(*text, "embeddings")->register_parameter("weight", torch::ones({2, 2}));
    auto layer = child(*child(*text, "encoder"), "layer");
    for (const char* i : {"0", "1", "2"}) child(*layer, i)->register_parameter("weight", torch::ones({2, 2}));
    child(*text, "pooler")->register_parameter("weight", torch::ones({2, 2}));
    child(*this, "decoder")->register_parameter("weight", torch::ones({2, 2}));
  }
};
}  // namespace

TEST(Optim, LayerDecayAppliesToEveryEncoderByHand) {
  TwoEncoders net;
  OptimizerConfig cfg;
  cfg.lr = 0.1;
  cfg.layer_decay = 0.5;
  cfg.module_lr = {{"text_encoder", 0.01}};
  std::vector<train::ParamGroupInfo> groups;
  auto opt = train::buildOptimizer(net, cfg, &groups);
  std::map<std::string, double> lr;
  for (const auto& g : groups)
    for (const auto& n : g.names) lr[n] = g.lr;
  // ct_encoder: L = 3 (stem 0, layer1 1, layer2 2, the rest 3).
  EXPECT_DOUBLE_EQ(lr.at("ct_encoder.conv1.weight"), 0.1 * 0.125);
  EXPECT_DOUBLE_EQ(lr.at("ct_encoder.layer1.0.weight"), 0.1 * 0.25);
  EXPECT_DOUBLE_EQ(lr.at("ct_encoder.layer2.0.weight"), 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(lr.at("ct_encoder.weight"), 0.1);
  // text_encoder: base 0.01 from module_lr, L = 4.
  EXPECT_DOUBLE_EQ(lr.at("text_encoder.embeddings.weight"), 0.01 * 0.0625);
  EXPECT_DOUBLE_EQ(lr.at("text_encoder.encoder.layer.0.weight"), 0.01 * 0.125);
  EXPECT_DOUBLE_EQ(lr.at("text_encoder.encoder.layer.2.weight"), 0.01 * 0.5);
  EXPECT_DOUBLE_EQ(lr.at("text_encoder.pooler.weight"), 0.01);
  // Not an encoder: the base lr.
  EXPECT_DOUBLE_EQ(lr.at("decoder.weight"), 0.1);
  // 9 distinct rates (0.1 twice: ct_encoder.weight and decoder.weight share a group).
  EXPECT_EQ(groups.size(), 9u);
  EXPECT_EQ(train::groupLrs(*opt).size(), 9u);
}
