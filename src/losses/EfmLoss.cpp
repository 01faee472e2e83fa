#include "biud/losses/EfmLoss.h"

#include <ATen/CPUGeneratorImpl.h>

#include "Detail.h"
#include "biud/core/Error.h"

namespace biud::losses {

using detail::shapeOf;

EfmMaskOptions EfmMaskOptions::from(const EfmConfig& cfg, int64_t vocabSize, int64_t maskId) {
  EfmMaskOptions o;
  o.vocab_size = vocabSize;
  o.mask_id = maskId;
  o.p_entity = cfg.p_entity;
  o.p_other = cfg.p_other;
  o.mask_frac = cfg.mask_token_frac;
  o.random_frac = cfg.random_token_frac;
  return o;
}

namespace {

torch::Tensor maskOrDefault(const torch::Tensor& m, const torch::Tensor& ids, bool fill, const char* name) {
  if (!m.defined()) return torch::full(ids.sizes(), fill, torch::TensorOptions().dtype(torch::kBool));
  BIUD_CHECK(m.sizes() == ids.sizes(), ValueError, "efmMask: `{}` has shape {}, expected {} like input_ids", name,
             shapeOf(m), shapeOf(ids));
  return m.to(torch::kCPU).ne(0);
}

}  // namespace

EfmMasked efmMask(const torch::Tensor& inputIds, const torch::Tensor& attentionMask, const torch::Tensor& entityMask,
                  const torch::Tensor& specialMask, const EfmMaskOptions& opt, torch::Generator gen) {
  BIUD_CHECK(inputIds.defined() && inputIds.dim() == 2, ValueError, "efmMask: input_ids has shape {}, expected [B, L]",
             shapeOf(inputIds));
  BIUD_CHECK(!inputIds.is_floating_point() && inputIds.scalar_type() != torch::kBool, ValueError,
             "efmMask: input_ids must be an integer tensor");
  BIUD_CHECK(opt.vocab_size > 0, ValueError, "efmMask: vocab_size {} must be > 0 (the tokenizer's vocabulary size)",
             opt.vocab_size);
  BIUD_CHECK(opt.mask_id >= 0 && opt.mask_id < opt.vocab_size, ValueError,
             "efmMask: mask id {} is outside the vocabulary [0, {}); the tokenizer has no [MASK] token?", opt.mask_id,
             opt.vocab_size);
  BIUD_CHECK(opt.p_entity >= 0 && opt.p_entity <= 1 && opt.p_other >= 0 && opt.p_other <= 1, ConfigError,
             "efmMask: p_entity {} and p_other {} must lie in [0, 1] (loss.efm)", opt.p_entity, opt.p_other);
  BIUD_CHECK(opt.mask_frac >= 0 && opt.random_frac >= 0 && opt.mask_frac + opt.random_frac <= 1 + 1e-12, ConfigError,
             "efmMask: mask_token_frac {} + random_token_frac {} must lie in [0, 1] (loss.efm)", opt.mask_frac,
             opt.random_frac);
  BIUD_CHECK(opt.random_min_id >= 0 && opt.random_min_id < opt.vocab_size, ValueError,
             "efmMask: random_min_id {} is outside the vocabulary [0, {})", opt.random_min_id, opt.vocab_size);
  BIUD_CHECK(gen.defined() && gen.device().is_cpu(), ValueError, "efmMask: need a CPU torch::Generator");

  const auto ids = inputIds.to(torch::kCPU).to(torch::kLong);
  const auto valid = maskOrDefault(attentionMask, ids, true, "attention_mask");
  const auto entity = maskOrDefault(entityMask, ids, false, "entity_mask");
  const auto special = maskOrDefault(specialMask, ids, false, "special_mask");
  const auto eligible = valid.logical_and(special.logical_not());

  const auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  // Each sampler locks the generator itself; the documented order makes the result reproducible.
  const auto u = torch::rand(ids.sizes(), gen, dbl);
  const auto v = torch::rand(ids.sizes(), gen, dbl);
  const auto rnd =
      torch::randint(opt.random_min_id, opt.vocab_size, ids.sizes(), gen, torch::TensorOptions().dtype(torch::kLong));
  const auto p = torch::where(entity, torch::scalar_tensor(opt.p_entity, dbl), torch::scalar_tensor(opt.p_other, dbl));
  const auto selected = u.lt(p).logical_and(eligible);
  const auto toMask = selected.logical_and(v.lt(opt.mask_frac));
  const auto toRandom = selected.logical_and(v.ge(opt.mask_frac)).logical_and(v.lt(opt.mask_frac + opt.random_frac));

  auto out = ids.masked_fill(toMask, opt.mask_id);
  out = torch::where(toRandom, rnd, out);
  const auto labels = ids.masked_fill(selected.logical_not(), kIgnoreLabel);
  const auto dev = inputIds.device();
  return {out.to(dev), labels.to(dev), selected.to(dev)};
}

EfmMasked efmMask(const torch::Tensor& inputIds, const torch::Tensor& attentionMask, const torch::Tensor& entityMask,
                  const torch::Tensor& specialMask, const EfmMaskOptions& opt, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return efmMask(inputIds, attentionMask, entityMask, specialMask, opt, gen);
}

LossOutput efmLoss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& entityMask) {
  detail::NoAutocast noAutocast;
  const char* fn = "efmLoss";
  BIUD_CHECK(labels.defined() && labels.dim() == 2 && !labels.is_floating_point(), ValueError,
             "{}: labels has shape {}, expected integer [B, L]", fn, shapeOf(labels));
  BIUD_CHECK(logits.defined() && logits.is_floating_point() && (logits.dim() == 3 || logits.dim() == 2), ValueError,
             "{}: logits has shape {}, expected [B, L, V] or [N, V]", fn, shapeOf(logits));
  const auto lab = labels.to(logits.device()).to(torch::kLong);
  const auto sel = lab.ne(kIgnoreLabel);
  torch::Tensor ent;
  if (entityMask.defined()) {
    BIUD_CHECK(entityMask.sizes() == labels.sizes(), ValueError, "{}: entity_mask {} and labels {} differ in shape", fn,
               shapeOf(entityMask), shapeOf(labels));
    ent = entityMask.to(logits.device()).ne(0);
  } else {
    ent = torch::zeros_like(sel);
  }
  const auto x = detail::computeType(logits);
  const int64_t vocab = x.size(-1);

  torch::Tensor flatLogits, flatLabels, flatEntity;
  if (x.dim() == 3) {
    BIUD_CHECK(x.size(0) == lab.size(0) && x.size(1) == lab.size(1), ValueError,
               "{}: logits {} and labels {} disagree on [B, L]", fn, shapeOf(logits), shapeOf(labels));
    flatLogits = x.reshape({-1, vocab});
    flatLabels = lab.reshape({-1});
    flatEntity = ent.logical_and(sel).reshape({-1});
  } else {
    flatLabels = lab.masked_select(sel);
    flatEntity = ent.masked_select(sel);
    BIUD_CHECK(x.size(0) == flatLabels.size(0), ValueError,
               "{}: logits {} has {} rows but labels select {} positions; pass logits of exactly the masked positions",
               fn, shapeOf(logits), x.size(0), flatLabels.size(0));
    flatLogits = x;
  }
  const auto valid = flatLabels.ne(kIgnoreLabel);
  // Labels outside the vocabulary would index out of range in the kernel: report them instead.
  // (Cheap on small batches; one sync.)
  const auto bad = valid.logical_and(flatLabels.lt(0).logical_or(flatLabels.ge(vocab)));
  BIUD_CHECK(!bad.any().item<bool>(), ValueError,
             "{}: a label lies outside the vocabulary [0, {}); check the tokenizer and the MLM head size", fn, vocab);

  const auto ce = torch::nn::functional::cross_entropy(
      flatLogits, flatLabels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel).reduction(torch::kSum));
  const auto nMasked = valid.sum();
  LossOutput out;
  out.total = ce / nMasked.clamp_min(1).to(ce.scalar_type());

  const auto correct = flatLogits.detach().argmax(-1).eq(flatLabels).logical_and(valid);
  const auto isEnt = flatEntity.logical_and(valid), isOther = valid.logical_and(flatEntity.logical_not());
  auto acc = [](const torch::Tensor& c, const torch::Tensor& m) {
    return scalarOf(c.logical_and(m).sum().to(torch::kDouble) / m.sum().clamp_min(1).to(torch::kDouble));
  };
  out.metrics["acc"] = acc(correct, valid);
  out.metrics["acc_entity"] = acc(correct, isEnt);
  out.metrics["acc_other"] = acc(correct, isOther);
  out.metrics["n_masked"] = scalarOf(nMasked.to(torch::kDouble));
  out.metrics["n_masked_entity"] = scalarOf(isEnt.sum().to(torch::kDouble));
  out.metrics["n_masked_other"] = scalarOf(isOther.sum().to(torch::kDouble));
  return out;
}

}  // namespace biud::losses
