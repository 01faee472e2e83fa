#pragma once
/// \file LoadRun.h
/// A trained run (or an imported one, biud-import-weights) rebuilt from its folder for inference:
/// config.resolved.yaml + the newest checkpoint; the initial weights are not read again.
#include <memory>
#include <string>

#include "biud/config/Config.h"
#include "biud/models/CtClip.h"
#include "biud/models/MethodModels.h"
#include "biud/text/Tokenizer.h"

namespace biud::evaluate {

/// A finished (or checkpointed) run, loaded for inference.
struct LoadedRun {
  Config cfg;                                 ///< the run's config.resolved.yaml
  std::string checkpoint;                     ///< the checkpoint folder used
  std::unique_ptr<text::Tokenizer> tokenizer;
  models::ClipModel clip{nullptr};                    ///< task clip2d
  models::BiudModel biud{nullptr};                    ///< task biud
  models::FinetuneModel finetune{nullptr};            ///< task finetune (fine-tuned CT encoder + label head)
  models::ReportModel report{nullptr};                ///< task report (CT encoder + report decoder)
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

}  // namespace biud::evaluate
