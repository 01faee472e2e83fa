#include "biud/models/Fusion.h"

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

FusionEncoderImpl::FusionEncoderImpl(FusionOptions o, torch::nn::Embedding wordEmbeddings)
    : opt(std::move(o)), tied(std::move(wordEmbeddings)) {
  auto b = opt.bert;
  b.add_cross_attention = true;
  b.cross_attention_dim = b.hidden_size;
  const auto D = b.hidden_size;
  if (opt.ct_dim > 0 && opt.ct_dim != D) ct_proj = register_module("ct_proj", torch::nn::Linear(opt.ct_dim, D));
  auto layer = register_module("layer", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < b.num_hidden_layers; ++i) {
    layers.emplace_back(b);
    layer->push_back(layers.back());
  }
  auto cls = register_module("cls", std::make_shared<torch::nn::Module>());
  auto pred = cls->register_module("predictions", std::make_shared<torch::nn::Module>());
  auto tr = pred->register_module("transform", std::make_shared<torch::nn::Module>());
  transform = tr->register_module("dense", torch::nn::Linear(D, D));
  transform_ln =
      tr->register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(b.layer_norm_eps)));
  mlm_bias = pred->register_parameter("bias", torch::zeros({b.vocab_size}));
  if (tied) {
    BIUD_CHECK(tied->weight.size(0) == b.vocab_size && tied->weight.size(1) == D, ConfigError,
               "fusion: tied word embeddings are {} but the MLM head needs [{}, {}] (vocab, width)",
               tensor::shapeStr(tied->weight.sizes()), b.vocab_size, D);
  } else {
    auto dec = pred->register_module("decoder", std::make_shared<torch::nn::Module>());
    own_decoder = dec->register_parameter("weight", torch::randn({b.vocab_size, D}) * 0.02);
  }
}

torch::Tensor FusionEncoderImpl::forward(const torch::Tensor& text, const torch::Tensor& textMask,
                                         const torch::Tensor& ct, const torch::Tensor& ctMask) {
  BIUD_CHECK(text.dim() == 3 && ct.dim() == 3 && text.size(0) == ct.size(0), ValueError,
             "fusion: text must be [B,L,D] and CT tokens [B,N,Dc] with the same B, got {} and {}",
             tensor::shapeStr(text.sizes()), tensor::shapeStr(ct.sizes()));
  auto mem = ct_proj ? ct_proj->forward(ct) : ct;
  BIUD_CHECK(mem.size(2) == text.size(2), ValueError,
             "fusion: CT tokens are {} wide but the fusion layers {} (set ct_dim)", ct.size(2), text.size(2));
  auto h = text;
  for (auto& l : layers) h = l->forward(h, textMask, mem, ctMask);
  return h;
}

torch::Tensor FusionEncoderImpl::mlmLogits(const torch::Tensor& hidden) {
  auto h = transform_ln->forward(activation(transform->forward(hidden), opt.bert.hidden_act));
  return F::linear(h, tied ? tied->weight : own_decoder, mlm_bias);
}

}  // namespace biud::models
