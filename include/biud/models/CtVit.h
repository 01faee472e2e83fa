#pragma once
/// \file CtVit.h
/// CT-CLIP's image encoder, CTViT (ibrahimethemhamamci/CT-CLIP, transformer_maskgit/ctvit.py and
/// attention.py at commit a2a155c), as CT-CLIP's zero-shot model runs it: the encoder half and
/// the vector quantiser, parameter names as in CT-CLIP's state dict under `visual_transformer.`.
///
///   video [B, C, T, H, W] (CT-CLIP's layout [slice k, row i, column j])
///   -> patches (pt x p x p) -> LayerNorm -> Linear -> LayerNorm          `to_patch_emb.{1,2,3}`
///   -> spatial transformer over the h x w tokens of each frame, with a continuous position bias
///      (an MLP of the log-spaced 2-D offsets, `spatial_rel_pos_bias.net.*`)
///   -> temporal transformer over the t tokens of each (h, w) position
///   -> cosine-similarity codebook: each token replaced by its nearest code (`vq._codebook.embed`)
///   = tokens [B, t, h, w, dim]
///
/// Each transformer layer: x += PEG(x) (a depthwise 3x3x3 conv over the whole (t, h, w) grid,
/// padded causally in time); x += Attention(x); x += FeedForward(x); then a LayerNorm at the end.
/// Attention: queries from LayerNorm(x) but keys/values from x itself (CT-CLIP's code), q and k
/// L2-normalised and multiplied by learned per-channel scales, logits x 8 (+ the position bias in
/// the spatial transformer), no masks. FeedForward: LayerNorm -> Linear (no bias) -> GEGLU
/// (x * gelu(gate)) -> Linear (no bias), inner width int(mult * 2/3 * dim). The temporal PEG
/// reinterprets the (b h w, t) token order as (b, t, h, w) with a reshape, as the original does.
#include <vector>

#include <torch/torch.h>

namespace biud::models {

struct CtVitOptions {
  std::int64_t dim = 512, codebook_size = 8192, image_size = 480, patch_size = 20, temporal_patch_size = 10,
               spatial_depth = 4, temporal_depth = 4, dim_head = 32, heads = 8, channels = 1;
  double ff_mult = 4.0;
  /// The released CT-CLIP zero-shot model (scripts/run_zero_shot.py).
  static CtVitOptions released() { return {}; }
  /// h = w = image_size / patch_size.
  std::int64_t patchGrid() const { return image_size / patch_size; }
};

/// LayerNorm with a learned gain `gamma` and a bias buffer `beta` (attention.py's LayerNorm).
class CtVitLayerNormImpl : public torch::nn::Module {
 public:
  explicit CtVitLayerNormImpl(std::int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor gamma, beta;
};
TORCH_MODULE(CtVitLayerNorm);

/// Position-generating depthwise conv (`dsconv`) over the (t, h, w) token grid.
class CtVitPegImpl : public torch::nn::Module {
 public:
  CtVitPegImpl(std::int64_t dim, bool causal);
  /// x [N, L, dim] reshaped to `shape` = (b, t, h, w) (+ dim) and back.
  torch::Tensor forward(const torch::Tensor& x, const std::vector<std::int64_t>& shape);
  torch::nn::Conv3d dsconv{nullptr};
  bool causal;
};
TORCH_MODULE(CtVitPeg);

class CtVitAttentionImpl : public torch::nn::Module {
 public:
  CtVitAttentionImpl(std::int64_t dim, std::int64_t dimHead, std::int64_t heads);
  /// x [N, L, dim]; bias [heads, L, L] or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias = {});
  CtVitLayerNorm norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_kv{nullptr}, to_out{nullptr};
  torch::Tensor q_scale, k_scale;
  std::int64_t heads;
  double scale = 8.0;
};
TORCH_MODULE(CtVitAttention);

/// One transformer: `layers.N.0` PEG, `layers.N.1` attention, `layers.N.3.{0,1,4}` feed-forward,
/// `norm_out`.
class CtVitTransformerImpl : public torch::nn::Module {
 public:
  CtVitTransformerImpl(const CtVitOptions& o, std::int64_t depth);
  torch::Tensor forward(torch::Tensor x, const std::vector<std::int64_t>& videoShape, const torch::Tensor& bias = {});

  struct Layer {
    CtVitPeg peg{nullptr};
    CtVitAttention attn{nullptr};
    torch::nn::LayerNorm ff_norm{nullptr};
    torch::nn::Linear ff_in{nullptr}, ff_out{nullptr};
  };
  std::vector<Layer> layers;
  CtVitLayerNorm norm_out{nullptr};
};
TORCH_MODULE(CtVitTransformer);

/// Continuous position bias: MLP (2 -> dim -> dim -> heads, LeakyReLU 0.1) of the signed
/// log(1 + |offset|) between the (row, column) positions of two tokens of a frame.
class CtVitPositionBiasImpl : public torch::nn::Module {
 public:
  CtVitPositionBiasImpl(std::int64_t dim, std::int64_t heads);
  /// [heads, h*w, h*w].
  torch::Tensor forward(std::int64_t h, std::int64_t w);
  torch::nn::Linear l0{nullptr}, l1{nullptr}, l2{nullptr};
};
TORCH_MODULE(CtVitPositionBias);

class CtVitImpl : public torch::nn::Module {
 public:
  explicit CtVitImpl(CtVitOptions options = {});
  /// video [B, C, T, H, W] with H = W = image_size, T a multiple of temporal_patch_size ->
  /// quantised tokens [B, T / pt, h, w, dim] (CTViT(video, return_encoded_tokens=True)).
  torch::Tensor forward(const torch::Tensor& video);
  /// The tokens before quantisation (the encoder's output).
  torch::Tensor encode(const torch::Tensor& video);
  /// Nearest code (cosine similarity; the first of equal ones) of each token [..., dim].
  torch::Tensor quantize(const torch::Tensor& tokens) const;

  CtVitOptions opt;
  CtVitPositionBias spatial_rel_pos_bias{nullptr};
  torch::nn::LayerNorm patch_norm_in{nullptr}, patch_norm_out{nullptr};
  torch::nn::Linear patch_proj{nullptr};
  CtVitTransformer enc_spatial_transformer{nullptr}, enc_temporal_transformer{nullptr};
  torch::Tensor codebook;  ///< `vq._codebook.embed` [1, codebook_size, dim]
};
TORCH_MODULE(CtVit);

}  // namespace biud::models
