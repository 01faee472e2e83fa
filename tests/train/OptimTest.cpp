// Parameter grouping and the lr schedule against hand-worked values and PyTorch's optimizer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

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
  EXPECT_DOUBLE_EQ(train::lrFactor(4, 14, s), 1.0);                          // cosine starts at the peak
  EXPECT_NEAR(train::lrFactor(9, 14, s), 0.1 + 0.9 * 0.5, 1e-12);            // half way
  EXPECT_NEAR(train::lrFactor(14, 14, s), 0.1, 1e-12);                       // the floor
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
  cfg.module_lr = {{"fc3", 1e-4}};
  EXPECT_THROW(train::buildOptimizer(*net, cfg), ConfigError);
}

TEST(Optim, MatchesPyTorchAdamWWithGroupsAndSchedule) {
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
    init[np.key()] = {{"shape", t.sizes().vec()}, {"data", std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())}};
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
  nlohmann::json in = {{"init", init}, {"x", flat(x)}, {"y", flat(y)}, {"steps", steps}, {"lr", 0.01},
                       {"lr_fc2", 0.003}, {"wd", 0.1}, {"warmup", 2}, {"min_ratio", 0.05}};
  fs::atomicWrite(d / "in.json", in.dump());
  const auto out = nlohmann::json::parse(test::runPython("train_adamw.py", (d / "in.json").string()));
  for (auto& np : net->named_parameters()) {
    const auto ref = out.at(np.key()).get<std::vector<float>>();
    const auto got = flat(np.value().detach());
    ASSERT_EQ(ref.size(), got.size());
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-6) << np.key() << "[" << i << "]";
  }
}
