#pragma once
/// \file Layers.h
/// Pre-norm transformer pieces shared by the 3D ViT, the fusion encoder and the report decoder.
/// Parameter names follow timm (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`).
#include <torch/torch.h>

namespace biud::models {

/// Two-layer MLP with GELU (exact erf form, as timm/HF).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(std::int64_t dim, std::int64_t hidden, double dropout = 0.0);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  double dropout;
};
TORCH_MODULE(Mlp);

/// Multi-head self-attention with one fused qkv projection.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(std::int64_t dim, std::int64_t heads, double dropout = 0.0);
  /// x [B,L,D]; keyPadding [B,L] (1 = token) optional.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyPadding = {}, bool causal = false);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  std::int64_t heads;
  double dropout;
};
TORCH_MODULE(SelfAttention);

/// x + attn(norm1(x)); x + mlp(norm2(x)).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(std::int64_t dim, std::int64_t heads, double mlpRatio = 4.0, double dropout = 0.0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyPadding = {});
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

/// Parameters of a module as a vector (for checkpoint()).
std::vector<torch::Tensor> parameterList(const torch::nn::Module& m);

}  // namespace biud::models
