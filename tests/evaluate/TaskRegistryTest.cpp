// The task registry (evaluate/TaskSpec.h): a run folder of every trainable task, written from
// the task built in-process, loads back through the registry with the same weights and the same
// embeddings; an unknown task and a missing capability give one clear error; the config's list
// of task names is the registry's.
#include <algorithm>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/data/TextBatch.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/RunModel.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/models/MethodModels.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Task.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

using evaluate::Capability;

/// A run folder holding `m`'s weights as its only checkpoint and `cfg` as its resolved config.
std::string writeRun(const stdfs::path& dir, Config cfg, const torch::nn::Module& m) {
  const auto ck = dir / "checkpoints/step_000001";
  stdfs::create_directories(ck);
  tensor::saveModule(m, (ck / "model.safetensors").string());
  writeText(ck / "state.json", "{}");
  writeText(dir / "checkpoints/latest", "step_000001");
  writeText(dir / "config.resolved.yaml", config::toYaml(cfg));
  return dir.string();
}

/// The task `task` built in-process from `cfg` (seeded), its run folder and the run loaded back.
struct Built {
  std::unique_ptr<train::Task> task;
  evaluate::LoadedRun run;
};

Built buildAndLoad(TinyWorld& w, const Config& cfg) {
  train::TaskContext ctx;
  ctx.runDir = (w.dir / (cfg.task + "_run")).string();
  stdfs::create_directories(ctx.runDir);
  torch::manual_seed(3);
  Built b;
  b.task = train::makeTask(cfg.task, cfg, ctx);
  b.task->module().eval();
  writeRun(ctx.runDir, cfg, b.task->module());
  torch::manual_seed(4);  // the loaded model starts from other random weights: only loading makes them equal
  b.run = evaluate::loadRun(ctx.runDir, torch::kCPU);
  return b;
}

/// Every weight of the loaded model is the in-process task's.
void expectSameWeights(const Built& b) {
  const auto want = tensor::stateDict(b.task->module());
  const auto got = tensor::stateDict(b.run.model->module());
  ASSERT_EQ(got.size(), want.size()) << b.run.model->task();
  for (const auto& [k, v] : want) {
    ASSERT_TRUE(got.count(k)) << b.run.model->task() << ": " << k;
    EXPECT_TRUE(torch::equal(got.at(k), v)) << b.run.model->task() << ": " << k;
  }
}

bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-6); }

torch::Tensor ctBatch(const Config& cfg) {
  const auto& s = cfg.data.ct.size;
  return torch::randn({2, 1, s[2], s[1], s[0]});
}

TEST(TaskRegistry, EveryTrainableTaskLoadsBackWithTheInProcessEmbeddings) {
  TinyWorld w;
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  const auto ct = ctBatch(w.cfg);
  const auto xray = torch::rand({3, 1, 32, 32});
  auto tok = text::makeTokenizer(w.cfg.text);
  const auto tb = data::tokenizeBatch(*tok, {"small nodule right lung .", "no effusion ."}, w.cfg.text.max_length);
  std::set<std::string> tested;

  {  // clip2d: X-ray and report towers
    Config c = w.cfg;
    c.task = "clip2d";
    c.data.xray_manifest = (w.dir.path() / "xr.csv").string();
    auto b = buildAndLoad(w, c);
    expectSameWeights(b);
    auto& m = dynamic_cast<models::ClipModelImpl&>(b.task->module());
    EXPECT_TRUE(close(b.run.model->encodeXray(xray), m.encodeImage(xray)));
    EXPECT_TRUE(close(b.run.model->encodeText(tb.ids, tb.mask), m.encodeText(tb.ids, tb.mask)));
    EXPECT_DOUBLE_EQ(b.run.model->temperature(), m.temperature->forward().item<double>());
    EXPECT_FALSE(b.run.model->can(Capability::kCt));
    tested.insert(b.run.model->task());
  }
  {  // biud: CT tower (with the adapter) and report tower
    Config c = w.cfg;
    c.task = "biud";
    auto b = buildAndLoad(w, c);
    expectSameWeights(b);
    auto& m = dynamic_cast<models::BiudModelImpl&>(b.task->module());
    const auto got = b.run.model->encodeCt(ct);
    const auto want = m.encodeCt(ct);
    EXPECT_TRUE(close(got.ct, want.ct));
    EXPECT_TRUE(close(got.adapted, want.adapted));
    EXPECT_TRUE(close(b.run.model->encodeText(tb.ids, tb.mask), m.encodeText(tb.ids, tb.mask)));
    EXPECT_TRUE(close(b.run.model->ctEncoder()->encode(ct).pooled, m.ct_encoder->encode(ct).pooled));
    tested.insert(b.run.model->task());
  }
  {  // x2ct: an X-ray CLIP with the frozen report tower
    Config c = w.cfg;
    c.task = "x2ct";
    auto b = buildAndLoad(w, c);
    expectSameWeights(b);
    auto& m = dynamic_cast<models::ClipModelImpl&>(b.task->module());
    EXPECT_TRUE(close(b.run.model->encodeXray(xray), m.encodeImage(xray)));
    EXPECT_TRUE(close(b.run.model->encodeText(tb.ids, tb.mask), m.encodeText(tb.ids, tb.mask)));
    tested.insert(b.run.model->task());
  }
  {  // finetune: the CT backbone under a label head
    Config c = w.cfg;
    c.task = "finetune";
    c.finetune.run = w.pretrained;
    auto b = buildAndLoad(w, c);
    expectSameWeights(b);
    auto& m = dynamic_cast<models::FinetuneModelImpl&>(b.task->module());
    EXPECT_TRUE(close(b.run.model->ctEncoder()->encode(ct).pooled, m.ct_encoder->encode(ct).pooled));
    EXPECT_EQ(b.run.pretrained, stdfs::path(w.pretrained).string());
    tested.insert(b.run.model->task());

    // (c) A finetune run has no text encoder: the capability error names the folder and task.
    EXPECT_FALSE(b.run.model->can(Capability::kText));
    try {
      b.run.model->encodeText(tb.ids, tb.mask);
      ADD_FAILURE() << "a finetune run gave text embeddings";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), "`" + b.run.root + "` is a finetune run: it has no text encoder");
    }
    EXPECT_THROW(b.run.model->encodeCt(ct), ConfigError);
    EXPECT_THROW(b.run.model->temperature(), ConfigError);
  }
  {  // report: the CT backbone under a report decoder
    Config c = w.cfg;
    c.task = "report";
    c.report.run = w.pretrained;
    c.report.val_reports = 0;
    c.model.decoder.dim = 64;
    c.eval.max_new_tokens = 95;
    auto b = buildAndLoad(w, c);
    expectSameWeights(b);
    auto& m = dynamic_cast<models::ReportModelImpl&>(b.task->module());
    EXPECT_TRUE(close(b.run.model->ctEncoder()->encode(ct).pooled, m.ct_encoder->encode(ct).pooled));
    EXPECT_FALSE(b.run.model->can(Capability::kXray));
    tested.insert(b.run.model->task());
  }
  // Every trainable entry was tested here.
  const auto names = train::taskNames();
  EXPECT_EQ(tested, std::set<std::string>(names.begin(), names.end()));
}

