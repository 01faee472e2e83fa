// The regime benchmark (scripts/regime.sh, docs/regime.md) shrunk to minutes: tiny CTs and
// X-rays, a tiny report encoder trained here, a few training steps, 2 seeds and a few variants
// (about 3 min on 2 free cores: some 35 app starts).
// It checks that the expert gate stops the script before any student when missed, that every
// stage is cached on a rerun, and the table's arithmetic: tests/reference/regime_check.py
// recomputes the per-seed macro AUROCs, the paired differences and their Student-t CIs
// (scipy.stats.ttest_rel) and the retrieval agreement from the files the runs left.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/TestUtil.h"

namespace biud::test {
namespace {

std::string env(const TempDir& dir) {
  const std::string grid =
      "--set data.ct.size=[32,32,16] --set data.ct.spacing=[6.0,6.0,12.0]"
      " --set data.augment.random_crop=[28,28,14] --set data.loader.workers=1";
  // The binaries of this build (build-asan, a sanitizer build, is not ./build).
  return "BIUD_BIN=" + quote(binDir().string()) + " OUT=" + quote(dir.str()) +
         " THREADS=1 REGIME_TEXT=tiny SEEDS='0 1' COMMON_SETS=" + quote(grid) +
         " VARIANTS='clip clip_pair_sem ctl_oracle' TEXT_VARIANTS='txt_clip txt_clip_pair_sem'"
         " PROBE_FRACTIONS=1 TUNE_WEIGHTS='1 2' TUNE_TAUS=0.1"
         " SYNTH_CT_SETS=" +
         quote(
             "--set synth.n_ct=32 --set synth.size=[32,32,16] --set synth.spacing=[6.0,6.0,12.0]"
             " --set synth.split=[0.5,0.25,0.25]") +
         " SYNTH_CXR_SETS=" + quote("--set synth.n_cxr=120 --set synth.xray_size=32") + " EXPERT_SETS=" +
         quote(
             "--set trainer.steps=4 --set data.loader.batch_size=16 --set data.xray.size=32"
             " --set trainer.val_every=0 --set trainer.save_every=4") +
         " STUDENT_SETS=" +
         quote(
             "--set trainer.steps=3 --set trainer.save_every=3 --set data.loader.batch_size=8"
             " --set schedule.warmup_steps=0") +
         " PROBE_SETS=" +
         quote(
             "--set trainer.steps=4 --set trainer.val_every=2 --set trainer.save_every=4"
             " --set data.loader.batch_size=8");
}

TEST(Regime, GateStopsBeforeStudentsThenTheShrunkBenchmarkAddsUp) {
  TempDir dir("regime");
  const std::string script = (sourceDir() / "scripts/regime.sh").string();
  // A tiny expert misses the default gate (zero-shot 0.85, agreement 0.7): no student is trained.
  auto r = run(env(dir) + " bash " + quote(script) + " 2>&1");
  ASSERT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("missed its quality gate"), std::string::npos) << r.out;
  const auto gate = nlohmann::json::parse(readText(dir / "expert/gate.json"));
  EXPECT_FALSE(gate.at("passed").get<bool>());
  EXPECT_FALSE(stdfs::exists(dir / "runs")) << "a student was trained although the expert missed the gate";

  // With the gate off the rest runs, reusing the data, the cache and the expert.
  r = run("GATE=off " + env(dir) + " bash " + quote(script) + " 2>&1");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string times = readText(dir / "times.tsv");
  std::istringstream lines(times);
  int expertTrainings = 0;
  for (std::string l; std::getline(lines, l);) expertTrainings += l.rfind("train expert\t", 0) == 0;
  EXPECT_EQ(expertTrainings, 1) << "the expert was trained again:\n" << times;
  for (const char* v : {"clip", "clip_pair_sem", "ctl_oracle", "txt_clip", "txt_clip_pair_sem"})
    for (int s : {0, 1})
      EXPECT_TRUE(stdfs::exists(dir / "results" / (std::string(v) + "_seed" + std::to_string(s) + ".json"))) << v << s;
  const auto oracle = nlohmann::json::parse(readText(dir / "retrieval-oracle/oracle.json"));
  EXPECT_EQ(oracle.at("top1_has_chosen_set").get<double>(), 1.0);
  EXPECT_TRUE(stdfs::exists(dir / "tuned.env"));
  const auto out = runPython("regime_check.py",
                             quote(dir.str()) + " " + quote((sourceDir() / "configs/regime/findings.yaml").string()));
  EXPECT_NE(out.find("ok"), std::string::npos) << out;
}

}  // namespace
}  // namespace biud::test
