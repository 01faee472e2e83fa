#pragma once
/// \file ZeroShotEval.h
/// biud-zeroshot's evaluation: prompt-ensemble zero-shot classification of every finding (METHOD
/// §4) with one or more trained runs on the labelled split of a manifest, metrics with bootstrap
/// CIs (eval::evaluateModels), per-case probabilities, plots, and CT-CLIP's protocol on request.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/RunList.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/image/Manifest.h"
#include "biud/text/Prompts.h"

namespace biud::evaluate {

struct ZeroShotOptions {
  std::vector<app::NamedPath> runs;  ///< NAME=DIR (app::parseRunList); DeLong against the first
  std::string split;                 ///< empty: data.test_split of the first run
  std::string prompts;               ///< prompt sets YAML; empty: eval.prompts of the first run
  std::string protocol;              ///< biud or ct-clip; empty: cfg.eval.zeroshot_protocol
  std::string manifest;              ///< empty: the first run's data.manifest (data.xray_manifest for X-ray runs)
  bool progress = true;              ///< progress bars while building an evaluation cache
  /// Called once the inputs are checked, before anything is written: the output folder.
  std::function<std::string()> prepareOut;
};

struct ZeroShotResult {
  nlohmann::json json;                ///< what <out>/zeroshot.json holds
  std::vector<std::string> findings;  ///< the evaluated findings (label columns with prompts)
  std::vector<std::string> failures;  ///< CTs that could not be read (JSON lines of failures.jsonl)
  std::string out, split, firstName;  ///< output folder, evaluated split, name of the first run
  std::size_t cases = 0;
};

/// Per-case zero-shot probabilities of one run on `split` of `manifest`.
struct ZeroShotScores {
  std::vector<std::string> ids;
  torch::Tensor probs;   ///< [N, F] (F = findings)
  torch::Tensor labels;  ///< [N, L] all label columns, manifest order
};

/// Encode the images of `split` (X-rays for clip2d/x2ct runs, CTs from `cacheDir` otherwise) and
/// the prompt ensembles of `findings` with `run`, and score them (zeroShotProbabilities at the
/// run's temperature; CT-CLIP: tau = 1 / its logit scale).
ZeroShotScores scoreZeroShot(LoadedRun& run, const image::Manifest& manifest, const std::string& split,
                             const text::PromptSet& prompts, const std::vector<std::string>& findings,
                             const c10::Device& device, const std::string& cacheDir);

/// Load the runs (ConfigError for a run without image and text encoders), check the manifest and
/// prompts, score every run (CT runs through an evaluation cache with their own preprocessing:
/// data.cache_dir of `cfg` or of the run, else one built in <out>/cache-<hash>; unreadable CTs
/// are left out) and write <out>/zeroshot.json, probabilities[_<name>].csv, failures.jsonl and
/// (cfg.eval.plots) plots/. `cfg`: the app's config (eval.*, seed, threads, data.cache_dir).
ZeroShotResult runZeroShot(const ZeroShotOptions& opt, const Config& cfg, const c10::Device& device);

}  // namespace biud::evaluate
