#pragma once
// Private helpers of the losses area: input checks with messages that name the argument, its
// shape and what was expected, and the float32-or-better compute type.
#include <string>

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::losses::detail {

inline std::string shapeOf(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

/// `t` must be defined, of rank `dim`, and floating point.
inline void checkFloat(const torch::Tensor& t, int64_t dim, const char* fn, const char* name) {
  BIUD_CHECK(t.defined(), ValueError, "{}: `{}` is undefined; pass a tensor of rank {}", fn, name, dim);
  BIUD_CHECK(t.dim() == dim, ValueError, "{}: `{}` has shape {}, expected rank {}", fn, name, shapeOf(t), dim);
  BIUD_CHECK(t.is_floating_point(), ValueError, "{}: `{}` must be floating point (got {})", fn, name,
             std::string(c10::toString(t.scalar_type())));
}

/// Logits and softmaxes are computed in float32 at least (half/bfloat16 features from autocast
/// would lose the small differences between 1/tau-scaled similarities).
inline torch::Tensor computeType(const torch::Tensor& t) {
  const auto st = t.scalar_type();
  return (st == torch::kDouble || st == torch::kFloat) ? t : t.to(torch::kFloat);
}

/// Scope in which autocast is off. Losses are called from a trainer's autocast region; there a
/// matmul would run in bfloat16/half and 1/tau-scaled similarities (tau = 0.01: logits up to
/// 100) would lose their small differences. Inputs are promoted by computeType() instead.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

/// L2-normalise rows (eps as torch.nn.functional.normalize).
inline torch::Tensor l2norm(const torch::Tensor& t) {
  return torch::nn::functional::normalize(computeType(t),
                                          torch::nn::functional::NormalizeFuncOptions().p(2).dim(-1).eps(1e-12));
}

}  // namespace biud::losses::detail
