#include "biud/models/Layers.h"

#include "biud/models/Attention.h"

namespace biud::models {

namespace F = torch::nn::functional;

MlpImpl::MlpImpl(std::int64_t dim, std::int64_t hidden, double dropout_) : dropout(dropout_) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = torch::gelu(fc1->forward(x));
  if (dropout > 0) h = F::dropout(h, F::DropoutFuncOptions().p(dropout).training(is_training()));
  return fc2->forward(h);
}

SelfAttentionImpl::SelfAttentionImpl(std::int64_t dim, std::int64_t heads_, double dropout_)
    : heads(heads_), dropout(dropout_) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& keyPadding, bool causal) {
  const auto B = x.size(0), L = x.size(1), D = x.size(2);
  // [B,L,3D] -> [3,B,H,L,Dh]: one permute instead of three head splits.
  auto parts = qkv->forward(x).view({B, L, 3, heads, D / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
  auto o = attention(parts[0], parts[1], parts[2], keyPadding, causal, is_training() ? dropout : 0.0);
  return proj->forward(mergeHeads(o));
}

TransformerBlockImpl::TransformerBlockImpl(std::int64_t dim, std::int64_t heads, double mlpRatio, double dropout) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  attn = register_module("attn", SelfAttention(dim, heads, dropout));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  mlp = register_module("mlp", Mlp(dim, static_cast<std::int64_t>(dim * mlpRatio), dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& keyPadding) {
  auto h = x + attn->forward(norm1->forward(x), keyPadding);
  return h + mlp->forward(norm2->forward(h));
}

std::vector<torch::Tensor> parameterList(const torch::nn::Module& m) { return m.parameters(true); }

}  // namespace biud::models
