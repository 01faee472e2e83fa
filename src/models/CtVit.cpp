#include "biud/models/CtVit.h"

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

namespace {
// CT-CLIP nests modules in nn.Sequential / nn.ModuleList: holder modules give the index names.
std::shared_ptr<torch::nn::Module> holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}
torch::nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}
}  // namespace

CtVitLayerNormImpl::CtVitLayerNormImpl(std::int64_t dim) {
  gamma = register_parameter("gamma", torch::ones({dim}));
  beta = register_buffer("beta", torch::zeros({dim}));
}

torch::Tensor CtVitLayerNormImpl::forward(const torch::Tensor& x) {
  return F::layer_norm(x, F::LayerNormFuncOptions({x.size(-1)}).weight(gamma).bias(beta).eps(1e-5));
}

CtVitPegImpl::CtVitPegImpl(std::int64_t dim, bool causal_) : causal(causal_) {
  dsconv = register_module("dsconv", torch::nn::Conv3d(torch::nn::Conv3dOptions(dim, dim, 3).groups(dim)));
}

torch::Tensor CtVitPegImpl::forward(const torch::Tensor& x, const std::vector<std::int64_t>& shape) {
  BIUD_CHECK(shape.size() == 4, ValueError, "ctvit: PEG needs the (b, t, h, w) video shape");
  const auto orig = x.sizes().vec();
  auto y = x.reshape({shape[0], shape[1], shape[2], shape[3], -1}).permute({0, 4, 1, 2, 3});
  // (w: 1, 1), (h: 1, 1), (t: 2, 0 causal or 1, 1).
  y = F::pad(y, F::PadFuncOptions({1, 1, 1, 1, causal ? 2 : 1, causal ? 0 : 1}));
  y = dsconv->forward(y).permute({0, 2, 3, 4, 1});
  return y.reshape(orig);
}

CtVitAttentionImpl::CtVitAttentionImpl(std::int64_t dim, std::int64_t dimHead, std::int64_t heads_) : heads(heads_) {
  const auto inner = dimHead * heads;
  norm = register_module("norm", CtVitLayerNorm(dim));
  to_q = register_module("to_q", linear(dim, inner, false));
  to_kv = register_module("to_kv", linear(dim, inner * 2, false));
  q_scale = register_parameter("q_scale", torch::ones({dimHead}));
  k_scale = register_parameter("k_scale", torch::ones({dimHead}));
  to_out = register_module("to_out", linear(inner, dim, false));
}

torch::Tensor CtVitAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& bias) {
  const auto N = x.size(0), L = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.reshape({N, L, heads, -1}).transpose(1, 2); };
  // Keys and values come from x before the norm (CT-CLIP's attention.py: kv_input = x).
  auto q = split(to_q->forward(norm->forward(x)));
  auto kv = to_kv->forward(x).chunk(2, -1);
  auto k = split(kv[0]), v = split(kv[1]);
  const auto nopt = F::NormalizeFuncOptions().p(2).dim(-1);
  q = F::normalize(q, nopt) * q_scale;
  k = F::normalize(k, nopt) * k_scale;
  auto out = at::scaled_dot_product_attention(
      q, k, v, bias.defined() ? std::optional<at::Tensor>(bias.unsqueeze(0)) : std::nullopt, 0.0, false, scale);
  return to_out->forward(out.transpose(1, 2).reshape({N, L, -1}));
}

