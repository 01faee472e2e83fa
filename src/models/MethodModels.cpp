#include "biud/models/MethodModels.h"

#include "biud/core/Error.h"
#include "biud/models/Registry.h"

namespace biud::models {

namespace {

NetConfig withVocab(NetConfig c, std::int64_t vocab) {
  if (c.vocab_size == 0) c.vocab_size = static_cast<int>(vocab);
  return c;
}

torch::Tensor normalize(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

}  // namespace

ClipModelImpl::ClipModelImpl(const Config& cfg, const NetConfig& imageNet, std::int64_t vocabSize) {
  image_encoder = register_module("image_encoder", models::makeVisualEncoder(imageNet));
  channels_ = imageNet.in_channels > 0 ? imageNet.in_channels : (image_encoder->spatialDims() == 2 ? 3 : 1);
  text_encoder = register_module("text_encoder", models::makeTextEncoder(withVocab(cfg.model.text_encoder, vocabSize)));
  const std::int64_t d = cfg.model.embed_dim;
  image_proj = register_module("image_proj", models::ProjectionHead(image_encoder->dim(), d, 0, /*normalize=*/true));
  text_proj = register_module("text_proj", models::ProjectionHead(text_encoder->opt.hidden_size, d, 0, true));
  const auto& r = cfg.loss.roco;
  temperature = register_module("temperature", models::Temperature(r.temperature_init, r.temperature_min,
                                                                   r.temperature_max, r.learn_temperature));
}

torch::Tensor ClipModelImpl::encodeImage(const torch::Tensor& images) {
  torch::Tensor x = images;
  if (x.size(1) == 1 && channels_ > 1) x = x.expand({x.size(0), channels_, x.size(2), x.size(3)});
  return image_proj->forward(image_encoder->encode(x).pooled);
}

torch::Tensor ClipModelImpl::encodeText(const torch::Tensor& ids, const torch::Tensor& mask) {
  return text_proj->forward(text_encoder->encode(ids, mask).pooled);
}

BiudModelImpl::BiudModelImpl(const Config& cfg, std::int64_t vocabSize, std::int64_t teacherDim) {
  ct_encoder = register_module("ct_encoder", models::makeVisualEncoder(cfg.model.ct_encoder));
  BIUD_CHECK(ct_encoder->spatialDims() == 3, ConfigError,
             "model.ct_encoder.arch `{}` is a 2D encoder; BIUD needs a 3D one (vit3d, resnet3d18, resnet3d50)",
             cfg.model.ct_encoder.arch);
  text_encoder = register_module("text_encoder", models::makeTextEncoder(withVocab(cfg.model.text_encoder, vocabSize)));
  const std::int64_t d = cfg.model.embed_dim;
  ct_proj = register_module("ct_proj", models::ProjectionHead(ct_encoder->dim(), d, 0, true));
  text_proj = register_module("text_proj", models::ProjectionHead(text_encoder->opt.hidden_size, d, 0, true));
  adapter = register_module("adapter", models::DistillAdapter(d, teacherDim, cfg.model.adapter_bias));
  if (cfg.loss.efm.weight > 0)
    fusion = register_module("fusion", models::makeFusionEncoder(cfg.model.fusion, text_encoder, ct_encoder->dim()));
  const auto& r = cfg.loss.roco;
  temperature = register_module("temperature", models::Temperature(r.temperature_init, r.temperature_min,
                                                                   r.temperature_max, r.learn_temperature));
}

BiudModelImpl::Output BiudModelImpl::encodeCt(const torch::Tensor& volume) {
  auto enc = ct_encoder->encode(volume);
  Output o;
  o.ct = ct_proj->forward(enc.pooled);
  o.adapted = normalize(adapter->forward(o.ct));
  o.tokens = enc.tokens;
  return o;
}

torch::Tensor BiudModelImpl::encodeText(const torch::Tensor& ids, const torch::Tensor& mask) {
  return text_proj->forward(text_encoder->encode(ids, mask).pooled);
}

torch::Tensor BiudModelImpl::efmLogits(const torch::Tensor& maskedIds, const torch::Tensor& mask,
                                       const torch::Tensor& ctTokens, const torch::Tensor& selected) {
  BIUD_CHECK(!fusion.is_empty(), ValueError, "EFM is off (loss.efm.weight = 0): no fusion encoder");
  BIUD_CHECK(selected.sizes() == maskedIds.sizes(), ValueError, "efmLogits: selected {} vs ids {}",
             tensor::shapeStr(selected.sizes()), tensor::shapeStr(maskedIds.sizes()));
  // Cut the padding columns every report has (right padding: the longest report sets the width).
  const auto width = std::max<std::int64_t>(1, mask.sum(1).max().item<std::int64_t>());
  using torch::indexing::Slice;
  const auto cols = Slice(0, width);
  const auto m = mask.index({Slice(), cols});
  auto hidden = text_encoder->encode(maskedIds.index({Slice(), cols}), m).hidden;
  auto fused = fusion->forward(hidden, m, ctTokens, {});
  return fusion->mlmLogits(fused.index({selected.index({Slice(), cols})}));
}

FinetuneModelImpl::FinetuneModelImpl(std::shared_ptr<models::VisualEncoderImpl> enc, std::int64_t labels,
                                     double dropout)
    : p_(dropout) {
  ct_encoder = register_module("ct_encoder", std::move(enc));
  head = register_module("head", torch::nn::Linear(ct_encoder->dim(), labels));
  torch::nn::init::normal_(head->weight, 0.0, 0.01);
  torch::nn::init::zeros_(head->bias);
}

torch::Tensor FinetuneModelImpl::features(const torch::Tensor& volume) { return ct_encoder->encode(volume).pooled; }

torch::Tensor FinetuneModelImpl::classify(const torch::Tensor& feats) {
  namespace F = torch::nn::functional;
  auto x = (p_ > 0 && is_training()) ? F::dropout(feats, F::DropoutFuncOptions().p(p_).training(true)) : feats;
  return head->forward(x);
}

Config x2ctModelConfig(const Config& cfg) {
  Config c = cfg;
  const auto& t = cfg.loss.trimodal;
  c.loss.roco.temperature_init = t.temperature_init;
  c.loss.roco.temperature_min = t.temperature_min;
  c.loss.roco.temperature_max = t.temperature_max;
  c.loss.roco.learn_temperature = cfg.x2ct.learn_temperature;
  return c;
}

}  // namespace biud::models
