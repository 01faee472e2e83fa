#pragma once
/// \file Tasks.h
/// The built-in tasks (loading a trained run for inference: evaluate/LoadRun.h).
#include <memory>
#include <string>

#include "biud/config/Config.h"
#include "biud/train/Task.h"
#include "biud/train/Trainer.h"

namespace biud::train {

/// Stage 0: CLIP on X-ray/report pairs (data.xray_manifest, model.xray_encoder).
std::unique_ptr<Task> makeClip2dTask(const Config& cfg, const TaskContext& ctx);
/// Stage 1: BIUD pretraining of the CT encoder (data.manifest, model.teacher, data.pairing).
std::unique_ptr<Task> makeBiudTask(const Config& cfg, const TaskContext& ctx);
/// Downstream: multi-label CT classification on a pretrained BIUD encoder (finetune.*).
std::unique_ptr<Task> makeFinetuneTask(const Config& cfg, const TaskContext& ctx);
/// Downstream: report generation from a pretrained BIUD encoder (report.*, model.decoder).
std::unique_ptr<Task> makeReportTask(const Config& cfg, const TaskContext& ctx);
std::unique_ptr<Task> makeX2ctTask(const Config& cfg, const TaskContext& ctx);  ///< X2CT-CLIP (X2ctTask.h)

/// The trainer of a downstream task (`cfg.task` = finetune or report) in `runDir`, one process
/// (`optimizer.layer_decay` < 1 is applied to the trainable `ct_encoder` parameters by
/// buildOptimizer, as for any task).
std::unique_ptr<Trainer> makeDownstreamTrainer(Config& cfg, const std::string& runDir, const c10::Device& device);

}  // namespace biud::train
