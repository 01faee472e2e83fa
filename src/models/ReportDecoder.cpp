#include "biud/models/ReportDecoder.h"

#include <algorithm>
#include <cmath>

#include "biud/core/Error.h"
#include "biud/models/Attention.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace F = torch::nn::functional;

void KVCache::select(const torch::Tensor& index) {
  for (auto* vec : {&k, &v, &mk, &mv})
    for (auto& t : *vec)
      if (t.defined()) t = t.index_select(0, index);
  if (memoryMask.defined()) memoryMask = memoryMask.index_select(0, index);
}

DecoderLayerImpl::DecoderLayerImpl(const ReportDecoderOptions& o) : heads(o.heads), dropout(o.dropout) {
  const auto D = o.dim;
  auto ln = [&](const char* n) {
    return register_module(n, torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(1e-6)));
  };
  norm1 = ln("norm1");
  qkv = register_module("qkv", torch::nn::Linear(D, 3 * D));
  proj = register_module("proj", torch::nn::Linear(D, D));
  norm2 = ln("norm2");
  cross_q = register_module("cross_q", torch::nn::Linear(D, D));
  cross_kv = register_module("cross_kv", torch::nn::Linear(D, 2 * D));
  cross_proj = register_module("cross_proj", torch::nn::Linear(D, D));
  norm3 = ln("norm3");
  mlp = register_module("mlp", Mlp(D, static_cast<std::int64_t>(D * o.mlp_ratio), o.dropout));
}

std::pair<torch::Tensor, torch::Tensor> DecoderLayerImpl::memoryKV(const torch::Tensor& memory) {
  auto kv = cross_kv->forward(memory).chunk(2, -1);
  return {splitHeads(kv[0], heads), splitHeads(kv[1], heads)};
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mk, const torch::Tensor& mv,
                                        const torch::Tensor& memoryMask, torch::Tensor* kc, torch::Tensor* vc,
                                        const torch::Tensor& padMask) {
  const double p = is_training() ? dropout : 0.0;
  const auto B = x.size(0), T = x.size(1), D = x.size(2);
  auto parts = qkv->forward(norm1->forward(x)).view({B, T, 3, heads, D / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
  auto q = parts[0], k = parts[1], v = parts[2];
  if (kc) {
    if (kc->defined()) {
      k = torch::cat({*kc, k}, 2);
      v = torch::cat({*vc, v}, 2);
    }
    *kc = k;
    *vc = v;
  }
  auto h = x + proj->forward(mergeHeads(attention(q, k, v, padMask, /*causal=*/true, p)));
  auto cq = splitHeads(cross_q->forward(norm2->forward(h)), heads);
  h = h + cross_proj->forward(mergeHeads(attention(cq, mk, mv, memoryMask, false, p)));
  return h + mlp->forward(norm3->forward(h));
}

ReportDecoderImpl::ReportDecoderImpl(ReportDecoderOptions o) : opt(std::move(o)) {
  BIUD_CHECK(opt.dim % opt.heads == 0, ConfigError, "report_decoder: dim {} not divisible by heads {}", opt.dim,
             opt.heads);
  for (auto id : {opt.bos_id, opt.eos_id, opt.pad_id})
    BIUD_CHECK(id >= 0 && id < opt.vocab_size, ConfigError,
               "report_decoder: special token id {} outside the vocabulary of {}", id, opt.vocab_size);
  token_embed = register_module("token_embed", torch::nn::Embedding(opt.vocab_size, opt.dim));
  torch::nn::init::normal_(token_embed->weight, 0.0, 0.02);
  pos_embed = register_parameter("pos_embed", torch::randn({opt.max_len, opt.dim}) * 0.02);
  if (opt.memory_dim > 0 && opt.memory_dim != opt.dim)
    memory_proj = register_module("memory_proj", torch::nn::Linear(opt.memory_dim, opt.dim));
  auto list = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < opt.depth; ++i) {
    layers.emplace_back(opt);
    list->push_back(layers.back());
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.dim}).eps(1e-6)));
  lm_bias = register_parameter("lm_bias", torch::zeros({opt.vocab_size}));
}

