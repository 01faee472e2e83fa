// Checkpoint folders: `latest` as a relative symbolic link (replaced atomically), the text form of
// older runs still read, resume through the switch and after a crash in the middle of a save, and
// the self-describing files of each folder (config.json, safetensors metadata).
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/core/Process.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/RunConfigJson.h"
#include "biud/train/Trainer.h"
#include "common/TestUtil.h"
#include "train/ToyTask.h"

using namespace biud;
namespace stdfs = std::filesystem;
using test::readText;
using test::writeText;

namespace {

Config toyConfig(int steps) {
  return loadConfig("",
                    {"trainer.steps=" + std::to_string(steps), "trainer.save_every=2", "trainer.keep_last=5",
                     "schedule.name=constant", "schedule.warmup_steps=0", "optimizer.lr=0.01", "logging.every_steps=1",
                     "logging.file=false"});  // constant: a 4-step run is the first half of an 8-step one
}

std::vector<torch::Tensor> weights(train::Task& t) {
  std::vector<torch::Tensor> w;
  for (auto& p : t.module().parameters()) w.push_back(p.detach().clone());
  return w;
}

/// Train the toy task for `steps` in `run` (resuming from `latest` when asked); its weights.
std::vector<torch::Tensor> trainToy(const stdfs::path& run, int steps, bool resume, std::int64_t* startStep = nullptr) {
  app::clearStop();
  Config c = toyConfig(steps);
  if (resume) c.trainer.resume = "latest";
  train::Trainer t(c, run.string(), std::make_unique<test::ToyTask>(resume ? 99 : 7), {});
  EXPECT_EQ(t.train(), 0);
  if (startStep) *startStep = t.step();
  EXPECT_EQ(t.step(), steps);
  return weights(t.task());
}

void expectSame(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

/// Set the modification time of `p` itself (not a link's target), seconds from now.
void setMtime(const stdfs::path& p, long secondsFromNow) {
  struct timespec ts[2];
  ::clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec += secondsFromNow;
  ts[1] = ts[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << p;
}

/// The old form: `latest` as a text file naming the folder.
void makeTextLatest(const stdfs::path& ck, const std::string& name) {
  stdfs::remove(ck / "latest");
  writeText(ck / "latest", name + "\n");
}

std::vector<std::string> leftovers(const stdfs::path& ck) {
  std::vector<std::string> out;
  for (const auto& e : stdfs::directory_iterator(ck)) {
    const auto n = e.path().filename().string();
    if (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos) out.push_back(n);
  }
  return out;
}

}  // namespace

TEST(Checkpoint, LatestIsARelativeLinkReplacedAtomically) {
  test::TempDir d("ckpt");
  const auto ck = d / "run" / "checkpoints";
  train::CheckpointManager m(ck, 2);
  for (int step : {1, 2, 3})
    m.save(step,
           [&](const stdfs::path& dir) { writeText(dir / "state.json", "{\"step\": " + std::to_string(step) + "}"); });
  ASSERT_TRUE(stdfs::is_symlink(ck / "latest"));
  EXPECT_EQ(stdfs::read_symlink(ck / "latest"), stdfs::path("step_000003"));  // relative: the run folder can move
  EXPECT_EQ(readText(ck / "latest" / "state.json"), "{\"step\": 3}");         // opens like a folder (Python tooling)
  EXPECT_EQ(m.latest()->filename(), "step_000003");
  EXPECT_TRUE(leftovers(ck).empty());
  // keep_last = 2: the link is not a checkpoint and is never rotated away.
  ASSERT_EQ(m.list().size(), 2u);
  EXPECT_EQ(m.list()[0].filename(), "step_000002");
  // A moved run folder still resolves.
  stdfs::rename(d / "run", d / "moved");
  train::CheckpointManager moved(d / "moved" / "checkpoints", 2);
  EXPECT_EQ(moved.latest()->filename(), "step_000003");
  EXPECT_EQ(moved.resolve("latest"), d / "moved" / "checkpoints" / "step_000003");
}

TEST(Checkpoint, RunsWithTheTextFileAndWithTheLinkResumeExactly) {
  test::TempDir d("ckptresume");
  const auto straight = trainToy(d / "a", 8, false);

  // A run written before the switch: `latest` is a text file. It resumes from the folder it names,
  // and its next save replaces the file by the link.
  trainToy(d / "old", 4, false);
  makeTextLatest(d / "old" / "checkpoints", "step_000004");
  train::CheckpointManager old(d / "old" / "checkpoints", 5);
  EXPECT_EQ(old.latest()->filename(), "step_000004");
  expectSame(trainToy(d / "old", 8, true), straight);
  ASSERT_TRUE(stdfs::is_symlink(d / "old" / "checkpoints" / "latest"));
  EXPECT_EQ(stdfs::read_symlink(d / "old" / "checkpoints" / "latest"), stdfs::path("step_000008"));

  // A text file naming an older folder than the newest is obeyed when it is the newer file (the
  // run was resumed from that folder and saved nothing since).
  trainToy(d / "older", 4, false);
  makeTextLatest(d / "older" / "checkpoints", "step_000002");
  setMtime(d / "older" / "checkpoints" / "step_000004" / "state.json", -100);
  EXPECT_EQ(train::CheckpointManager(d / "older" / "checkpoints", 5).latest()->filename(), "step_000002");

  // The link form resumes exactly too.
  trainToy(d / "new", 4, false);
  ASSERT_TRUE(stdfs::is_symlink(d / "new" / "checkpoints" / "latest"));
  expectSame(trainToy(d / "new", 8, true), straight);
}

TEST(Checkpoint, ResumeLatestAfterACrashMidSaveFindsTheNewestCompleteCheckpoint) {
  test::TempDir d("ckptcrash");
  const auto straight = trainToy(d / "a", 8, false);
  trainToy(d / "b", 4, false);
  const auto ck = d / "b" / "checkpoints";
  // The process died after renaming step_000004 into place but before moving `latest`: `latest`
  // still names step_000002 and is older than step_000004's state.json ...
  stdfs::remove(ck / "latest");
  stdfs::create_symlink("step_000002", ck / "latest");
  setMtime(ck / "latest", -100);
  // ... with the debris of a later save that died while writing: a temporary folder without
  // state.json and a temporary link that was never renamed.
  fs::makeDirs(ck / "step_000006.tmp-4242");
  writeText(ck / "step_000006.tmp-4242" / "model.safetensors", "partial");
  stdfs::create_symlink("step_000006", ck / "latest.tmp-4242");
  train::CheckpointManager m(ck, 5);
  EXPECT_EQ(m.latest()->filename(), "step_000004");
  EXPECT_EQ(m.resolve("latest").filename(), "step_000004");
  EXPECT_EQ(m.pointer()->filename(), "step_000002");
  // The same with the text form of older runs.
  makeTextLatest(ck, "step_000002");
  setMtime(ck / "latest", -100);
  EXPECT_EQ(m.latest()->filename(), "step_000004");
  // `--resume latest` continues from step 4: the debris is removed and the run ends exactly as
  // an uninterrupted one.
  expectSame(trainToy(d / "b", 8, true), straight);
  EXPECT_TRUE(leftovers(ck).empty());
  EXPECT_EQ(stdfs::read_symlink(ck / "latest"), stdfs::path("step_000008"));

  // A dangling or empty `latest` falls back to the highest complete step.
  stdfs::remove(ck / "latest");
  stdfs::create_symlink("step_000099", ck / "latest");
  EXPECT_EQ(m.latest()->filename(), "step_000008");
  makeTextLatest(ck, "");
  EXPECT_EQ(m.latest()->filename(), "step_000008");
}

TEST(Checkpoint, EachFolderDescribesItself) {
  test::TempDir d("ckptdesc");
  trainToy(d / "run", 2, false);
  const auto dir = d / "run" / "checkpoints" / "step_000002";
  const auto j = nlohmann::json::parse(readText(dir / "config.json"));
  EXPECT_EQ(j["format"], "biud-checkpoint");
  EXPECT_EQ(j["format_version"], train::kCheckpointFormatVersion);
  EXPECT_EQ(j["step"], 2);
  // The toy network's layers: Linear is described, the others are named unknown (never an error).
  EXPECT_EQ(j["modules"]["fc1"]["type"], "linear");
  EXPECT_EQ(j["modules"]["fc1"]["in"], 6);
  EXPECT_EQ(j["modules"]["fc1"]["out"], 16);
  EXPECT_EQ(j["modules"]["norm"]["type"], "unknown");
  EXPECT_EQ(j["tokenizer"], nullptr);  // no report tower
  EXPECT_EQ(j["preprocessing"]["ct"]["hash"].get<std::string>().size(), 16u);
  std::map<std::string, std::string> meta;
  tensor::readSafetensors((dir / "model.safetensors").string(), &meta);
  EXPECT_EQ(meta["format"], "pt");
  EXPECT_EQ(meta["biud_checkpoint_format"], std::to_string(train::kCheckpointFormatVersion));
  EXPECT_EQ(meta["step"], "2");
}

TEST(Checkpoint, RunFolderAsInitialWeightsFollowsTheLink) {
  test::TempDir d("ckptweights");
  torch::manual_seed(3);
  NetConfig c;
  c.arch = "resnet3d18";
  c.preset = "tiny";
  auto src = models::makeVisualEncoder(c);
  train::CheckpointManager m(d / "run" / "checkpoints", 2);
  m.save(5, [&](const stdfs::path& dir) {
    std::map<std::string, std::string> none;
    tensor::saveModule(*src, (dir / "model.safetensors").string(), none);
    writeText(dir / "state.json", "{}");
  });
  ASSERT_TRUE(stdfs::is_symlink(d / "run" / "checkpoints" / "latest"));
  torch::manual_seed(4);
  c.weights = (d / "run").string();
  auto dst = models::makeVisualEncoder(c);
  const auto a = tensor::stateDict(*src), b = tensor::stateDict(*dst);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
}
