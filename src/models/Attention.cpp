#include "biud/models/Attention.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& keyPadding, bool causal, double dropout) {
  std::optional<torch::Tensor> mask;
  const auto Lq = q.size(2), Lk = k.size(2);
  if (keyPadding.defined()) {
    BIUD_CHECK(keyPadding.dim() == 2 && keyPadding.size(0) == q.size(0) && keyPadding.size(1) == Lk, ValueError,
               "attention: key padding mask must be [B={}, Lk={}], got {}", q.size(0), Lk,
               tensor::shapeStr(keyPadding.sizes()));
    // Boolean mask: true = may attend. Broadcast over heads and queries.
    mask = keyPadding.to(torch::kBool).view({q.size(0), 1, 1, Lk});
  }
  if (causal && (mask || Lq != Lk)) {
    // is_causal in SDPA aligns to the top-left; with a cache the queries are the last Lq keys.
    auto c = torch::ones({Lq, Lk}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).tril(Lk - Lq);
    mask = mask ? (*mask & c.view({1, 1, Lq, Lk})) : c.view({1, 1, Lq, Lk});
    causal = false;
  }
  return at::scaled_dot_product_attention(q, k, v, mask, dropout, causal);
}

torch::Tensor splitHeads(const torch::Tensor& x, std::int64_t heads) {
  const auto B = x.size(0), L = x.size(1), D = x.size(2);
  BIUD_CHECK(D % heads == 0, ValueError, "attention: width {} is not divisible by {} heads", D, heads);
  return x.view({B, L, heads, D / heads}).transpose(1, 2);
}

torch::Tensor mergeHeads(const torch::Tensor& x) {
  const auto B = x.size(0), H = x.size(1), L = x.size(2), Dh = x.size(3);
  return x.transpose(1, 2).reshape({B, L, H * Dh});
}

namespace {

struct FnHolder : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> fn;
  at::Tensor rngState;  // CPU generator state before the forward
};

struct Checkpoint : torch::autograd::Function<Checkpoint> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, c10::IValue holder, torch::Tensor x,
                               at::TensorList params) {
    auto h = c10::static_intrusive_pointer_cast<FnHolder>(holder.toCapsule());
    ctx->saved_data["fn"] = holder;
    ctx->save_for_backward({x});
    ctx->saved_data["n"] = static_cast<std::int64_t>(params.size());
    std::vector<torch::Tensor> ps(params.begin(), params.end());
    ctx->saved_data["params"] = c10::List<torch::Tensor>(ps);
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      h->rngState = gen.get_state();
    }
    torch::NoGradGuard ng;
    return h->fn(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOut) {
    auto h = c10::static_intrusive_pointer_cast<FnHolder>(ctx->saved_data["fn"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto plist = ctx->saved_data["params"].toTensorList();
    std::vector<torch::Tensor> params(plist.begin(), plist.end());
    torch::Tensor y;
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      at::Tensor now;
      {
        std::lock_guard<std::mutex> lock(gen.mutex());
        now = gen.get_state();
        gen.set_state(h->rngState);
      }
      torch::AutoGradMode on(true);
      y = h->fn(x);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(now);
    }
    std::vector<torch::Tensor> inputs{x};
    std::vector<std::size_t> idx;  // which params need a gradient
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].requires_grad()) {
        inputs.push_back(params[i]);
        idx.push_back(i);
      }
    auto grads = torch::autograd::grad({y}, inputs, {gradOut[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
    torch::autograd::variable_list out(2 + params.size());
    out[1] = grads[0];
    for (std::size_t j = 0; j < idx.size(); ++j) out[2 + idx[j]] = grads[1 + j];
    return out;
  }
};

}  // namespace

torch::Tensor checkpoint(const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& x,
                         const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(x);
  auto h = c10::make_intrusive<FnHolder>();
  h->fn = fn;
  return Checkpoint::apply(c10::IValue::make_capsule(h), x, at::TensorList(params));
}

}  // namespace biud::models
