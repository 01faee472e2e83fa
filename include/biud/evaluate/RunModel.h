#pragma once
/// \file RunModel.h
/// What a loaded run's model can do, whatever task trained it (evaluate/LoadRun.h holds one).
/// Callers ask for a capability (`can()`, or call it and get a clear error naming the run folder
/// and its task); they never test the task's name or downcast. Each task's registry entry
/// (evaluate/TaskSpec.h) wraps its model in one of the adapters below.
#include <memory>
#include <string>

#include <torch/torch.h>

#include "biud/models/Bert.h"
#include "biud/models/CtClip.h"
#include "biud/models/Encoder.h"
#include "biud/models/Heads.h"
#include "biud/models/MethodModels.h"

namespace biud::evaluate {

/// What a run's model may offer.
enum class Capability {
  kText,       ///< report embeddings in the shared space (encodeText, temperature, textTower)
  kCt,         ///< CT volume embeddings in the shared space (encodeCt)
  kXray,       ///< X-ray embeddings in the shared space (encodeXray)
  kCtEncoder,  ///< a CT backbone of the model zoo (ctEncoder): biud, finetune, report runs
};

/// "a text encoder", "a CT encoder in the shared space", ... (for error messages).
std::string describe(Capability c);

/// A CT volume's embedding and what the model has besides.
struct CtEmbedding {
  torch::Tensor ct;       ///< [B, d] L2-normalised embedding in the shared space
  torch::Tensor adapted;  ///< [B, d_X] the distillation adapter's output (BIUD runs; else undefined)
  torch::Tensor tokens;   ///< [B, N, D] the CT encoder's tokens (when it has them; else undefined)
};

/// The report tower before and after its projection (for cached frozen text features).
struct TextTower {
  models::BertModel encoder{nullptr};
  models::ProjectionHead proj{nullptr};
};

/// A loaded run's model. Every method the model cannot serve throws ConfigError
/// "`<run>` is a <task> run: it has no <capability>".
class RunModel {
 public:
  RunModel(std::string run, std::string task) : run_(std::move(run)), task_(std::move(task)) {}
  virtual ~RunModel() = default;
  RunModel(const RunModel&) = delete;
  RunModel& operator=(const RunModel&) = delete;

  const std::string& run() const { return run_; }    ///< the run folder
  const std::string& task() const { return task_; }  ///< its registry entry
  /// The root module (checkpoint keys), on the device, frozen, in eval mode.
  virtual torch::nn::Module& module() = 0;
  virtual bool can(Capability c) const = 0;
  /// The capability error unless can(c).
  void require(Capability c) const;

  /// L2-normalised report embeddings [B, d] of token ids and masks [B, L].
  virtual torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask);
  /// Embeddings of preprocessed CT volumes [B, C, D, H, W].
  virtual CtEmbedding encodeCt(const torch::Tensor& volume);
  /// L2-normalised embeddings [B, d] of preprocessed X-rays [B, C, H, W].
  virtual torch::Tensor encodeXray(const torch::Tensor& images);
  /// The CT backbone (biud, finetune, report runs).
  virtual std::shared_ptr<models::VisualEncoderImpl> ctEncoder() const;
  /// The zero-shot temperature tau (similarities are divided by it).
  virtual double temperature();
  virtual TextTower textTower() const;

 protected:
  [[noreturn]] void lacks(Capability c) const;

 private:
  std::string run_, task_;
};

/// The adapters of the method's models (RunModel.cpp). `run`: the run folder; `task`: its entry.
std::unique_ptr<RunModel> clipRunModel(models::ClipModel m, std::string run, std::string task);
std::unique_ptr<RunModel> biudRunModel(models::BiudModel m, std::string run, std::string task);
std::unique_ptr<RunModel> finetuneRunModel(models::FinetuneModel m, std::string run, std::string task);
std::unique_ptr<RunModel> reportRunModel(models::ReportModel m, std::string run, std::string task);
std::unique_ptr<RunModel> ctClipRunModel(models::CtClip m, std::string run, std::string task);

}  // namespace biud::evaluate
