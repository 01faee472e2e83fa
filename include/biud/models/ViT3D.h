#pragma once
/// \file ViT3D.h
/// Vision transformer over 3D volumes (CT). Parameter names follow timm's ViT
/// (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.attn.qkv`, `norm`).
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/models/Encoder.h"
#include "biud/models/Layers.h"

namespace biud::models {

struct ViT3DOptions {
  std::int64_t in_channels = 1;
  std::vector<std::int64_t> image_size{32, 64, 64};  ///< D, H, W the learned position table is made for
  std::vector<std::int64_t> patch{8, 16, 16};        ///< D, H, W patch size
  std::int64_t dim = 64, depth = 2, heads = 4;
  double mlp_ratio = 4.0;
  double dropout = 0.0;
  std::string pos = "learned";  ///< learned | sincos
  std::string pool = "cls";     ///< cls | mean
  double token_dropout = 0.0;   ///< fraction of patch tokens dropped at random while training
  bool checkpointing = false;   ///< recompute block activations in backward
};

/// 3D ViT. Input [B, C, D, H, W] with each side a multiple of the patch; other sizes than
/// `image_size` get the learned position table trilinearly interpolated to their patch grid.
class ViT3DImpl : public VisualEncoderImpl {
 public:
  explicit ViT3DImpl(ViT3DOptions options = {});
  EncoderOutput encode(const torch::Tensor& x) override;
  torch::Tensor forward(const torch::Tensor& x) { return encode(x).pooled; }
  std::int64_t dim() const override { return opt.dim; }
  int spatialDims() const override { return 3; }
  /// Position embeddings [1, gd*gh*gw, D] for a patch grid (interpolated or computed).
  torch::Tensor positionEmbedding(const std::vector<std::int64_t>& grid) const;

  ViT3DOptions opt;
  torch::nn::Conv3d patch_proj{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  std::vector<TransformerBlock> block_list;
  torch::nn::LayerNorm norm{nullptr};
  std::vector<std::int64_t> grid;  ///< patch grid of image_size
};
TORCH_MODULE(ViT3D);

/// Fixed 3D sine-cosine position table [gd*gh*gw, dim]: a third of the channels (rounded down
/// to an even count) per axis, sin/cos of the integer grid coordinate; spare channels are zero.
torch::Tensor sincosPosition3d(const std::vector<std::int64_t>& grid, std::int64_t dim);

}  // namespace biud::models
