// The biud task with a frozen report encoder and EFM: the encoder stays in eval mode through a
// training step (no dropout in EFM's masked pass, the same encoder as the cached features), and
// the step's loss holds an EFM term.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/train/Task.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

TEST(BiudTask, FrozenReportEncoderStaysInEvalModeThroughAnEfmStep) {
  TinyWorld w;
  w.cfg.task = "biud";
  w.cfg.model.text_encoder.frozen = true;
  w.cfg.loss.efm.weight = 0.5;
  train::TaskContext ctx;
  ctx.runDir = (w.dir / "run").string();
  std::filesystem::create_directories(ctx.runDir);
  train::registerBuiltinTasks();
  auto task = train::makeTask("biud", w.cfg, ctx);
  train::StepContext sc;
  const auto r = task->trainStep(sc);
  EXPECT_TRUE(std::isfinite(r.loss));
  int seen = 0;
  for (const auto& item : task->module().named_children()) {
    const auto& name = item.key();
    const auto& child = item.value();
    if (name == "text_encoder") {
      EXPECT_FALSE(child->is_training()) << "the frozen report encoder runs in train mode (dropout on)";
      ++seen;
    } else if (name == "ct_encoder") {
      EXPECT_TRUE(child->is_training());
      ++seen;
    }
  }
  EXPECT_EQ(seen, 2);
  bool efm = false;
  for (const auto& [k, v] : r.metrics) efm = efm || k.find("efm") != std::string::npos;
  EXPECT_TRUE(efm) << "no EFM term in the step's metrics";
}

// loss.efm.reports = N: EFM masks and predicts the first N reports of the micro-batch only. With
// every eligible token masked (p = 1), the masked count is the tokens of N reports (each TinyWorld
// report is 4 words and a full stop, 5 word pieces, none special).
TEST(BiudTask, EfmReportsLimitsTheMaskedReportsPerMicroBatch) {
  TinyWorld w;
  w.cfg.task = "biud";
  w.cfg.loss.efm.weight = 0.5;
  w.cfg.loss.efm.p_entity = 1.0;
  w.cfg.loss.efm.p_other = 1.0;
  train::TaskContext ctx;
  ctx.runDir = (w.dir / "run").string();
  std::filesystem::create_directories(ctx.runDir);
  train::registerBuiltinTasks();
  for (int reports : {0, 1, 3}) {
    w.cfg.loss.efm.reports = reports;
    auto task = train::makeTask("biud", w.cfg, ctx);
    train::StepContext sc;
    const auto r = task->trainStep(sc);
    ASSERT_TRUE(r.metrics.count("efm/n_masked")) << "metrics lack efm/n_masked";
    const int n = reports == 0 ? static_cast<int>(w.cfg.data.loader.batch_size) : reports;
    EXPECT_EQ(r.metrics.at("efm/n_masked"), 5.0 * n) << "loss.efm.reports = " << reports;
    EXPECT_TRUE(std::isfinite(r.loss));
  }
}

}  // namespace
}  // namespace biud::test
