#pragma once
/// \file Bert.h
/// BERT with Hugging Face's parameter names (`embeddings.word_embeddings`,
/// `encoder.layer.N.attention.self.query`, `encoder.layer.N.attention.output.LayerNorm`,
/// `encoder.layer.N.intermediate.dense`, `encoder.layer.N.output.dense`, `pooler.dense`), so HF
/// checkpoints (BERT, PubMedBERT, CXR-BERT, MiniLM) load directly. Layers may carry a
/// cross-attention block (`crossattention.*`, as HF's add_cross_attention), used by the fusion
/// encoder.
#include <string>

#include <torch/torch.h>

namespace biud::models {

struct BertOptions {
  std::int64_t vocab_size = 30522, hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12,
               intermediate_size = 3072, max_position_embeddings = 512, type_vocab_size = 2, pad_token_id = 0;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1, attention_probs_dropout_prob = 0.1;
  std::string hidden_act = "gelu";  ///< gelu (erf) | gelu_new / gelu_pytorch_tanh (tanh) | relu
  std::string pool = "cls";         ///< cls | mean (masked) | pooler (tanh(dense(CLS)), needs the pooler)
  bool add_pooler = true;
  bool add_cross_attention = false;
  std::int64_t cross_attention_dim = 0;  ///< width of the sequence cross-attended to (0 = hidden_size)

  /// Read an HF config.json (unknown keys are ignored; a non-BERT model_type is an error).
  static BertOptions fromJsonFile(const std::string& path);
  /// Preset: tiny (64 wide, 2 layers, 4 heads), small, base (BERT-base), large.
  static BertOptions preset(const std::string& name);
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertOptions& o);
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& tokenTypes = {}, std::int64_t offset = 0);
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  double dropout;
};
TORCH_MODULE(BertEmbeddings);

/// `attention.self` + `attention.output` of HF (q/k/v from the query side or a memory).
class BertAttentionImpl : public torch::nn::Module {
 public:
  BertAttentionImpl(const BertOptions& o, std::int64_t kvDim);
  /// x [B,L,D]; memory (for cross-attention) [B,M,kvDim] or undefined (self-attention);
  /// keyPadding [B, L or M] (1 = token).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyPadding, const torch::Tensor& memory = {});
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, out_dense{nullptr};
  torch::nn::LayerNorm out_ln{nullptr};
  std::int64_t heads;
  double attnDropout, hiddenDropout;
};
TORCH_MODULE(BertAttention);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& memory = {},
                        const torch::Tensor& memoryMask = {});
  BertAttention attention{nullptr}, crossattention{nullptr};
  torch::nn::Linear intermediate{nullptr}, output{nullptr};
  torch::nn::LayerNorm output_ln{nullptr};
  std::string act;
  double dropout;
};
TORCH_MODULE(BertLayer);

/// Output of the text encoder.
struct TextOutput {
  torch::Tensor hidden;  ///< last hidden states [B, L, D]
  torch::Tensor pooled;  ///< [B, D] per BertOptions::pool
};

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(BertOptions options = {});
  /// ids [B,L] int64; mask [B,L] (1 = token, 0 = padding; undefined = all tokens);
  /// tokenTypes [B,L] (undefined = zeros).
  TextOutput encode(const torch::Tensor& ids, const torch::Tensor& mask = {}, const torch::Tensor& tokenTypes = {});
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask = {}) { return encode(ids, mask).hidden; }
  std::int64_t dim() const { return opt.hidden_size; }

  BertOptions opt;
  BertEmbeddings embeddings{nullptr};
  std::vector<BertLayer> layers;
  torch::nn::Linear pooler{nullptr};
};
TORCH_MODULE(BertModel);

/// Mean of `hidden` [B,L,D] over positions where mask [B,L] is 1.
torch::Tensor maskedMean(const torch::Tensor& hidden, const torch::Tensor& mask);
/// Apply an HF activation by name.
torch::Tensor activation(const torch::Tensor& x, const std::string& name);

}  // namespace biud::models
