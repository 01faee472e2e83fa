#pragma once
/// \file MethodModels.h
/// The two-tower models of the method, assembled from the model zoo (models/Registry.h):
///   ClipModel  image encoder (2D X-ray for clip2d) + BERT, projections, temperature
///   BiudModel  3D CT encoder + BERT, projections, distillation adapter, EFM fusion encoder
///   FinetuneModel  CT encoder + linear label head (task finetune)
///   ReportModel    CT encoder + report decoder (task report)
/// Submodule names are the checkpoint keys (`image_encoder.…`, `text_encoder.embeddings.…`).
/// Training tasks (train/) and run loading (evaluate/LoadRun.h) both build them from here.
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/models/Bert.h"
#include "biud/models/Encoder.h"
#include "biud/models/Fusion.h"
#include "biud/models/Heads.h"
#include "biud/models/ReportDecoder.h"

namespace biud::models {

/// CLIP: `image_encoder`, `text_encoder`, `image_proj`, `text_proj`, `temperature`.
class ClipModelImpl : public torch::nn::Module {
 public:
  /// `imageNet` = cfg.model.xray_encoder (clip2d) or cfg.model.ct_encoder; `vocabSize` from the tokenizer.
  ClipModelImpl(const Config& cfg, const NetConfig& imageNet, std::int64_t vocabSize);
  /// L2-normalised image embeddings [B, d]. Grey images are repeated to the encoder's channels.
  torch::Tensor encodeImage(const torch::Tensor& images);
  /// L2-normalised report embeddings [B, d].
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask);
  int imageChannels() const { return channels_; }

  std::shared_ptr<models::VisualEncoderImpl> image_encoder;
  models::BertModel text_encoder{nullptr};
  models::ProjectionHead image_proj{nullptr}, text_proj{nullptr};
  models::Temperature temperature{nullptr};

 private:
  int channels_ = 1;
};
TORCH_MODULE(ClipModel);

/// BIUD student: `ct_encoder`, `text_encoder`, `ct_proj`, `text_proj`, `adapter` (d -> d_X),
/// `fusion` (EFM; absent when loss.efm.weight = 0), `temperature`.
class BiudModelImpl : public torch::nn::Module {
 public:
  BiudModelImpl(const Config& cfg, std::int64_t vocabSize, std::int64_t teacherDim);
  struct Output {
    torch::Tensor ct;       ///< [B, d] normalised CT embedding h^CT
    torch::Tensor adapted;  ///< [B, d_X] A h^CT (normalised)
    torch::Tensor tokens;   ///< [B, N, D_ct] CT tokens (for fusion)
  };
  Output encodeCt(const torch::Tensor& volume);
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask);
  /// EFM: MLM logits [N, V] at the `selected` positions ([B, L] bool, N true) of the masked
  /// reports. Columns past the longest report are cut first and the vocabulary projection runs on
  /// the selected tokens only: the same numbers as full-width logits indexed afterwards, for a
  /// fraction of the work (reports are padded to text.max_length; V is 30522 for a BERT vocab).
  torch::Tensor efmLogits(const torch::Tensor& maskedIds, const torch::Tensor& mask, const torch::Tensor& ctTokens,
                          const torch::Tensor& selected);

  std::shared_ptr<models::VisualEncoderImpl> ct_encoder;
  models::BertModel text_encoder{nullptr};
  models::ProjectionHead ct_proj{nullptr}, text_proj{nullptr};
  models::DistillAdapter adapter{nullptr};
  models::FusionEncoder fusion{nullptr};
  models::Temperature temperature{nullptr};
};
TORCH_MODULE(BiudModel);

/// The model of a `finetune` run: `ct_encoder` (the pretrained BIUD CT encoder) and a linear
/// `head` [labels x encoder width] on its pooled features (checkpoint keys `ct_encoder.*`, `head.*`).
class FinetuneModelImpl : public torch::nn::Module {
 public:
  /// The head starts at N(0, 0.01) weights and zero biases; `dropout` acts on the features in training.
  FinetuneModelImpl(std::shared_ptr<models::VisualEncoderImpl> enc, std::int64_t labels, double dropout = 0.0);
  /// Pooled encoder features [B, D] of volumes [B, C, D, H, W].
  torch::Tensor features(const torch::Tensor& volume);
  /// Logits [B, labels] of pooled features.
  torch::Tensor classify(const torch::Tensor& feats);

  std::shared_ptr<models::VisualEncoderImpl> ct_encoder;
  torch::nn::Linear head{nullptr};

 private:
  double p_;
};
TORCH_MODULE(FinetuneModel);

/// The model of a `report` run: `ct_encoder` (the pretrained BIUD CT encoder) whose tokens the
/// `decoder` cross-attends to (checkpoint keys `ct_encoder.*`, `decoder.*`).
class ReportModelImpl : public torch::nn::Module {
 public:
  ReportModelImpl(std::shared_ptr<models::VisualEncoderImpl> enc, models::ReportDecoder dec) {
    ct_encoder = register_module("ct_encoder", std::move(enc));
    decoder = register_module("decoder", std::move(dec));
  }
  std::shared_ptr<models::VisualEncoderImpl> ct_encoder;
  models::ReportDecoder decoder{nullptr};
};
TORCH_MODULE(ReportModel);

/// The config the ClipModel of an x2ct run is built with: the temperature from loss.trimodal
/// (init/min/max) and x2ct.learn_temperature.
Config x2ctModelConfig(const Config& cfg);

}  // namespace biud::models