/// The choices the config parser lists for an unknown `task` ("... use one of a, b, c (did you
/// mean ...)"); its message in `message`.
std::set<std::string> configTaskChoices(std::string* message) {
  try {
    config::parse<Config>(config::Document::fromString("task: no_such_task\n", "t.yaml"));
  } catch (const ConfigError& e) {
    *message = e.what();
  }
  const std::string key = "use one of ";
  const auto at = message->find(key);
  if (at == std::string::npos) return {};
  std::string list = message->substr(at + key.size());
  list = list.substr(0, list.find(" ("));
  std::set<std::string> out;
  for (std::size_t from = 0; from <= list.size();) {
    const auto comma = list.find(", ", from);
    out.insert(list.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
    if (comma == std::string::npos) break;
    from = comma + 2;
  }
  return out;
}

TEST(TaskRegistry, ConfigTaskNamesAreTheTrainableEntries) {
  std::string message;
  const auto choices = configTaskChoices(&message);
  const auto names = train::taskNames();
  EXPECT_EQ(choices, std::set<std::string>(names.begin(), names.end())) << message;
  // The load-only entry is registered but cannot be trained.
  const auto all = evaluate::taskSpecNames();
  EXPECT_NE(std::find(all.begin(), all.end(), "ct-clip"), all.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "ct-clip"), names.end());
  try {
    train::makeTask("ct-clip", Config{}, train::TaskContext{});
    ADD_FAILURE() << "ct-clip was trained";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ct-clip runs are imported by biud-import-weights; they cannot be trained"),
              std::string::npos)
        << e.what();
  }
}

TEST(TaskRegistry, UnknownTaskIsOneLineListingTheRegisteredNames) {
  TinyWorld w;
  // A run folder whose config names a task nobody registered (e.g. written by a newer build).
  Config c = w.cfg;
  c.task = "biud";
  const auto dir = w.dir.path() / "future";
  torch::nn::Linear anyWeights(2, 2);
  writeRun(dir, c, *anyWeights);
  auto yaml = readText(dir / "config.resolved.yaml");
  const auto at = yaml.find("task: biud");
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at, std::string("task: biud").size(), "task: segment3d");
  writeText(dir / "config.resolved.yaml", yaml);
  try {
    evaluate::loadRun(dir.string(), torch::kCPU);
    ADD_FAILURE() << "an unknown task loaded";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find("segment3d"), std::string::npos) << m;
    EXPECT_NE(m.find((dir / "config.resolved.yaml").string()), std::string::npos) << m;
    for (const auto& n : train::taskNames()) EXPECT_NE(m.find(n), std::string::npos) << n << " not listed: " << m;
  }
  // The registry's own lookup (a name the config allows but no entry serves) lists every entry.
  try {
    evaluate::taskSpec("segment3d", "`x/config.resolved.yaml`");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const auto& n : evaluate::taskSpecNames())
      EXPECT_NE(m.find(n), std::string::npos) << n << " not listed: " << m;
  }
}

}  // namespace
}  // namespace biud::test
