#pragma once
/// \file CtEval.h
/// Pieces shared by the apps and tasks that evaluate a CT model on one split of a manifest
/// (biud-zeroshot, biud-finetune, biud-report): the pretrained CT encoder of a BIUD run, a
/// sequential, non-augmented pass over a split, and the classification outputs
/// (metrics JSON with bootstrap CIs, per-case probabilities CSV, plots, the console table).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/data/CtDataset.h"
#include "biud/data/CtLoader.h"
#include "biud/models/Encoder.h"
#include "biud/text/Tokenizer.h"

namespace biud::evaluate {

/// The CT encoder of a pretrained BIUD run, with what is needed to feed it.
struct PretrainedCt {
  Config cfg;                                          ///< the pretrained run's resolved config
  std::string checkpoint;                              ///< checkpoint folder the weights came from
  std::shared_ptr<models::VisualEncoderImpl> encoder;  ///< on the device, frozen, eval mode
  std::unique_ptr<text::Tokenizer> tokenizer;          ///< the run's tokenizer
};

/// Load the CT encoder of `runDir` (a BIUD run folder or one of its checkpoint folders).
/// DataError naming the folder when it holds no checkpoint, or when it is not a BIUD run.
/// `ema`: the run's averaged weights when its checkpoint has them (eval.ema).
PretrainedCt loadPretrainedCt(const std::string& runDir, const c10::Device& device, bool ema = true);

/// Check, before any output is written, that `runDir` is a folder holding a checkpoint
/// (`checkpoints/step_*/` or a checkpoint folder itself); DataError naming it otherwise.
void checkPretrainedRun(const std::string& runDir, const std::string& flag = "--run");

/// The items of `split` of `manifest` as a dataset (DataError naming the manifest and the
/// splits it has when `split` is empty).
std::shared_ptr<data::CtDataset> splitDataset(std::shared_ptr<const image::Manifest> manifest, const std::string& split,
                                              const DataConfig& data, const std::string& cacheDir);

/// Point `cfg.data` at a cache that holds the evaluated CTs (image::prepareEvalCache):
/// `cfg.data.cache_dir` when it was built with `cfg.data.ct`, else `<outDir>/cache`, built now
/// from the raw volumes. Items that cannot be read are left out: the manifest without them is
/// written to `<outDir>/manifest.evaluated.csv` and `cfg.data.manifest` points there. Writes
/// `<outDir>/failures.jsonl` (empty when none failed) and returns the number of failed items.
/// `splits`: the splits the app reads (all when empty).
size_t useEvalCache(Config& cfg, const std::string& outDir, const std::vector<std::string>& splits = {});

/// A loader over `ds` for evaluation: in order, without augmentation, the last partial batch
/// kept, positioned at the start of epoch 0.
std::unique_ptr<data::CtLoader> sequentialLoader(const std::shared_ptr<data::CtDataset>& ds,
                                                 const LoaderConfig& loader);

/// Every batch of `ds` in order, without augmentation and without dropping the last partial
/// batch; shows a progress bar labelled `label` (none when empty) and stops early on SIGINT.
void forEachEvalBatch(const std::shared_ptr<data::CtDataset>& ds, const LoaderConfig& loader,
                      const std::function<void(data::CtBatch&)>& fn, const std::string& label = "");

/// Write `probabilities.csv` (id, one column per finding) into `outDir`.
void writeProbabilities(const std::string& path, const std::vector<std::string>& ids,
                        const std::vector<std::string>& findings, const std::vector<std::vector<double>>& probs);

/// The fixed-width table (finding, AUROC, CI, AP, F1; macro) people read in the log.
std::string classificationTable(const nlohmann::json& report, const std::vector<std::string>& findings);

/// Rows of a [N, F] tensor as vectors of doubles (NaN kept).
std::vector<std::vector<double>> toRows(const torch::Tensor& t);

}  // namespace biud::evaluate
