#include "biud/models/SyncBatchNorm.h"

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace {

/// Per-channel view shape [1, C, 1, ...] for an input of `dim` dimensions.
std::vector<std::int64_t> channelShape(std::int64_t c, std::int64_t dim) {
  std::vector<std::int64_t> s(static_cast<std::size_t>(dim), 1);
  s[1] = c;
  return s;
}

/// Per-channel count, mean and centred sum of squares (M2) of a float CPU tensor laid out as
/// `rows` x `c` (channels-last: channel fastest) or `planes` x `len` with plane p in channel p % c
/// (contiguous NC...): one read pass. Sums of x - pivot (the channel's first value) in float over
/// blocks of at most 1024 values, then in double: no E[x^2] - E[x]^2 cancellation.
/// torch::var_mean's generic reduction over dims {0, 2, 3, 4} of a channels-last tensor is
/// ~4x slower than a pass over memory (Welford in double, not vectorised).
void localMomentsRows(const float* x, std::int64_t rows, std::int64_t c, double* mean, double* m2) {
  constexpr std::int64_t kBlock = 1024;
  std::vector<float> pivot(x, x + c);
  const std::int64_t nBlocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> s1(static_cast<std::size_t>(nBlocks * c)), s2(s1.size());
  at::parallel_for(0, nBlocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> a1(static_cast<std::size_t>(c)), a2(static_cast<std::size_t>(c));
    for (std::int64_t b = b0; b < b1; ++b) {
      std::fill(a1.begin(), a1.end(), 0.f);
      std::fill(a2.begin(), a2.end(), 0.f);
      const std::int64_t r1 = std::min(rows, (b + 1) * kBlock);
      for (std::int64_t r = b * kBlock; r < r1; ++r) {
        const float* row = x + r * c;
        for (std::int64_t k = 0; k < c; ++k) {
          const float d = row[k] - pivot[static_cast<std::size_t>(k)];
          a1[static_cast<std::size_t>(k)] += d;
          a2[static_cast<std::size_t>(k)] += d * d;
        }
      }
      for (std::int64_t k = 0; k < c; ++k) {
        s1[static_cast<std::size_t>(b * c + k)] = a1[static_cast<std::size_t>(k)];
        s2[static_cast<std::size_t>(b * c + k)] = a2[static_cast<std::size_t>(k)];
      }
    }
  });
  const double n = static_cast<double>(rows);
  for (std::int64_t k = 0; k < c; ++k) {
    double t1 = 0, t2 = 0;
    for (std::int64_t b = 0; b < nBlocks; ++b) {
      t1 += s1[static_cast<std::size_t>(b * c + k)];
      t2 += s2[static_cast<std::size_t>(b * c + k)];
    }
    mean[k] = pivot[static_cast<std::size_t>(k)] + t1 / n;
    m2[k] = std::max(0.0, t2 - t1 * t1 / n);
  }
}

void localMomentsPlanes(const float* x, std::int64_t planes, std::int64_t len, std::int64_t c, double* mean,
                        double* m2) {
  constexpr std::int64_t kBlock = 1024;
  std::vector<double> s1(static_cast<std::size_t>(planes)), s2(s1.size());
  at::parallel_for(0, planes, 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const float* v = x + p * len;
      const float pivot = x[(p % c) * len];  // the channel's first value (plane p % c)
      double t1 = 0, t2 = 0;
      for (std::int64_t i0 = 0; i0 < len; i0 += kBlock) {
        float a1 = 0, a2 = 0;
        const std::int64_t i1 = std::min(len, i0 + kBlock);
        for (std::int64_t i = i0; i < i1; ++i) {
          const float d = v[i] - pivot;
          a1 += d;
          a2 += d * d;
        }
        t1 += a1;
        t2 += a2;
      }
      s1[static_cast<std::size_t>(p)] = t1;
      s2[static_cast<std::size_t>(p)] = t2;
    }
  });
  const double n = static_cast<double>(planes / c * len);
  for (std::int64_t k = 0; k < c; ++k) {
    double t1 = 0, t2 = 0;
    for (std::int64_t p = k; p < planes; p += c) {
      t1 += s1[static_cast<std::size_t>(p)];
      t2 += s2[static_cast<std::size_t>(p)];
    }
    const double pivot = x[k * len];
    mean[k] = pivot + t1 / n;
    m2[k] = std::max(0.0, t2 - t1 * t1 / n);
  }
}