torch::Tensor ReportDecoderImpl::embed(const torch::Tensor& ids, std::int64_t offset) {
  const auto T = ids.size(1);
  BIUD_CHECK(offset + T <= opt.max_len, ValueError,
             "report_decoder: {} tokens exceed max_len {} (raise model.decoder max_len or generate fewer)", offset + T,
             opt.max_len);
  auto h = token_embed->forward(ids) + pos_embed.narrow(0, offset, T).unsqueeze(0);
  return (opt.dropout > 0 && is_training()) ? F::dropout(h, F::DropoutFuncOptions().p(opt.dropout).training(true)) : h;
}

torch::Tensor ReportDecoderImpl::logits(const torch::Tensor& h) {
  return F::linear(norm->forward(h), token_embed->weight, lm_bias);
}

torch::Tensor ReportDecoderImpl::projectMemory(const torch::Tensor& memory) {
  BIUD_CHECK(memory.dim() == 3, ValueError, "report_decoder: memory must be [B,N,D], got {}",
             tensor::shapeStr(memory.sizes()));
  auto m = memory_proj ? memory_proj->forward(memory) : memory;
  BIUD_CHECK(m.size(2) == opt.dim, ValueError, "report_decoder: memory is {} wide, the decoder {} (set memory_dim)",
             memory.size(2), opt.dim);
  return m;
}

torch::Tensor ReportDecoderImpl::forward(const torch::Tensor& ids, const torch::Tensor& memory,
                                         const torch::Tensor& memoryMask, const torch::Tensor& idsMask) {
  BIUD_CHECK(ids.dim() == 2 && ids.size(0) == memory.size(0), ValueError,
             "report_decoder: ids must be [B,T] with the memory's B, got {} and {}", tensor::shapeStr(ids.sizes()),
             tensor::shapeStr(memory.sizes()));
  auto mem = projectMemory(memory);
  auto h = embed(ids, 0);
  for (auto& l : layers) {
    auto [mk, mv] = l->memoryKV(mem);
    h = l->forward(h, mk, mv, memoryMask, nullptr, nullptr, idsMask);
  }
  return logits(h);
}

KVCache ReportDecoderImpl::startCache(const torch::Tensor& memory, const torch::Tensor& memoryMask) {
  KVCache c;
  auto mem = projectMemory(memory);
  for (auto& l : layers) {
    auto [mk, mv] = l->memoryKV(mem);
    c.mk.push_back(mk);
    c.mv.push_back(mv);
    c.k.emplace_back();
    c.v.emplace_back();
  }
  c.memoryMask = memoryMask;
  return c;
}

torch::Tensor ReportDecoderImpl::step(const torch::Tensor& ids, KVCache& c) {
  auto h = embed(ids, c.length);
  for (std::size_t i = 0; i < layers.size(); ++i)
    h = layers[i]->forward(h, c.mk[i], c.mv[i], c.memoryMask, &c.k[i], &c.v[i]);
  c.length += ids.size(1);
  return logits(h);
}

Generated ReportDecoderImpl::greedy(const torch::Tensor& memory, const torch::Tensor& memoryMask, std::int64_t maxLen) {
  torch::NoGradGuard ng;
  if (maxLen <= 0) maxLen = opt.max_len - 1;
  maxLen = std::min(maxLen, opt.max_len - 1);
  const auto B = memory.size(0);
  auto cache = startCache(memory, memoryMask);
  auto cur = torch::full({B, 1}, opt.bos_id, torch::TensorOptions().dtype(torch::kLong).device(memory.device()));
  Generated g;
  g.tokens.resize(static_cast<std::size_t>(B));
  g.scores.assign(static_cast<std::size_t>(B), 0.0);
  std::vector<bool> done(static_cast<std::size_t>(B), false);
  for (std::int64_t t = 0; t < maxLen; ++t) {
    auto lp = torch::log_softmax(step(cur, cache).select(1, 0).to(torch::kFloat64), -1);
    auto [best, arg] = lp.max(-1);
    auto bestC = best.cpu(), argC = arg.cpu();
    bool all = true;
    for (std::int64_t b = 0; b < B; ++b) {
      if (done[static_cast<std::size_t>(b)]) continue;
      const auto tok = argC[b].item<std::int64_t>();
      g.tokens[static_cast<std::size_t>(b)].push_back(tok);
      g.scores[static_cast<std::size_t>(b)] += bestC[b].item<double>();
      if (tok == opt.eos_id) done[static_cast<std::size_t>(b)] = true;
      all = all && done[static_cast<std::size_t>(b)];
    }
    if (all) break;
    cur = arg.unsqueeze(1);
  }
  return g;
}

