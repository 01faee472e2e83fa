#pragma once
/// \file Fusion.h
/// Fusion encoder for entity-focused masking (EFM): BERT layers whose tokens self-attend and
/// cross-attend to CT tokens, and an MLM head whose output projection is tied to the text
/// encoder's word embeddings (HF names: `cls.predictions.transform.dense`,
/// `cls.predictions.transform.LayerNorm`, `cls.predictions.bias`).
#include <torch/torch.h>

#include "biud/models/Bert.h"

namespace biud::models {

struct FusionOptions {
  BertOptions bert;         ///< width/heads/depth (num_hidden_layers = fusion layers), vocab for the MLM head
  std::int64_t ct_dim = 0;  ///< width of the CT tokens (0 = bert.hidden_size; others get `ct_proj`)
};

class FusionEncoderImpl : public torch::nn::Module {
 public:
  /// `wordEmbeddings`: the text encoder's embedding table to tie the MLM decoder to; when null the
  /// head owns `cls.predictions.decoder.weight`.
  explicit FusionEncoderImpl(FusionOptions options, torch::nn::Embedding wordEmbeddings = nullptr);
  /// text [B,L,D] (text-encoder hidden states), textMask [B,L]; ct [B,N,ct_dim], ctMask [B,N] or undefined.
  torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& textMask, const torch::Tensor& ct,
                        const torch::Tensor& ctMask = {});
  /// MLM logits [B,L,V] of fused hidden states.
  torch::Tensor mlmLogits(const torch::Tensor& hidden);

  FusionOptions opt;
  std::vector<BertLayer> layers;
  torch::nn::Linear ct_proj{nullptr}, transform{nullptr};
  torch::nn::LayerNorm transform_ln{nullptr};
  torch::Tensor mlm_bias, own_decoder;
  torch::nn::Embedding tied{nullptr};
};
TORCH_MODULE(FusionEncoder);

}  // namespace biud::models