/// Per-channel (mean, M2) in double of x (dim 1 = channels), n = numel / C > 0.
std::pair<torch::Tensor, torch::Tensor> localMoments(const torch::Tensor& x, std::int64_t c) {
  const auto n = x.numel() / c;
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() >= 3) {
    const auto fmt = x.dim() == 5 ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::ChannelsLast;
    const bool rowsLayout = (x.dim() == 4 || x.dim() == 5) && x.is_contiguous(fmt);
    if (rowsLayout || x.is_contiguous()) {
      auto mean = torch::empty({c}, torch::kDouble), m2 = torch::empty({c}, torch::kDouble);
      if (rowsLayout)
        localMomentsRows(x.data_ptr<float>(), n, c, mean.data_ptr<double>(), m2.data_ptr<double>());
      else
        localMomentsPlanes(x.data_ptr<float>(), x.size(0) * c, n / x.size(0), c, mean.data_ptr<double>(),
                           m2.data_ptr<double>());
      return {mean, m2};
    }
  }
  std::vector<std::int64_t> dims{0};
  for (std::int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  const bool wide = x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble;
  auto [v, m] = torch::var_mean(wide ? x : x.to(torch::kFloat), dims, /*correction=*/0, /*keepdim=*/false);
  return {m.to(torch::kDouble), v.to(torch::kDouble) * static_cast<double>(n)};
}