CtVitTransformerImpl::CtVitTransformerImpl(const CtVitOptions& o, std::int64_t depth) {
  auto list = holder(*this, "layers");
  const auto inner = static_cast<std::int64_t>(o.ff_mult * (2.0 / 3.0) * static_cast<double>(o.dim));
  for (std::int64_t i = 0; i < depth; ++i) {
    auto l = holder(*list, std::to_string(i));
    Layer layer;
    layer.peg = l->register_module("0", CtVitPeg(o.dim, /*causal=*/true));
    layer.attn = l->register_module("1", CtVitAttention(o.dim, o.dim_head, o.heads));
    auto ff = holder(*l, "3");
    layer.ff_norm = ff->register_module("0", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    layer.ff_in = ff->register_module("1", linear(o.dim, inner * 2, false));
    layer.ff_out = ff->register_module("4", linear(inner, o.dim, false));
    layers.push_back(layer);
  }
  norm_out = register_module("norm_out", CtVitLayerNorm(o.dim));
}

torch::Tensor CtVitTransformerImpl::forward(torch::Tensor x, const std::vector<std::int64_t>& videoShape,
                                            const torch::Tensor& bias) {
  for (auto& l : layers) {
    x = l.peg->forward(x, videoShape) + x;
    x = l.attn->forward(x, bias) + x;
    auto h = l.ff_in->forward(l.ff_norm->forward(x)).chunk(2, -1);
    x = l.ff_out->forward(h[0] * torch::gelu(h[1])) + x;
  }
  return norm_out->forward(x);
}

CtVitPositionBiasImpl::CtVitPositionBiasImpl(std::int64_t dim, std::int64_t heads) {
  auto net = holder(*this, "net");
  l0 = holder(*net, "0")->register_module("0", linear(2, dim, true));
  l1 = holder(*net, "1")->register_module("0", linear(dim, dim, true));
  l2 = net->register_module("2", linear(dim, heads, true));
}

torch::Tensor CtVitPositionBiasImpl::forward(std::int64_t h, std::int64_t w) {
  const auto opts = l0->weight.options();
  auto grid = torch::stack(torch::meshgrid({torch::arange(h, opts), torch::arange(w, opts)}, "ij"));  // [2, h, w]
  grid = grid.reshape({2, -1}).t();                                                                   // [hw, 2]
  auto rel = grid.unsqueeze(1) - grid.unsqueeze(0);                                                   // [hw, hw, 2]
  rel = torch::sign(rel) * torch::log(rel.abs() + 1);
  const auto leaky = F::LeakyReLUFuncOptions().negative_slope(0.1);
  auto y = F::leaky_relu(l0->forward(rel), leaky);
  y = F::leaky_relu(l1->forward(y), leaky);
  return l2->forward(y).permute({2, 0, 1});
}

CtVitImpl::CtVitImpl(CtVitOptions o) : opt(o) {
  BIUD_CHECK(opt.image_size % opt.patch_size == 0, ConfigError,
             "ctvit: image_size {} is not a multiple of patch_size {}", opt.image_size, opt.patch_size);
  BIUD_CHECK(opt.dim > 0 && opt.heads > 0 && opt.dim_head > 0 && opt.temporal_patch_size > 0 && opt.codebook_size > 0,
             ConfigError, "ctvit: dim, heads, dim_head, temporal_patch_size and codebook_size must be positive");
  spatial_rel_pos_bias = register_module("spatial_rel_pos_bias", CtVitPositionBias(opt.dim, opt.heads));
  const auto patchDim = opt.channels * opt.patch_size * opt.patch_size * opt.temporal_patch_size;
  auto emb = holder(*this, "to_patch_emb");
  patch_norm_in = emb->register_module("1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({patchDim})));
  patch_proj = emb->register_module("2", linear(patchDim, opt.dim, true));
  patch_norm_out = emb->register_module("3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.dim})));
  enc_spatial_transformer = register_module("enc_spatial_transformer", CtVitTransformer(opt, opt.spatial_depth));
  enc_temporal_transformer = register_module("enc_temporal_transformer", CtVitTransformer(opt, opt.temporal_depth));
  auto vq = holder(*this, "vq");
  codebook = holder(*vq, "_codebook")
                 ->register_buffer("embed", F::normalize(torch::randn({1, opt.codebook_size, opt.dim}),
                                                         F::NormalizeFuncOptions().p(2).dim(-1)));
}

torch::Tensor CtVitImpl::encode(const torch::Tensor& video) {
  BIUD_CHECK(video.dim() == 5, ValueError, "ctvit: the input must be [B, C, T, H, W], got {}",
             tensor::shapeStr(video.sizes()));
  const auto B = video.size(0), C = video.size(1), T = video.size(2);
  const auto p = opt.patch_size, pt = opt.temporal_patch_size;
  BIUD_CHECK(
      C == opt.channels && video.size(3) == opt.image_size && video.size(4) == opt.image_size && T % pt == 0 && T > 0,
      ValueError,
      "ctvit: input {} does not fit the model: it needs [B, {}, T, {}, {}] with T a multiple of {} (the volume "
      "size of the run's data.ct.size must be what the CT-CLIP weights were trained on)",
      tensor::shapeStr(video.sizes()), opt.channels, opt.image_size, opt.image_size, pt);
  const auto t = T / pt, h = opt.image_size / p, w = opt.image_size / p;
  // 'b c (t pt) (h p1) (w p2) -> b t h w (c pt p1 p2)'
  auto x = video.reshape({B, C, t, pt, h, p, w, p}).permute({0, 2, 4, 6, 1, 3, 5, 7}).reshape({B, t, h, w, -1});
  x = patch_norm_out->forward(patch_proj->forward(patch_norm_in->forward(x)));
  const std::vector<std::int64_t> shape{B, t, h, w};
  const auto d = opt.dim;
  // Spatial: the h*w tokens of each frame, with the position bias.
  x = enc_spatial_transformer->forward(x.reshape({B * t, h * w, d}), shape, spatial_rel_pos_bias->forward(h, w));
  // Temporal: the t tokens of each (h, w).
  x = x.reshape({B, t, h, w, d}).permute({0, 2, 3, 1, 4}).reshape({B * h * w, t, d});
  x = enc_temporal_transformer->forward(x, shape);
  return x.reshape({B, h, w, t, d}).permute({0, 3, 1, 2, 4}).contiguous();
}

torch::Tensor CtVitImpl::quantize(const torch::Tensor& tokens) const {
  const auto nopt = F::NormalizeFuncOptions().p(2).dim(-1);
  const auto embed = codebook.select(0, 0);  // [codes, dim]
  const auto embedN = F::normalize(embed, nopt);
  auto flat = F::normalize(tokens.reshape({-1, tokens.size(-1)}).to(torch::kFloat32), nopt);
  std::vector<torch::Tensor> idx;
  constexpr std::int64_t kChunk = 4096;  // [chunk, codes] similarities at a time
  for (std::int64_t s = 0; s < flat.size(0); s += kChunk)
    idx.push_back(torch::matmul(flat.slice(0, s, std::min(flat.size(0), s + kChunk)), embedN.t()).argmax(-1));
  return embed.index_select(0, torch::cat(idx)).reshape(tokens.sizes());
}

torch::Tensor CtVitImpl::forward(const torch::Tensor& video) { return quantize(encode(video)); }

}  // namespace biud::models
