#include "biud/models/Bert.h"

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"
#include "biud/models/Attention.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

namespace {
torch::Tensor drop(const torch::Tensor& x, double p, bool training) {
  return (p > 0 && training) ? F::dropout(x, F::DropoutFuncOptions().p(p).training(true)) : x;
}
// HF nests Linear + LayerNorm under `output` / `attention.output`: a holder module gives the names.
std::shared_ptr<torch::nn::Module> holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}
}  // namespace

torch::Tensor activation(const torch::Tensor& x, const std::string& name) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  if (name == "silu" || name == "swish") return torch::silu(x);
  BIUD_THROW(ConfigError, "bert: hidden_act `{}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu)",
             name);
}

BertOptions BertOptions::fromJsonFile(const std::string& path) {
  const nlohmann::json j = fs::readJsonFile(path, "BERT model config");
  const auto type = j.value("model_type", std::string("bert"));
  BIUD_CHECK(type != "roberta" && type != "xlm-roberta", ConfigError,
             "{}: model_type `{}`: RoBERTa position ids start at pad+1 and are not supported yet", path, type);
  BIUD_CHECK(type == "bert" || type == "bert-generation", ConfigError,
             "{}: model_type `{}` is not a BERT model (biud loads BERT-layout checkpoints)", path, type);
  BertOptions o;
  try {
    o.vocab_size = j.value("vocab_size", o.vocab_size);
    o.hidden_size = j.value("hidden_size", o.hidden_size);
    o.num_hidden_layers = j.value("num_hidden_layers", o.num_hidden_layers);
    o.num_attention_heads = j.value("num_attention_heads", o.num_attention_heads);
    o.intermediate_size = j.value("intermediate_size", o.intermediate_size);
    o.max_position_embeddings = j.value("max_position_embeddings", o.max_position_embeddings);
    o.type_vocab_size = j.value("type_vocab_size", o.type_vocab_size);
    if (j.contains("pad_token_id") && j["pad_token_id"].is_number()) o.pad_token_id = j["pad_token_id"];
    o.layer_norm_eps = j.value("layer_norm_eps", o.layer_norm_eps);
    o.hidden_dropout_prob = j.value("hidden_dropout_prob", o.hidden_dropout_prob);
    o.attention_probs_dropout_prob = j.value("attention_probs_dropout_prob", o.attention_probs_dropout_prob);
    o.hidden_act = j.value("hidden_act", o.hidden_act);
    const auto pe = j.value("position_embedding_type", std::string("absolute"));
    BIUD_CHECK(pe == "absolute", ConfigError, "{}: position_embedding_type `{}` is not supported (absolute only)", path,
               pe);
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(IoError, "{}: a BERT config value has the wrong type ({})", path, e.what());
  }
  activation(torch::zeros({1}), o.hidden_act);  // validate early
  return o;
}

BertOptions BertOptions::preset(const std::string& name) {
  BertOptions o;
  if (name == "base") return o;
  if (name == "tiny") {
    o.hidden_size = 64, o.num_hidden_layers = 2, o.num_attention_heads = 4, o.intermediate_size = 256;
  } else if (name == "small") {
    o.hidden_size = 384, o.num_hidden_layers = 6, o.num_attention_heads = 12, o.intermediate_size = 1536;
  } else if (name == "large") {
    o.hidden_size = 1024, o.num_hidden_layers = 24, o.num_attention_heads = 16, o.intermediate_size = 4096;
  } else {
    BIUD_THROW(ConfigError, "bert: unknown preset `{}` (tiny, small, base, large)", name);
  }
  return o;
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertOptions& o) : dropout(o.hidden_dropout_prob) {
  word_embeddings = register_module("word_embeddings",
                                    torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab_size, o.hidden_size)));
  position_embeddings =
      register_module("position_embeddings", torch::nn::Embedding(o.max_position_embeddings, o.hidden_size));
  token_type_embeddings = register_module(
      "token_type_embeddings", torch::nn::Embedding(std::max<std::int64_t>(1, o.type_vocab_size), o.hidden_size));
  LayerNorm = register_module("LayerNorm",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size}).eps(o.layer_norm_eps)));
  for (auto& p : parameters())
    if (p.dim() == 2) torch::nn::init::normal_(p, 0.0, 0.02);
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& ids, const torch::Tensor& tokenTypes,
                                          std::int64_t offset) {
  const auto L = ids.size(1);
  BIUD_CHECK(offset + L <= position_embeddings->weight.size(0), ValueError,
             "bert: sequence of {} tokens is longer than max_position_embeddings {} (truncate the text)", offset + L,
             position_embeddings->weight.size(0));
  auto pos = torch::arange(offset, offset + L, ids.options().dtype(torch::kLong)).unsqueeze(0);
  auto tt = tokenTypes.defined() ? tokenTypes : torch::zeros_like(ids);
  auto e = word_embeddings->forward(ids) + token_type_embeddings->forward(tt) + position_embeddings->forward(pos);
  return drop(LayerNorm->forward(e), dropout, is_training());
}

