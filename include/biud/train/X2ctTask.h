#pragma once
/// \file X2ctTask.h
/// X2CT-CLIP (METHOD §6): the tri-modal task `x2ct`. The CT and report towers of a pretrained
/// run (`x2ct.pretrained`, a biud stage-1 run) are frozen; their latents for every CT of
/// data.manifest are computed once and cached (`latents.safetensors`); only the X-ray encoder
/// (model.xray_encoder) and its projection (and the temperature) train, on the simulated X-rays of
/// `x2ct.xray_manifest` (biud-drr), with
///   L = alpha L(CT, report) + beta L(X-ray, report) + gamma L(X-ray, CT)      (loss.trimodal).
///
/// The model is a ClipModel (`image_encoder`/`image_proj` = the X-ray tower, `text_encoder`/
/// `text_proj` = the frozen report tower copied from the pretrained run), so an x2ct run loads
/// with loadRun() and works in every tool that takes an X-ray CLIP run (biud-zeroshot,
/// biud-x2ct-eval). The CT tower is used only while caching and released afterwards.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/data/Sampler.h"
#include "biud/data/X2ctLatents.h"
#include "biud/data/XraySet.h"
#include "biud/losses/TrimodalLoss.h"
#include "biud/models/MethodModels.h"
#include "biud/text/Prompts.h"
#include "biud/text/Tokenizer.h"
#include "biud/train/Task.h"

namespace biud::train {

class X2ctTask final : public Task {
 public:
  X2ctTask(const Config& cfg, const TaskContext& ctx);

  torch::nn::Module& module() override { return *model_; }
  StepResult trainStep(const StepContext& sc) override;
  Metrics validate() override;
  nlohmann::json state() const override;
  void loadState(const nlohmann::json& s) override;

  /// For tests and tools.
  models::ClipModel& model() { return model_; }
  const data::X2ctLatents& latents() const { return latents_; }
  /// CT encoder forward passes this task made (all of them while filling the cache; 0 when the
  /// cache was already there).
  std::int64_t ctEncoderCalls() const { return ctCalls_; }
  /// True once the CT tower is released (it is never kept after caching).
  bool ctTowerReleased() const { return ctReleased_; }
  const data::XraySet& trainSet() const { return train_; }
  /// The training batches (X-ray indices) of epoch `e` on this rank.
  std::vector<std::vector<std::int64_t>> epochBatches(std::int64_t e) const { return sampler_->epoch(e); }

 private:
  void buildLatents(const std::string& path);
  void startEpoch(std::int64_t e);
  std::vector<std::int64_t> nextBatch();
  torch::Tensor latentRows(const data::XraySet& s, const std::vector<std::int64_t>& idx) const;

  Config cfg_;
  TaskContext ctx_;
  losses::TrimodalLoss loss_;
  std::unique_ptr<text::Tokenizer> tok_;
  data::XraySet train_;
  std::unique_ptr<data::XraySet> val_;
  std::vector<std::int64_t> trainRows_, valRows_;  ///< latent row of each X-ray
  data::X2ctLatents latents_;
  std::unique_ptr<text::PromptSet> prompts_;
  text::LabelMatch promptCols_;  ///< validation label columns with prompts (checked at construction)
  models::ClipModel model_{nullptr};
  std::unique_ptr<data::BatchSampler> sampler_;
  std::vector<std::vector<std::int64_t>> batches_;
  std::int64_t epoch_ = 0;
  std::size_t cursor_ = 0;
  std::int64_t ctCalls_ = 0;
  bool ctReleased_ = false;
};

}  // namespace biud::train
