// The training loop: exact resume, NaN policy, checkpoint rotation, metric files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/train/Trainer.h"
#include "common/TestUtil.h"
#include "train/ToyTask.h"

using namespace biud;

namespace {

Config toyConfig(int steps) {
  Config c = loadConfig("", {"trainer.steps=" + std::to_string(steps), "trainer.save_every=4", "trainer.keep_last=2",
                             "schedule.warmup_steps=3", "optimizer.lr=0.01", "logging.every_steps=1",
                             "trainer.grad_accum=2"});
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
  EXPECT_EQ(fs::readFile(d / "checkpoints" / "latest"), "step_000012\n");
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
