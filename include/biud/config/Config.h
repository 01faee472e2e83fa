#pragma once
/// \file Config.h
/// The root configuration every app reads: top-level run keys plus one typed section per
/// component. A component receives only its own section.
#include "biud/config/DataConfig.h"
#include "biud/config/EvalConfig.h"
#include "biud/config/FinetuneConfig.h"
#include "biud/config/LoggingConfig.h"
#include "biud/config/LossConfig.h"
#include "biud/config/ModelConfig.h"
#include "biud/config/OptimConfig.h"
#include "biud/config/ReportConfig.h"
#include "biud/config/SynthConfig.h"
#include "biud/config/TrainerConfig.h"
#include "biud/config/X2ctConfig.h"

namespace biud {

struct Config {
  std::string name;  ///< run name; empty = <task>-<timestamp>
  std::string task = "biud";
  std::int64_t seed = 0;
  std::string device = "auto";
  int threads = 0;
  std::string out_dir = "runs";

  DataConfig data;
  TextConfig text;
  ModelConfig model;
  LossConfig loss;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainerConfig trainer;
  DistributedConfig distributed;
  EvalConfig eval;
  LoggingConfig logging;
  SynthConfig synth;
  FinetuneConfig finetune;
  ReportConfig report;
  X2ctConfig x2ct;

  void visit(config::Visitor& v) {
    v.field("name", name, "run name (folder under out_dir); empty = <task>-<timestamp>");
    v.field("task", task, "training task", config::oneOf({"clip2d", "biud", "x2ct", "report", "finetune"}));
    v.field("seed", seed, "seed of every random stream", config::atLeast(0));
    v.field("device", device, "auto = CUDA when available", config::oneOf({"auto", "cpu", "cuda"}));
    v.field("threads", threads,
            "intra-op CPU threads per process (0 = all cores, shared among the ranks that biud-launch or torchrun "
            "start on one node)",
            config::atLeast(0));
    v.field("out_dir", out_dir, "folder that holds run folders");
    v.section("data", data, "data");
    v.section("text", text, "text");
    v.section("model", model, "model");
    v.section("loss", loss, "loss");
    v.section("optimizer", optimizer, "optimizer");
    v.section("schedule", schedule, "learning-rate schedule");
    v.section("trainer", trainer, "training loop");
    v.section("distributed", distributed, "multi-process training");
    v.section("eval", eval, "evaluation");
    v.section("logging", logging, "logging");
    v.section("synth", synth, "synthetic data generator (biud-synth)");
    v.section("finetune", finetune, "multi-label fine-tuning / linear probe (biud-finetune)");
    v.section("report", report, "report generation (biud-report)");
    v.section("x2ct", x2ct, "X2CT-CLIP: simulated X-rays (biud-drr) and the tri-modal task");
  }
};

/// Load `path` (may be empty: defaults only), apply `--set` overrides, validate.
Config loadConfig(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace biud
