// The training loop: exact resume, NaN policy, checkpoint rotation, metric files.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Ema.h"
#include "biud/train/Trainer.h"
#include "common/TestUtil.h"
#include "train/ToyTask.h"

using namespace biud;

namespace {

Config toyConfig(int steps) {
  Config c =
      loadConfig("", {"trainer.steps=" + std::to_string(steps), "trainer.save_every=4", "trainer.keep_last=2",
                      "schedule.warmup_steps=3", "optimizer.lr=0.01", "logging.every_steps=1", "trainer.grad_accum=2"});
  return c;
}

std::vector<torch::Tensor> weights(train::Task& t) {
  std::vector<torch::Tensor> w;
  for (auto& p : t.module().parameters()) w.push_back(p.detach().clone());
  return w;
}

}  // namespace

TEST(Trainer, InterruptedAndResumedRunEqualsUninterrupted) {
  test::TempDir d;
  app::clearStop();
  // Uninterrupted: 12 steps.
  train::Trainer a(toyConfig(12), (d / "a").string(), std::make_unique<test::ToyTask>(7), {});
  ASSERT_EQ(a.train(), 0);
  const auto wa = weights(a.task());

  // Interrupted after 5 steps (as by SIGTERM), then resumed from `latest` in a new Trainer.
  {
    auto task = std::make_unique<test::ToyTask>(7);
    task->stopAtCall_ = 5;
    train::Trainer b(toyConfig(12), (d / "b").string(), std::move(task), {});
    EXPECT_EQ(b.train(), app::kExitInterrupted);
    EXPECT_EQ(b.step(), 5);
  }
  app::clearStop();
  Config resumed = toyConfig(12);
  resumed.trainer.resume = "latest";
  // A different seed: everything must come from the checkpoint.
  train::Trainer c(resumed, (d / "b").string(), std::make_unique<test::ToyTask>(99), {});
  ASSERT_EQ(c.train(), 0);
  const auto wc = weights(c.task());
  ASSERT_EQ(wa.size(), wc.size());
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::equal(wa[i], wc[i])) << "parameter " << i;
}

// distributed.local_loss is documented as a choice; only `true` is implemented, and `false` is
// refused before training rather than silently ignored.
TEST(Trainer, LocalLossFalseIsRefused) {
  test::TempDir d;
  Config c = toyConfig(2);
  c.distributed.local_loss = false;
  try {
    train::Trainer t(c, (d / "a").string(), std::make_unique<test::ToyTask>(7), {});
    FAIL() << "local_loss: false was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("distributed.local_loss: false is not supported"), std::string::npos)
        << e.what();
  }
}

// metrics.jsonl is written as the run goes, not at its end (a user tails it).
TEST(Trainer, MetricsReachTheirFileWhileTheRunGoes) {
  test::TempDir d;
  app::clearStop();
  const auto run = d / "m";
  int linesAtStep6 = -1;
  auto task = std::make_unique<test::ToyTask>(7);
  task->onStep = [&](int call) {
    if (call != 6) return;
    std::ifstream in(run / "metrics.jsonl");
    std::string line;
    linesAtStep6 = 0;
    while (std::getline(in, line)) ++linesAtStep6;
  };
  train::Trainer t(toyConfig(8), run.string(), std::move(task), {});
  ASSERT_EQ(t.train(), 0);
  EXPECT_EQ(linesAtStep6, 5) << "steps 1-5 were logged before step 6 began";
}

TEST(Trainer, CheckpointsRotateAndLatestPointsAtNewest) {
  test::TempDir d;
  app::clearStop();
  train::Trainer t(toyConfig(12), d.str(), std::make_unique<test::ToyTask>(1), {});
  ASSERT_EQ(t.train(), 0);
  train::CheckpointManager m(d / "checkpoints", 2);
  const auto all = m.list();
  ASSERT_EQ(all.size(), 2u);  // keep_last = 2: steps 8 and 12
  EXPECT_EQ(all[0].filename(), "step_000008");
  EXPECT_EQ(all[1].filename(), "step_000012");
  EXPECT_EQ(m.latest()->filename(), "step_000012");
  EXPECT_EQ(std::filesystem::read_symlink(d / "checkpoints" / "latest"), std::filesystem::path("step_000012"));
  // metrics.jsonl: one line per step, with the loss terms the task reported.
  std::ifstream in(d / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"].get<int>(), lines + 1);
    EXPECT_TRUE(j.contains("mse") && j.contains("lr") && j.contains("grad_norm"));
  }
  EXPECT_EQ(lines, 12);
  // Resuming a different task or world size is refused with a message naming the cause.
  Config other = toyConfig(12);
  other.task = "clip2d";
  train::Trainer u(other, d.str(), std::make_unique<test::ToyTask>(1), {});
  try {
    u.loadCheckpoint(*m.latest());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("is from task `biud`, this run is task `clip2d`"), std::string::npos);
  }
  train::TaskContext two;
  two.world = 2;
  train::Trainer w(toyConfig(12), d.str(), std::make_unique<test::ToyTask>(1), two);
  EXPECT_THROW(w.loadCheckpoint(*m.latest()), DistError);
}