BertAttentionImpl::BertAttentionImpl(const BertOptions& o, std::int64_t kvDim)
    : heads(o.num_attention_heads), attnDropout(o.attention_probs_dropout_prob), hiddenDropout(o.hidden_dropout_prob) {
  const auto D = o.hidden_size;
  BIUD_CHECK(D % heads == 0, ConfigError, "bert: hidden_size {} not divisible by {} heads", D, heads);
  auto self = holder(*this, "self");
  query = self->register_module("query", torch::nn::Linear(D, D));
  key = self->register_module("key", torch::nn::Linear(kvDim, D));
  value = self->register_module("value", torch::nn::Linear(kvDim, D));
  auto out = holder(*this, "output");
  out_dense = out->register_module("dense", torch::nn::Linear(D, D));
  out_ln =
      out->register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(o.layer_norm_eps)));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& keyPadding,
                                         const torch::Tensor& memory) {
  const auto& kv = memory.defined() ? memory : x;
  auto o = attention(splitHeads(query->forward(x), heads), splitHeads(key->forward(kv), heads),
                     splitHeads(value->forward(kv), heads), keyPadding, false, is_training() ? attnDropout : 0.0);
  auto h = drop(out_dense->forward(mergeHeads(o)), hiddenDropout, is_training());
  return out_ln->forward(h + x);
}

BertLayerImpl::BertLayerImpl(const BertOptions& o) : act(o.hidden_act), dropout(o.hidden_dropout_prob) {
  attention = register_module("attention", BertAttention(o, o.hidden_size));
  if (o.add_cross_attention)
    crossattention = register_module(
        "crossattention", BertAttention(o, o.cross_attention_dim > 0 ? o.cross_attention_dim : o.hidden_size));
  intermediate =
      holder(*this, "intermediate")->register_module("dense", torch::nn::Linear(o.hidden_size, o.intermediate_size));
  auto out = holder(*this, "output");
  output = out->register_module("dense", torch::nn::Linear(o.intermediate_size, o.hidden_size));
  output_ln = out->register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size}).eps(o.layer_norm_eps)));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& memory,
                                     const torch::Tensor& memoryMask) {
  auto h = attention->forward(x, mask);
  if (crossattention) {
    BIUD_CHECK(memory.defined(), ValueError, "bert: a layer with cross-attention needs the memory sequence");
    h = crossattention->forward(h, memoryMask, memory);
  }
  auto m = drop(output->forward(activation(intermediate->forward(h), act)), dropout, is_training());
  return output_ln->forward(m + h);
}

BertModelImpl::BertModelImpl(BertOptions o) : opt(std::move(o)) {
  BIUD_CHECK(opt.pool == "cls" || opt.pool == "mean" || opt.pool == "pooler", ConfigError,
             "bert: pool `{}` (use cls, mean or pooler)", opt.pool);
  BIUD_CHECK(opt.pool != "pooler" || opt.add_pooler, ConfigError, "bert: pool `pooler` needs add_pooler");
  embeddings = register_module("embeddings", BertEmbeddings(opt));
  auto enc = holder(*this, "encoder");
  auto layer = enc->register_module("layer", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < opt.num_hidden_layers; ++i) {
    layers.emplace_back(opt);
    layer->push_back(layers.back());
  }
  if (opt.add_pooler)
    pooler = holder(*this, "pooler")->register_module("dense", torch::nn::Linear(opt.hidden_size, opt.hidden_size));
}

TextOutput BertModelImpl::encode(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& tokenTypes) {
  BIUD_CHECK(ids.dim() == 2, ValueError, "bert: token ids must be [B, L], got {}", tensor::shapeStr(ids.sizes()));
  BIUD_CHECK(!mask.defined() || mask.sizes() == ids.sizes(), ValueError,
             "bert: attention mask {} does not match the ids {}", tensor::shapeStr(mask.sizes()),
             tensor::shapeStr(ids.sizes()));
  auto h = embeddings->forward(ids, tokenTypes);
  for (auto& l : layers) h = l->forward(h, mask);
  TextOutput out;
  out.hidden = h;
  if (opt.pool == "mean")
    out.pooled = mask.defined() ? maskedMean(h, mask) : h.mean(1);
  else if (opt.pool == "pooler")
    out.pooled = torch::tanh(pooler->forward(h.select(1, 0)));
  else
    out.pooled = h.select(1, 0);
  return out;
}

torch::Tensor maskedMean(const torch::Tensor& hidden, const torch::Tensor& mask) {
  auto m = mask.to(hidden.scalar_type()).unsqueeze(-1);
  return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
}

}  // namespace biud::models
