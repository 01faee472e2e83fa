#include "biud/models/ViT2D.h"

#include "biud/core/Error.h"
#include "biud/models/Attention.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

ViT2DOptions vit2dPreset(const std::string& name) {
  ViT2DOptions o;
  if (name == "vit_b_16" || name == "vit_b16" || name == "base") return o;
  if (name == "vit_b_32") {
    o.patch = 32;
  } else if (name == "vit_l_16" || name == "large") {
    o.dim = 1024, o.depth = 24, o.heads = 16, o.mlp_dim = 4096;
  } else if (name == "tiny") {
    o.image_size = 64, o.dim = 64, o.depth = 2, o.heads = 4, o.mlp_dim = 256;
  } else if (name == "small") {
    o.dim = 384, o.depth = 12, o.heads = 6, o.mlp_dim = 1536;
  } else {
    BIUD_THROW(ConfigError, "vit2d: unknown preset `{}` (vit_b_16, vit_b_32, vit_l_16, tiny, small)", name);
  }
  return o;
}

PackedAttentionImpl::PackedAttentionImpl(std::int64_t dim, std::int64_t heads_) : heads(heads_) {
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj = register_module("out_proj", torch::nn::Linear(dim, dim));
  torch::nn::init::zeros_(out_proj->bias);
}

torch::Tensor PackedAttentionImpl::forward(const torch::Tensor& x) {
  const auto B = x.size(0), L = x.size(1), D = x.size(2);
  // in_proj rows are [q; k; v]: [B,L,3D] -> [3,B,H,L,Dh] in one permute.
  auto parts =
      F::linear(x, in_proj_weight, in_proj_bias).view({B, L, 3, heads, D / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
  auto o = attention(parts[0], parts[1], parts[2]);
  return out_proj->forward(mergeHeads(o));
}

ViTEncoderLayerImpl::ViTEncoderLayerImpl(const ViT2DOptions& o) : dropout(o.dropout) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim}).eps(1e-6)));
  self_attention = register_module("self_attention", PackedAttention(o.dim, o.heads));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim}).eps(1e-6)));
  // Indices 0 and 3 carry weights, as torchvision's MLPBlock (Linear, GELU, Dropout, Linear, Dropout).
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(o.dim, o.mlp_dim), torch::nn::GELU(),
                                                     torch::nn::Dropout(o.dropout), torch::nn::Linear(o.mlp_dim, o.dim),
                                                     torch::nn::Dropout(o.dropout)));
}

torch::Tensor ViTEncoderLayerImpl::forward(const torch::Tensor& x) {
  auto h = self_attention->forward(ln_1->forward(x));
  if (dropout > 0) h = F::dropout(h, F::DropoutFuncOptions().p(dropout).training(is_training()));
  h = h + x;
  return h + mlp->forward(ln_2->forward(h));
}

ViT2DImpl::ViT2DImpl(ViT2DOptions o) : opt(std::move(o)) {
  BIUD_CHECK(opt.image_size % opt.patch == 0, ConfigError, "vit2d: image_size {} is not a multiple of patch {}",
             opt.image_size, opt.patch);
  BIUD_CHECK(opt.dim % opt.heads == 0, ConfigError, "vit2d: dim {} not divisible by heads {}", opt.dim, opt.heads);
  conv_proj = register_module(
      "conv_proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(opt.in_channels, opt.dim, opt.patch).stride(opt.patch)));
  class_token = register_parameter("class_token", torch::zeros({1, 1, opt.dim}));
  const auto g = opt.image_size / opt.patch;
  auto enc = register_module("encoder", std::make_shared<torch::nn::Module>());
  pos_embedding = enc->register_parameter("pos_embedding", torch::randn({1, g * g + 1, opt.dim}) * 0.02);
  auto lay = enc->register_module("layers", std::make_shared<torch::nn::Module>());
  for (std::int64_t i = 0; i < opt.depth; ++i) {
    layers.emplace_back(opt);
    lay->register_module("encoder_layer_" + std::to_string(i), layers.back());
  }
  ln = enc->register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.dim}).eps(1e-6)));
  if (opt.num_classes > 0) {
    auto heads = register_module("heads", std::make_shared<torch::nn::Module>());
    head = heads->register_module("head", torch::nn::Linear(opt.dim, opt.num_classes));
  }
}

EncoderOutput ViT2DImpl::encode(const torch::Tensor& x) {
  BIUD_CHECK(x.dim() == 4 && x.size(1) == opt.in_channels, ValueError, "vit2d: input must be [B, {}, H, W], got {}",
             opt.in_channels, tensor::shapeStr(x.sizes()));
  BIUD_CHECK(x.size(2) % opt.patch == 0 && x.size(3) % opt.patch == 0, ValueError,
             "vit2d: image {}x{} is not a multiple of the patch {}", x.size(2), x.size(3), opt.patch);
  auto t = conv_proj->forward(x);
  const auto gh = t.size(2), gw = t.size(3), B = t.size(0);
  t = t.flatten(2).transpose(1, 2);
  t = torch::cat({class_token.expand({B, 1, opt.dim}), t}, 1);
  auto pos = pos_embedding;
  const auto g = opt.image_size / opt.patch;
  if (gh != g || gw != g) {
    auto grid = pos.narrow(1, 1, g * g).reshape({1, g, g, opt.dim}).permute({0, 3, 1, 2});
    grid = F::interpolate(
        grid,
        F::InterpolateFuncOptions().size(std::vector<std::int64_t>{gh, gw}).mode(torch::kBicubic).align_corners(true));
    pos = torch::cat({pos.narrow(1, 0, 1), grid.permute({0, 2, 3, 1}).reshape({1, gh * gw, opt.dim})}, 1);
  }
  t = t + pos;
  if (opt.dropout > 0) t = F::dropout(t, F::DropoutFuncOptions().p(opt.dropout).training(is_training()));
  for (auto& l : layers) t = l->forward(t);
  t = ln->forward(t);
  return {t.select(1, 0), t.narrow(1, 1, t.size(1) - 1)};
}

torch::Tensor ViT2DImpl::forward(const torch::Tensor& x) {
  auto p = encode(x).pooled;
  return head ? head->forward(p) : p;
}

}  // namespace biud::models
