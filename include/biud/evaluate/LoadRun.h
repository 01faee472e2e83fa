#pragma once
/// \file LoadRun.h
/// A trained run (or an imported one, biud-import-weights) rebuilt from its folder for inference:
/// config.resolved.yaml + the newest checkpoint; the initial weights are not read again.
#include <memory>
#include <string>

#include "biud/config/Config.h"
#include "biud/evaluate/RunModel.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/Tokenizer.h"

namespace biud::evaluate {

/// A finished (or checkpointed) run, loaded for inference.
struct LoadedRun {
  Config cfg;              ///< the run's config.resolved.yaml
  std::string root;        ///< the run folder
  std::string checkpoint;  ///< the checkpoint folder used
  std::unique_ptr<text::Tokenizer> tokenizer;
  /// The model, whatever task trained it: ask it what it can do (RunModel.h).
  std::unique_ptr<RunModel> model;
  /// finetune/report: the pretrained BIUD run the model started from (its finetune.run /
  /// report.run), whose config gave the encoder's architecture, `data.ct` and tokenizer (copied
  /// into `cfg.model.ct_encoder`, `cfg.data.ct` and `cfg.text`).
  std::string pretrained;
  /// The weights are the run's moving average (ema.safetensors of a trainer.ema run).
  bool ema = false;
};

/// Load the newest checkpoint of `runDir` (or `runDir` itself when it is a checkpoint folder)
/// onto `device`, in eval mode: its config's `task` names the registry entry (TaskSpec.h) that
/// builds and loads the model. DataError naming the folder when it holds no checkpoint;
/// ConfigError listing the registered tasks when the task is not one of them.
/// A finetune/report run also needs the config.resolved.yaml of the BIUD run it started from
/// (finetune.run / report.run): DataError naming both folders when it is gone.
/// `ema`: use the checkpoint's averaged weights (ema.safetensors, Ema.h) when it has them.
/// A checkpoint holding ctclip.json is an imported CT-CLIP model (entry `ct-clip`).
LoadedRun loadRun(const std::string& runDir, const c10::Device& device, bool ema = true);

/// Rewrite the file paths of a config (vocab, lexicon, prompts, manifests, teacher, ...) as
/// absolute paths, so that a run folder stays usable from any working directory.
void absolutizePaths(Config& cfg);

// For the registry entries' `load` (TaskSpec.h):

/// Load `run.checkpoint`'s model.safetensors into `m` (or the already read `tensors` of it),
/// then (`ema`) the moving average when the checkpoint has one (sets `run.ema`); move `m` to
/// `device`, freeze it and put it in eval mode.
void loadRunWeights(torch::nn::Module& m, LoadedRun& run, const c10::Device& device, bool ema,
                    const tensor::TensorMap* tensors = nullptr);

/// A downstream run (finetune, report) started from the BIUD run `pretrainedRun` (its config
/// key `key`, e.g. finetune.run): that run's config (not the downstream run's) describes the CT
/// encoder, its input grid and the tokenizer; they are copied into `run.cfg` and
/// `run.pretrained` is set. DataError naming both folders when it is gone or not a BIUD run.
void adoptPretrainedConfig(LoadedRun& run, const std::string& pretrainedRun, const std::string& key);

}  // namespace biud::evaluate
