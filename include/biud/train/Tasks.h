#pragma once
/// \file Tasks.h
/// The built-in tasks and what other tools need to reuse a trained run.
#include <memory>
#include <string>

#include "biud/config/Config.h"
#include "biud/models/CtClip.h"
#include "biud/text/Tokenizer.h"
#include "biud/train/FinetuneTask.h"
#include "biud/train/MethodModels.h"
#include "biud/train/ReportTask.h"
#include "biud/train/Task.h"

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

/// A finished (or checkpointed) run, loaded for inference.
struct LoadedRun {
  Config cfg;                                 ///< the run's config.resolved.yaml
  std::string checkpoint;                     ///< the checkpoint folder used
  std::unique_ptr<text::Tokenizer> tokenizer;
  ClipModel clip{nullptr};                    ///< task clip2d
  BiudModel biud{nullptr};                    ///< task biud
  FinetuneModel finetune{nullptr};            ///< task finetune (fine-tuned CT encoder + label head)
  ReportModel report{nullptr};                ///< task report (CT encoder + report decoder)
  /// CT-CLIP's released weights, imported by biud-import-weights ct-clip (its checkpoint holds
  /// ctclip.json; cfg.data.ct and cfg.text are CT-CLIP's preprocessing and tokenizer).
  models::CtClip ctclip{nullptr};
  /// finetune/report: the pretrained BIUD run the model started from (its finetune.run /
  /// report.run), whose config gave the encoder's architecture, `data.ct` and tokenizer (copied
  /// into `cfg.model.ct_encoder`, `cfg.data.ct` and `cfg.text`).
  std::string pretrained;
  /// The weights are the run's moving average (ema.safetensors of a trainer.ema run).
  bool ema = false;

  /// The run's CT encoder (biud, finetune, report; nullptr for clip2d).
  std::shared_ptr<models::VisualEncoderImpl> ctEncoder() const;
};

/// Load the newest checkpoint of `runDir` (or `runDir` itself when it is a checkpoint folder)
/// onto `device`, in eval mode. DataError naming the folder when it holds no checkpoint.
/// A finetune/report run also needs the config.resolved.yaml of the BIUD run it started from
/// (finetune.run / report.run): DataError naming both folders when it is gone.
/// `ema`: use the checkpoint's averaged weights (ema.safetensors, Ema.h) when it has them.
/// A checkpoint holding ctclip.json is an imported CT-CLIP model (LoadedRun::ctclip).
LoadedRun loadRun(const std::string& runDir, const c10::Device& device, bool ema = true);

/// Rewrite the file paths of a config (vocab, lexicon, prompts, manifests, teacher, ...) as
/// absolute paths, so that a run folder stays usable from any working directory.
void absolutizePaths(Config& cfg);

}  // namespace biud::train
