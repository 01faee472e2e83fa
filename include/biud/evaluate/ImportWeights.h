#pragma once
/// \file ImportWeights.h
/// biud-import-weights: a public model's released weights -> a biud run folder that loadRun()
/// (evaluate/LoadRun.h) and the evaluation apps read like a trained run (docs/baselines.md).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "biud/config/Config.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/models/CtClip.h"

namespace biud::evaluate {

struct CtClipImportOptions {
  std::string ckpt;       ///< the released .pt (or a .safetensors with the same keys)
  std::string tokenizer;  ///< CXR-BERT's vocab.txt or the folder holding it
  models::CtClipHints hints;
  std::int64_t frames = 240;                     ///< slices after crop/pad (data.ct.size's z)
  int batch = 1;                                 ///< data.loader.batch_size of evaluations
  std::vector<double> spacing{0.75, 0.75, 1.5};  ///< data.ct.spacing (mm)
  /// Which of CT-CLIP's loaders data.ct reproduces: "zeroshot" (scripts/data_inference_nii.py, HU
  /// clipped before resampling) or "train" (scripts/data.py, clipped after).
  std::string loader = "zeroshot";
  std::string givenOut;  ///< --out as given (refused when it already holds checkpoints); empty when not given
  /// Called once the inputs are checked and the weights read: the run folder to write.
  std::function<std::string()> prepareOut;
};

/// Read the CT-CLIP checkpoint, check it against the vocabulary, set `cfg` to CT-CLIP's
/// preprocessing and tokenizer, and write <out>/config.resolved.yaml, <out>/vocab.txt,
/// <out>/checkpoints/step_000000/{model.safetensors, ctclip.json, state.json} and
/// <out>/biud-import-weights.json, whose content is returned.
nlohmann::ordered_json importCtClip(const CtClipImportOptions& opt, Config& cfg);

/// The registry entry `ct-clip` (load-only): an imported CT-CLIP run folder, read back with
/// CT-CLIP's preprocessing (its data.ct) and tokenizer; it cannot be trained.
TaskSpec ctClipTaskSpec();

}  // namespace biud::evaluate