TEST(Trainer, NonFiniteStepsAreSkippedThenStop) {
  test::TempDir d;
  app::clearStop();
  {
    auto task = std::make_unique<test::ToyTask>(3);
    task->nanAt_ = 4;  // calls 4 and 5 produce NaN
    task->nanCount_ = 2;
    train::Trainer t(toyConfig(6), (d / "ok").string(), std::move(task), {});
    ASSERT_EQ(t.train(), 0);
    EXPECT_EQ(t.step(), 6);
    // Two skipped updates: the task was called 8 times for 6 steps.
    EXPECT_EQ(static_cast<test::ToyTask&>(t.task()).calls_, 8);
    for (auto& p : t.task().module().parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
  {
    auto task = std::make_unique<test::ToyTask>(3);
    task->nanAt_ = 6;
    task->nanCount_ = 1000;
    Config c = toyConfig(20);
    c.trainer.max_bad_steps = 3;
    train::Trainer t(c, (d / "bad").string(), std::move(task), {});
    try {
      t.train();
      FAIL() << "expected a stop";
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("3 steps in a row had a non-finite loss"), std::string::npos) << msg;
      EXPECT_NE(msg.find("step_000004"), std::string::npos) << msg;  // the last good checkpoint
    }
    EXPECT_EQ(t.step(), 5);
  }
}

// A finite loss with a non-finite gradient: the step is skipped, and the warning names the
// parameter whose gradient is not finite (fc2.weight), not the ones that are fine.
TEST(Trainer, ANonFiniteGradientIsSkippedAndNamed) {
  test::TempDir d;
  app::clearStop();
  auto task = std::make_unique<test::ToyTask>(3);
  task->infGradAt_ = 2;
  train::Trainer t(toyConfig(3), d.str(), std::move(task), {});
  testing::internal::CaptureStderr();
  const int rc = t.train();
  log::flush();
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(t.step(), 3);
  EXPECT_EQ(static_cast<test::ToyTask&>(t.task()).calls_, 4);  // one step taken twice
  EXPECT_NE(err.find("step 2: non-finite gradient norm (inf) in fc2.weight; update skipped"), std::string::npos) << err;
  for (auto& p : t.task().module().parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

// trainer.ema: the average in ema.safetensors equals the one worked out here from the weights
// after every step, d_n = min(decay, (1 + n) / (10 + n)); validation sees the averaged weights
// and training goes on with the raw ones; an interrupted and resumed run has the same average.
TEST(Trainer, WeightAverageMatchesTheRecurrenceAndSurvivesResume) {
  test::TempDir d;
  app::clearStop();
  const double decay = 0.8;
  auto cfg = [&](int steps) {
    Config c = toyConfig(steps);
    c.trainer.ema = decay;
    c.trainer.val_every = 5;
    return c;
  };
  std::vector<std::vector<torch::Tensor>> seen;  // weights at the start of step 1..12
  std::vector<std::vector<torch::Tensor>> validated;
  auto task = std::make_unique<test::ToyTask>(7);
  auto* toy = task.get();
  toy->onStep = [&](int) { seen.push_back(weights(*toy)); };
  toy->onValidate = [&] {
    validated.push_back(weights(*toy));
    return train::Metrics{{"score", 1.0}};
  };
  train::Trainer a(cfg(12), (d / "a").string(), std::move(task), {});
  ASSERT_EQ(a.train(), 0);
  seen.push_back(weights(a.task()));  // after step 12
  ASSERT_EQ(seen.size(), 13u);

  std::vector<torch::Tensor> avg;
  for (auto& w : seen[0]) avg.push_back(w.to(torch::kFloat64));
  std::vector<std::vector<torch::Tensor>> avgAt(13);  // the average after n steps
  avgAt[0] = avg;
  for (int n = 0; n < 12; ++n) {
    const double dn = std::min(decay, (1.0 + n) / (10.0 + n));
    for (size_t i = 0; i < avg.size(); ++i)
      avg[i] = dn * avg[i] + (1 - dn) * seen[static_cast<size_t>(n + 1)][i].to(torch::kFloat64);
    avgAt[static_cast<size_t>(n + 1)] = avg;
  }
  const auto names = [&] {
    std::vector<std::string> n;
    for (auto& p : a.task().module().named_parameters()) n.push_back(p.key());
    return n;
  }();
  const auto file = tensor::readSafetensors((d / "a" / "checkpoints" / "step_000012" / "ema.safetensors").string());
  ASSERT_EQ(file.size(), names.size());  // every parameter trains; ToyNet has no float buffers
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_TRUE(torch::allclose(file.at(names[i]).to(torch::kFloat64), avg[i], 1e-6, 1e-7)) << names[i];
  // The raw weights are not the average (the test could fail), and training kept them.
  EXPECT_FALSE(torch::allclose(file.at(names[0]), seen[12][0], 1e-4, 1e-5));
  const auto raw = tensor::readSafetensors((d / "a" / "checkpoints" / "step_000012" / "model.safetensors").string());
  EXPECT_TRUE(torch::equal(raw.at(names[0]), seen[12][0]));
  // Validations at steps 5 and 10 and at the end ran on the averages of those steps.
  ASSERT_EQ(validated.size(), 3u);
  for (auto [v, n] : {std::pair{0, 5}, {1, 10}, {2, 12}})
    for (size_t i = 0; i < names.size(); ++i)
      EXPECT_TRUE(torch::allclose(validated[static_cast<size_t>(v)][i].to(torch::kFloat64),
                                  avgAt[static_cast<size_t>(n)][i], 1e-6, 1e-7))
          << "validation " << v << " " << names[i];

  // Interrupted after 6 steps, resumed: the same average.
  {
    auto t = std::make_unique<test::ToyTask>(7);
    t->stopAtCall_ = 6;
    train::Trainer b(cfg(12), (d / "b").string(), std::move(t), {});
    EXPECT_EQ(b.train(), app::kExitInterrupted);
  }
  app::clearStop();
  Config resumed = cfg(12);
  resumed.trainer.resume = "latest";
  train::Trainer c(resumed, (d / "b").string(), std::make_unique<test::ToyTask>(99), {});
  ASSERT_EQ(c.train(), 0);
  const auto fileB = tensor::readSafetensors((d / "b" / "checkpoints" / "step_000012" / "ema.safetensors").string());
  for (const auto& n : names) EXPECT_TRUE(torch::equal(file.at(n), fileB.at(n))) << n;

  // applyEma() puts the averages into a model; a checkpoint without the file leaves it alone.
  test::ToyTask fresh(3);
  EXPECT_TRUE(train::applyEma(fresh.module(), (d / "a" / "checkpoints" / "step_000012" / "ema.safetensors").string()));
  EXPECT_TRUE(torch::equal(fresh.net_->fc1->weight, file.at("fc1.weight")));
  EXPECT_FALSE(train::applyEma(fresh.module(), (d / "nowhere.safetensors").string()));
}

// trainer.ema_start / ema_warmup: the average is the weights after step S, then updated with a
// fixed decay d from step S + 1 on (worked out here from the weights seen after every step).
TEST(Trainer, WeightAverageStartsLateWithAFixedDecay) {
  test::TempDir d;
  app::clearStop();
  const double decay = 0.7;
  const int start = 4;
  Config c = toyConfig(10);
  c.trainer.ema = decay;
  c.trainer.ema_start = start;
  c.trainer.ema_warmup = false;
  std::vector<std::vector<torch::Tensor>> seen;  // seen[n]: the weights after n steps
  auto task = std::make_unique<test::ToyTask>(5);
  auto* toy = task.get();
  toy->onStep = [&](int) { seen.push_back(weights(*toy)); };
  train::Trainer t(c, (d / "r").string(), std::move(task), {});
  ASSERT_EQ(t.train(), 0);
  seen.push_back(weights(t.task()));
  ASSERT_EQ(seen.size(), 11u);
  std::vector<torch::Tensor> avg;
  for (auto& w : seen[start]) avg.push_back(w.to(torch::kFloat64));
  for (int n = start + 1; n <= 10; ++n)
    for (size_t i = 0; i < avg.size(); ++i)
      avg[i] = decay * avg[i] + (1 - decay) * seen[static_cast<size_t>(n)][i].to(torch::kFloat64);
  const auto file = tensor::readSafetensors((d / "r" / "checkpoints" / "step_000010" / "ema.safetensors").string());
  size_t i = 0;
  for (auto& p : t.task().module().named_parameters()) {
    EXPECT_TRUE(torch::allclose(file.at(p.key()).to(torch::kFloat64), avg[i], 1e-6, 1e-7)) << p.key();
    ++i;
  }
}
