// The biud task with a frozen report encoder and EFM: the encoder stays in eval mode through a
// training step (no dropout in EFM's masked pass, the same encoder as the cached features), and
// the step's loss holds an EFM term.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

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

}  // namespace
}  // namespace biud::test
