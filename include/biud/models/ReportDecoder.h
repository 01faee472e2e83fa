#pragma once
/// \file ReportDecoder.h
/// Report generator: a pre-norm transformer decoder (causal self-attention, cross-attention to
/// CT tokens, MLP) with a learned position table and an LM head tied to the token embedding.
/// Training uses teacher forcing (forward); generation uses a KV cache (greedy and beam search
/// with a length penalty).
#include <vector>

#include <torch/torch.h>

#include "biud/models/Layers.h"

namespace biud::models {

struct ReportDecoderOptions {
  std::int64_t vocab_size = 30522, dim = 512, depth = 6, heads = 8, max_len = 256;
  std::int64_t memory_dim = 0;  ///< width of the CT tokens (0 = dim; others get `memory_proj`)
  double mlp_ratio = 4.0, dropout = 0.0;
  std::int64_t bos_id = 101, eos_id = 102, pad_id = 0;  ///< BERT [CLS]/[SEP]/[PAD] by default
};

/// Per-layer keys/values of the tokens decoded so far, and of the memory (computed once).
struct KVCache {
  std::vector<torch::Tensor> k, v;    ///< self-attention [B,H,T,Dh]
  std::vector<torch::Tensor> mk, mv;  ///< cross-attention [B,H,N,Dh]
  torch::Tensor memoryMask;           ///< [B,N] or undefined
  std::int64_t length = 0;            ///< tokens in the cache
  /// Keep rows `index` (beam reordering).
  void select(const torch::Tensor& index);
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ReportDecoderOptions& o);
  /// x [B,T,D]; the layer's self-attention keys/values are appended to (k,v) when given.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mk, const torch::Tensor& mv,
                        const torch::Tensor& memoryMask, torch::Tensor* k, torch::Tensor* v,
                        const torch::Tensor& padMask = {});
  /// Memory keys/values for cross-attention.
  std::pair<torch::Tensor, torch::Tensor> memoryKV(const torch::Tensor& memory);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, cross_q{nullptr}, cross_kv{nullptr}, cross_proj{nullptr};
  Mlp mlp{nullptr};
  std::int64_t heads;
  double dropout;
};
TORCH_MODULE(DecoderLayer);

struct Generated {
  std::vector<std::vector<std::int64_t>> tokens;  ///< per sample, without BOS, with EOS if reached
  std::vector<double> scores;                     ///< summed log-probability (beam: length-normalised)
};

class ReportDecoderImpl : public torch::nn::Module {
 public:
  explicit ReportDecoderImpl(ReportDecoderOptions options = {});
  /// Teacher forcing: ids [B,T] (BOS first), memory [B,N,memory_dim] -> logits [B,T,V].
  /// `idsMask` [B,T] (1 = token) keeps padding out of the keys.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& memory, const torch::Tensor& memoryMask = {},
                        const torch::Tensor& idsMask = {});
  /// Start a cache for `memory` (projects it and computes the cross-attention keys/values).
  KVCache startCache(const torch::Tensor& memory, const torch::Tensor& memoryMask = {});
  /// Feed new tokens [B,t] after the cached ones; returns their logits [B,t,V].
  torch::Tensor step(const torch::Tensor& ids, KVCache& cache);
  Generated greedy(const torch::Tensor& memory, const torch::Tensor& memoryMask = {}, std::int64_t maxLen = 0);
  /// Beam search per sample: hypotheses are ranked by sum(log p) / length^lengthPenalty
  /// (length counts generated tokens incl. EOS); stops when `beams` hypotheses ended or at maxLen.
  Generated beamSearch(const torch::Tensor& memory, const torch::Tensor& memoryMask = {}, std::int64_t beams = 4,
                       double lengthPenalty = 1.0, std::int64_t maxLen = 0);

  ReportDecoderOptions opt;
  torch::nn::Embedding token_embed{nullptr};
  torch::Tensor pos_embed, lm_bias;
  torch::nn::Linear memory_proj{nullptr};
  std::vector<DecoderLayer> layers;
  torch::nn::LayerNorm norm{nullptr};

 private:
  torch::Tensor embed(const torch::Tensor& ids, std::int64_t offset);
  torch::Tensor logits(const torch::Tensor& h);
  torch::Tensor projectMemory(const torch::Tensor& memory);
};
TORCH_MODULE(ReportDecoder);

}  // namespace biud::models