/// y = batch_norm(x) with given (global) statistics; backward sums dy and dy * x_hat over the
/// ranks. Forward and the local reductions are torch's own eval-mode kernels (channels-last
/// aware); only the input gradient is assembled here.
struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                               const torch::Tensor& var, double eps, double count, BatchNormGroup* group) {
    ctx->save_for_backward({x, weight, mean, var});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["count"] = count;
    ctx->saved_data["group"] = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(group));
    return at::batch_norm(x, weight, bias, mean, var, /*training=*/false, 0.0, eps, /*cudnn_enabled=*/true);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &mean = saved[2], &var = saved[3];
    const double eps = ctx->saved_data["eps"].toDouble(), count = ctx->saved_data["count"].toDouble();
    auto* group = reinterpret_cast<BatchNormGroup*>(static_cast<std::intptr_t>(ctx->saved_data["group"].toInt()));
    auto dy = grads[0];
    // Every rank must join the collective below, so an undefined gradient counts as zeros.
    if (!dy.defined()) dy = torch::zeros_like(x);
    const std::int64_t c = x.size(1);
    const auto w = weight.defined() ? weight : torch::ones({c}, mean.options());
    // Local sum(dy * x_hat) and sum(dy) per channel (x_hat with the global statistics): eval-mode
    // backward computes exactly these as the weight and bias gradients.
    auto [unused, sumDyXhat, sumDy] =
        at::native_batch_norm_backward(dy, x, w, mean, var, {}, {}, /*train=*/false, eps, {false, true, true});
    auto sums = torch::cat({sumDy, sumDyXhat}).to(torch::kDouble);
    group->allreduceSum(sums);
    const auto invstd = (var.to(torch::kDouble) + eps).rsqrt();
    const auto wd = w.to(torch::kDouble), md = mean.to(torch::kDouble);
    const auto a = sums.narrow(0, 0, c) / count, b = sums.narrow(0, c, c) / count;
    // dx = w * invstd * (dy - a - x_hat * b), x_hat = (x - mean) * invstd, written per channel as
    // dy * k1 + x * k2 + k3.
    const auto shape = channelShape(c, x.dim());
    const auto k1 = (wd * invstd).to(mean.scalar_type()).view(shape);
    const auto k2 = (-wd * invstd * invstd * b).to(mean.scalar_type()).view(shape);
    const auto k3 = (wd * invstd * (md * invstd * b - a)).to(mean.scalar_type()).view(shape);
    auto dx = at::addcmul(k3, x, k2);
    dx.addcmul_(dy, k1);
    if (dx.scalar_type() != x.scalar_type()) dx = dx.to(x.scalar_type());
    return {dx,
            weight.defined() ? sumDyXhat : torch::Tensor(),
            weight.defined() ? sumDy : torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor syncBatchNormTrain(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                 torch::Tensor runningMean, torch::Tensor runningVar, double momentum, double eps,
                                 BatchNormGroup& group) {
  BIUD_CHECK(x.dim() >= 2, ValueError, "SyncBatchNorm: input {} has no channel dimension", tensor::shapeStr(x.sizes()));
  const std::int64_t c = x.size(1), n = c > 0 ? x.numel() / c : 0;
  torch::Tensor local;
  {
    torch::NoGradGuard noGrad;
    torch::Tensor mean = torch::zeros({c}, x.options().dtype(torch::kDouble)), m2 = torch::zeros_like(mean);
    if (n > 0) std::tie(mean, m2) = localMoments(x.detach(), c);  // a rank without rows joins with count 0
    local = torch::cat({torch::full({1}, static_cast<double>(n), mean.options()), mean, m2}).view({1, 2 * c + 1});
  }
  const auto all = group.allGather(local);  // [world, 1 + 2C]
  torch::Tensor mean, var;
  double total = 0;
  {
    torch::NoGradGuard noGrad;
    const auto counts = all.narrow(1, 0, 1), means = all.narrow(1, 1, c), m2s = all.narrow(1, 1 + c, c);
    total = counts.sum().item<double>();
    BIUD_CHECK(total > 1, ValueError,
               "SyncBatchNorm: expected more than 1 value per channel over all ranks when training, got input {} "
               "on this rank and {} values in all",
               tensor::shapeStr(x.sizes()), total);
    mean = (counts * means).sum(0) / total;
    const auto m2 = m2s.sum(0) + (counts * (means - mean).square()).sum(0);
    var = m2 / total;
    if (runningMean.defined()) runningMean.mul_(1 - momentum).add_(mean.to(runningMean.scalar_type()), momentum);
    if (runningVar.defined())
      runningVar.mul_(1 - momentum).add_((m2 / (total - 1)).to(runningVar.scalar_type()), momentum);
  }
  const auto statType = weight.defined() ? weight.scalar_type() : torch::kFloat;
  return SyncBatchNormFunction::apply(x, weight, bias, mean.to(statType), var.to(statType), eps, total, &group);
}

template <std::size_t D>
torch::Tensor SyncBatchNormImpl<D>::forward(const torch::Tensor& x) {
  // Only a training forward is a collective: evaluation may run on some ranks only (a norm
  // without running statistics then uses this rank's batch, as torch's does).
  if (!synced() || !this->is_training()) return Base::forward(x);
  _check_input_dim(x);
  // The momentum rule of torch's BatchNorm (BatchNormImplBase::forward).
  double factor = this->options.momentum().value_or(0.0);
  if (this->options.track_running_stats() && this->num_batches_tracked.defined()) {
    this->num_batches_tracked += 1;
    if (!this->options.momentum()) factor = 1.0 / this->num_batches_tracked.template item<double>();
  }
  const bool track = this->options.track_running_stats();
  return syncBatchNormTrain(x, this->weight, this->bias, track ? this->running_mean : torch::Tensor(),
                            track ? this->running_var : torch::Tensor(), factor, this->options.eps(), *group_);
}

template <std::size_t D>
void SyncBatchNormImpl<D>::_check_input_dim(const torch::Tensor& x) {
  BIUD_CHECK(x.dim() == static_cast<std::int64_t>(D) + 2, ValueError, "BatchNorm{}d: expected a {}D input, got {}", D,
             D + 2, tensor::shapeStr(x.sizes()));
}

template class SyncBatchNormImpl<2>;
template class SyncBatchNormImpl<3>;

int setBatchNormGroup(torch::nn::Module& root, const std::shared_ptr<BatchNormGroup>& group) {
  int n = 0;
  for (const auto& m : root.modules(/*include_self=*/true)) {
    if (auto* s = dynamic_cast<SyncableNorm*>(m.get())) {
      s->setGroup(group);
      ++n;
    }
  }
  return n;
}

}  // namespace biud::models
