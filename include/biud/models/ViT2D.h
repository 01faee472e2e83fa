#pragma once
/// \file ViT2D.h
/// 2D vision transformer with torchvision's parameter names (`conv_proj`, `class_token`,
/// `encoder.pos_embedding`, `encoder.layers.encoder_layer_N.{ln_1, self_attention.in_proj_weight,
/// self_attention.out_proj, ln_2, mlp.0, mlp.3}`, `encoder.ln`, `heads.head`), so torchvision's
/// vit_b_16 weights load. Other image sizes than `image_size` interpolate the position table
/// bicubically (as torchvision's interpolate_embeddings).
#include <torch/torch.h>

#include "biud/models/Encoder.h"

namespace biud::models {

struct ViT2DOptions {
  std::int64_t image_size = 224, patch = 16, in_channels = 3;
  std::int64_t dim = 768, depth = 12, heads = 12, mlp_dim = 3072;
  std::int64_t num_classes = 0;  ///< 0 = no `heads.head`
  double dropout = 0.0;
};
/// vit_b_16 / vit_b_32 / vit_l_16 (torchvision), or `tiny` (dim 64, depth 2, 4 heads, 64x64 images).
ViT2DOptions vit2dPreset(const std::string& name);

/// torch.nn.MultiheadAttention's parameter layout (in_proj_weight/bias, out_proj) over the
/// fused attention() kernel.
class PackedAttentionImpl : public torch::nn::Module {
 public:
  PackedAttentionImpl(std::int64_t dim, std::int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
  std::int64_t heads;
};
TORCH_MODULE(PackedAttention);

class ViTEncoderLayerImpl : public torch::nn::Module {
 public:
  ViTEncoderLayerImpl(const ViT2DOptions& o);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  PackedAttention self_attention{nullptr};
  torch::nn::Sequential mlp{nullptr};
  double dropout;
};
TORCH_MODULE(ViTEncoderLayer);

class ViT2DImpl : public VisualEncoderImpl {
 public:
  explicit ViT2DImpl(ViT2DOptions options = {});
  /// pooled = class token after the final LayerNorm; tokens = the patch tokens.
  EncoderOutput encode(const torch::Tensor& x) override;
  /// Logits when num_classes > 0, else pooled.
  torch::Tensor forward(const torch::Tensor& x);
  std::int64_t dim() const override { return opt.dim; }
  int spatialDims() const override { return 2; }

  ViT2DOptions opt;
  torch::nn::Conv2d conv_proj{nullptr};
  torch::Tensor class_token, pos_embedding;
  std::vector<ViTEncoderLayer> layers;
  torch::nn::LayerNorm ln{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(ViT2D);

}  // namespace biud::models
