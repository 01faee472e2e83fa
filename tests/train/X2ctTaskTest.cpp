// The x2ct task (X2CT-CLIP): the frozen towers stay bit-identical through training, the CT and
// report latents are computed once (and equal an independent pass of the pretrained model), the
// CT tower is never run per step (a second task on the cache runs with the CT tower's weights
// removed from the pretrained checkpoint), and batches hold at most one X-ray per scan.
#include <cmath>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/data/TextBatch.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Trainer.h"
#include "biud/train/X2ctTask.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

namespace stdfs = std::filesystem;

TEST(X2ct, FrozenTowersBitIdenticalAndLatentsCachedOnce) {
  TinyWorld w;
  const auto runDir = w.dir / "run";
  stdfs::create_directories(runDir);
  writeText(runDir / "config.resolved.yaml", config::toYaml(w.cfg));
  train::TaskContext ctx;
  ctx.runDir = runDir.string();
  auto owned = std::make_unique<train::X2ctTask>(w.cfg, ctx);
  train::X2ctTask* task = owned.get();
  // 12 CTs in batches of 4: three CT encoder passes, all while caching; the tower is then gone.
  EXPECT_EQ(task->ctEncoderCalls(), 3);
  EXPECT_TRUE(task->ctTowerReleased());
  ASSERT_TRUE(stdfs::exists(runDir / "latents.safetensors"));

  // The cached latents equal an independent pass of the pretrained model.
  {
    torch::NoGradGuard ng;
    auto pre = evaluate::loadRun(w.pretrained, torch::kCPU);
    auto m = image::readManifest(w.cfg.data.manifest);
    for (int n : {0, 7, 11}) {
      const auto& it = m.items[static_cast<size_t>(n)];
      auto v = image::preprocessCt(image::readVolume(it.images[0]), pre.cfg.data.ct);
      auto t = torch::from_blob(v.data.data(), {1, 1, v.size[2], v.size[1], v.size[0]}, torch::kFloat32).clone();
      auto ct = pre.model->encodeCt(t).ct[0];
      auto tb = data::tokenizeBatch(*pre.tokenizer, {it.text(pre.cfg.data.report_sections)}, pre.cfg.text.max_length);
      auto rep = pre.model->encodeText(tb.ids, tb.mask)[0];
      const auto row = task->latents().row(it.id);
      ASSERT_GE(row, 0);
      EXPECT_LE((task->latents().ct[row] - ct).abs().max().item<double>(), 1e-5) << it.id;
      EXPECT_LE((task->latents().report[row] - rep).abs().max().item<double>(), 1e-5) << it.id;
    }
  }

  const auto cachedCt = task->latents().ct.clone();
  // Train 3 steps through the real trainer.
  const auto preWeights = tensor::readSafetensors(w.pretrained + "/checkpoints/step_000001/model.safetensors");
  std::map<std::string, torch::Tensor> before;
  for (auto& [k, v] : tensor::stateDict(task->module())) before[k] = v.clone();
  {
    train::Trainer trainer(w.cfg, runDir.string(), std::move(owned), ctx);
    ASSERT_EQ(trainer.train(), 0);
    task = static_cast<train::X2ctTask*>(&trainer.task());
    EXPECT_EQ(task->ctEncoderCalls(), 3) << "the CT encoder ran during training";
    int frozen = 0, moved = 0;
    for (auto& [k, v] : tensor::stateDict(task->module())) {
      if (k.rfind("text_encoder.", 0) == 0 || k.rfind("text_proj.", 0) == 0) {
        ASSERT_TRUE(preWeights.count(k)) << k;
        EXPECT_TRUE(torch::equal(v, preWeights.at(k))) << "frozen report tower changed: " << k;
        EXPECT_TRUE(torch::equal(v, before.at(k))) << k;
        ++frozen;
      } else if (k.rfind("image_", 0) == 0 && !torch::equal(v, before.at(k))) {
        ++moved;
      }
    }
    EXPECT_GT(frozen, 10);
    EXPECT_GT(moved, 0) << "the X-ray tower did not train";
    // The run loads for inference as an X-ray CLIP with the same outputs.
    auto run = evaluate::loadRun(runDir.string(), torch::kCPU);
    ASSERT_TRUE(run.model->can(evaluate::Capability::kXray));
    torch::NoGradGuard ng;
    task->model()->eval();
    auto img = task->trainSet().images.slice(0, 0, 3);
    EXPECT_TRUE(torch::allclose(run.model->encodeXray(img), task->model()->encodeImage(img), 1e-5, 1e-6));
  }

  // A second task on the same cache never builds the CT tower: remove its weights from the
  // pretrained checkpoint (any attempt to load it would now throw) and start again.
  tensor::TensorMap noCt;
  for (auto& [k, v] : preWeights)
    if (k.rfind("ct_", 0) != 0) noCt[k] = v;
  tensor::writeSafetensors(w.pretrained + "/checkpoints/step_000001/model.safetensors", noCt);
  EXPECT_THROW(evaluate::loadRun(w.pretrained, torch::kCPU), Error);
  train::X2ctTask again(w.cfg, ctx);
  EXPECT_EQ(again.ctEncoderCalls(), 0);
  EXPECT_TRUE(torch::equal(again.latents().ct, cachedCt));
  train::StepContext sc;
  EXPECT_TRUE(std::isfinite(again.trainStep(sc).loss));
}

TEST(X2ct, ExperimentBatchesHoldOneXrayPerScan) {
  TinyWorld w;
  train::TaskContext ctx;
  ctx.runDir = (w.dir / "run").string();
  stdfs::create_directories(ctx.runDir);
  // Two views per CT: 16 training X-rays of 8 scans; the X-ray manifest has no patient column
  // values, so the scan (the id before `#`) is the group.
  auto scansPerBatch = [&](const train::X2ctTask& task, std::int64_t epochs) {
    int clashes = 0;
    for (std::int64_t e = 0; e < epochs; ++e)
      for (const auto& b : task.epochBatches(e)) {
        std::set<std::string> scans;
        for (auto i : b) scans.insert(task.trainSet().ids[static_cast<size_t>(i)].substr(0, 4));
        clashes += static_cast<int>(b.size() - scans.size());
      }
    return clashes;
  };
  train::X2ctTask task(w.cfg, ctx);
  ASSERT_EQ(task.trainSet().size(), 16);
  EXPECT_EQ(task.epochBatches(0).size(), 4u);
  EXPECT_EQ(scansPerBatch(task, 20), 0) << "two views of one scan in a batch";
  for (int s = 0; s < 5; ++s) {  // crosses an epoch boundary
    train::StepContext sc;
    sc.step = s;
    auto r = task.trainStep(sc);
    EXPECT_TRUE(std::isfinite(r.loss));
    EXPECT_EQ(r.samples, 4);
  }
  // Plain random batches do put views of one scan together (so the check above can fail).
  w.cfg.x2ct.batching = "random";
  train::X2ctTask plain(w.cfg, ctx);
  EXPECT_GT(scansPerBatch(plain, 20), 0);
}

}  // namespace
}  // namespace biud::test