Generated ReportDecoderImpl::beamSearch(const torch::Tensor& memory, const torch::Tensor& memoryMask,
                                        std::int64_t beams, double lengthPenalty, std::int64_t maxLen) {
  BIUD_CHECK(beams >= 1, ConfigError, "report_decoder: beams must be >= 1, got {}", beams);
  torch::NoGradGuard ng;
  if (maxLen <= 0) maxLen = opt.max_len - 1;
  maxLen = std::min(maxLen, opt.max_len - 1);
  const auto B = memory.size(0);
  const auto dev = memory.device();
  Generated g;
  struct Hyp {
    std::vector<std::int64_t> toks;
    double logp;
  };
  auto norm = [&](const Hyp& h) { return h.logp / std::pow(static_cast<double>(h.toks.size()), lengthPenalty); };
  for (std::int64_t b = 0; b < B; ++b) {
    auto mem = memory.narrow(0, b, 1);
    auto mm = memoryMask.defined() ? memoryMask.narrow(0, b, 1) : torch::Tensor();
    auto cache = startCache(mem, mm);
    std::vector<Hyp> alive{{{}, 0.0}}, finished;
    auto cur = torch::full({1, 1}, opt.bos_id, torch::TensorOptions().dtype(torch::kLong).device(dev));
    for (std::int64_t t = 0; t < maxLen && !alive.empty(); ++t) {
      auto lp = torch::log_softmax(step(cur, cache).select(1, 0).to(torch::kFloat64), -1).cpu();  // [A,V]
      const auto A = static_cast<std::int64_t>(alive.size());
      auto base = torch::tensor(std::vector<double>([&] {
                                  std::vector<double> s;
                                  for (auto& h : alive) s.push_back(h.logp);
                                  return s;
                                }()),
                                torch::kFloat64)
                      .unsqueeze(1);
      auto total = (lp + base).view({-1});
      const auto k = std::min<std::int64_t>(2 * beams, total.numel());
      auto [vals, idx] = total.topk(k);
      std::vector<Hyp> next;
      std::vector<std::int64_t> parents, toks;
      for (std::int64_t i = 0; i < k && static_cast<std::int64_t>(next.size()) < beams; ++i) {
        const auto flat = idx[i].item<std::int64_t>();
        const auto parent = flat / opt.vocab_size, tok = flat % opt.vocab_size;
        Hyp h{alive[static_cast<std::size_t>(parent)].toks, vals[i].item<double>()};
        h.toks.push_back(tok);
        if (tok == opt.eos_id) {
          if (static_cast<std::int64_t>(finished.size()) < beams) finished.push_back(std::move(h));
        } else {
          next.push_back(std::move(h));
          parents.push_back(parent);
          toks.push_back(tok);
        }
      }
      (void)A;
      if (static_cast<std::int64_t>(finished.size()) >= beams || next.empty()) {
        alive.clear();
        break;
      }
      alive = std::move(next);
      cache.select(torch::tensor(parents, torch::kLong).to(dev));
      cur = torch::tensor(toks, torch::kLong).to(dev).unsqueeze(1);
    }
    for (auto& h : alive) finished.push_back(h);  // reached maxLen without EOS
    auto best = std::max_element(finished.begin(), finished.end(),
                                 [&](const Hyp& a, const Hyp& c) { return norm(a) < norm(c); });
    g.tokens.push_back(best->toks);
    g.scores.push_back(norm(*best));
  }
  return g;
}

}  // namespace biud::models
