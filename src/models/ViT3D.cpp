#include "biud/models/ViT3D.h"

#include <cmath>

#include "biud/core/Error.h"
#include "biud/models/Attention.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

namespace {
std::vector<std::int64_t> gridOf(const std::vector<std::int64_t>& size, const std::vector<std::int64_t>& patch,
                                 const char* what) {
  std::vector<std::int64_t> g(3);
  for (int i = 0; i < 3; ++i) {
    BIUD_CHECK(patch[i] > 0 && size[i] % patch[i] == 0, ValueError,
               "vit3d: {} side {} ({}) is not a multiple of the patch ({}); crop or pad the volume to a multiple", what,
               i, size[i], patch[i]);
    g[i] = size[i] / patch[i];
  }
  return g;
}
}  // namespace

torch::Tensor sincosPosition3d(const std::vector<std::int64_t>& grid, std::int64_t dim) {
  const std::int64_t per = (dim / 6) * 2;  // channels per axis (even)
  BIUD_CHECK(per >= 2, ValueError, "vit3d: sincos positions need dim >= 6, got {}", dim);
  auto out = torch::zeros({grid[0], grid[1], grid[2], dim});
  const auto half = per / 2;
  auto omega = torch::pow(10000.0, -torch::arange(half, torch::kFloat64) / static_cast<double>(half));
  for (int a = 0; a < 3; ++a) {
    auto pos = torch::arange(grid[a], torch::kFloat64);
    auto ang = torch::outer(pos, omega);                                   // [g, half]
    auto emb = torch::cat({ang.sin(), ang.cos()}, 1).to(torch::kFloat32);  // [g, per]
    std::vector<std::int64_t> shape{1, 1, 1, per};
    shape[a] = grid[a];
    out.narrow(3, a * per, per).copy_(emb.view(shape).expand({grid[0], grid[1], grid[2], per}));
  }
  return out.view({grid[0] * grid[1] * grid[2], dim});
}

ViT3DImpl::ViT3DImpl(ViT3DOptions o) : opt(std::move(o)) {
  BIUD_CHECK(opt.patch.size() == 3 && opt.image_size.size() == 3, ConfigError,
             "vit3d: patch and image_size need 3 values (D,H,W), got {} and {}", opt.patch.size(),
             opt.image_size.size());
  BIUD_CHECK(opt.pool == "cls" || opt.pool == "mean", ConfigError, "vit3d: pool `{}` (use cls or mean)", opt.pool);
  BIUD_CHECK(opt.pos == "learned" || opt.pos == "sincos", ConfigError, "vit3d: pos `{}` (use learned or sincos)",
             opt.pos);
  BIUD_CHECK(opt.dim % opt.heads == 0, ConfigError, "vit3d: dim {} is not divisible by heads {}", opt.dim, opt.heads);
  grid = gridOf(opt.image_size, opt.patch, "image_size");
  patch_proj = torch::nn::Conv3d(torch::nn::Conv3dOptions(opt.in_channels, opt.dim, opt.patch).stride(opt.patch));
  auto pe = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  pe->register_module("proj", patch_proj);
  if (opt.pool == "cls") cls_token = register_parameter("cls_token", torch::randn({1, 1, opt.dim}) * 0.02);
  if (opt.pos == "learned")
    pos_embed = register_parameter("pos_embed", torch::randn({1, grid[0] * grid[1] * grid[2], opt.dim}) * 0.02);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < opt.depth; ++i) {
    block_list.emplace_back(opt.dim, opt.heads, opt.mlp_ratio, opt.dropout);
    blocks->push_back(block_list.back());
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.dim}).eps(1e-6)));
}

torch::Tensor ViT3DImpl::positionEmbedding(const std::vector<std::int64_t>& g) const {
  if (opt.pos == "sincos") return sincosPosition3d(g, opt.dim).unsqueeze(0).to(patch_proj->weight.device());
  if (g == grid) return pos_embed;
  // [1, N, D] -> [1, D, gd, gh, gw] -> trilinear -> [1, N', D]
  auto t = pos_embed.view({1, grid[0], grid[1], grid[2], opt.dim}).permute({0, 4, 1, 2, 3});
  t = F::interpolate(t, F::InterpolateFuncOptions().size(g).mode(torch::kTrilinear).align_corners(false));
  return t.permute({0, 2, 3, 4, 1}).reshape({1, g[0] * g[1] * g[2], opt.dim});
}

EncoderOutput ViT3DImpl::encode(const torch::Tensor& x) {
  BIUD_CHECK(x.dim() == 5 && x.size(1) == opt.in_channels, ValueError, "vit3d: input must be [B, {}, D, H, W], got {}",
             opt.in_channels, tensor::shapeStr(x.sizes()));
  const auto g = gridOf({x.size(2), x.size(3), x.size(4)}, opt.patch, "input");
  auto t = patch_proj->forward(x).flatten(2).transpose(1, 2);  // [B, N, D]
  t = t + positionEmbedding(g);
  const auto B = t.size(0), N = t.size(1);
  if (is_training() && opt.token_dropout > 0) {
    // Keep a random subset of patch tokens per sample (same count for every sample).
    const auto keep = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(N * (1.0 - opt.token_dropout))));
    auto idx = std::get<1>(torch::rand({B, N}, t.options()).sort(1)).narrow(1, 0, keep);
    t = t.gather(1, idx.unsqueeze(-1).expand({B, keep, opt.dim}));
  }
  if (cls_token.defined()) t = torch::cat({cls_token.expand({B, 1, opt.dim}), t}, 1);
  for (auto& blk : block_list) {
    if (opt.checkpointing && is_training() && torch::GradMode::is_enabled()) {
      auto b = blk;
      t = checkpoint([b](const torch::Tensor& in) mutable { return b->forward(in); }, t, b->parameters());
    } else {
      t = blk->forward(t);
    }
  }
  t = norm->forward(t);
  EncoderOutput out;
  if (cls_token.defined()) {
    out.pooled = t.select(1, 0);
    out.tokens = t.narrow(1, 1, t.size(1) - 1);
  } else {
    out.tokens = t;
    out.pooled = t.mean(1);
  }
  if (opt.pool == "mean" && cls_token.defined()) out.pooled = out.tokens.mean(1);
  return out;
}

}  // namespace biud::models
