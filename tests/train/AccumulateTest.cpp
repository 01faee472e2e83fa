// Feature-cached accumulation gives the full-batch gradient of a contrastive loss, which plain
// per-micro-batch accumulation does not (the negatives differ).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/train/Accumulate.h"

using namespace biud;

namespace {

torch::Tensor infoNce(const torch::Tensor& a, const torch::Tensor& b) {
  auto an = torch::nn::functional::normalize(a, torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto bn = torch::nn::functional::normalize(b, torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto logits = torch::matmul(an, bn.t()) / 0.1;
  auto labels = torch::arange(a.size(0));
  return 0.5 * (torch::cross_entropy_loss(logits, labels) + torch::cross_entropy_loss(logits.t(), labels));
}

}  // namespace

TEST(Accumulate, FeatureCacheEqualsFullBatchGradient) {
  torch::manual_seed(0);
  torch::nn::Linear fa(8, 4), fb(5, 4);
  auto xa = torch::randn({12, 8}), xb = torch::randn({12, 5});
  auto grads = [&] {
    std::vector<torch::Tensor> g;
    for (auto* m : {fa.ptr().get(), fb.ptr().get()})
      for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    for (auto* m : {fa.ptr().get(), fb.ptr().get()})
      for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
    return g;
  };
  // Reference: one full batch.
  infoNce(fa(xa), fb(xb)).backward();
  const auto ref = grads();

  const int micro = 4;
  auto forward = [&](int m) {
    return train::Features{{"a", fa(xa.slice(0, 3 * m, 3 * m + 3))}, {"b", fb(xb.slice(0, 3 * m, 3 * m + 3))}};
  };
  auto loss = [&](const std::vector<train::Features>& all) {
    return std::make_pair(infoNce(train::concatFeature(all, "a"), train::concatFeature(all, "b")), train::Metrics{});
  };
  auto r = train::accumulateWithFeatureCache(micro, forward, loss);
  const auto got = grads();
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(torch::allclose(got[i], ref[i], 1e-5, 1e-6)) << i;
  EXPECT_NEAR(r.loss, infoNce(fa(xa), fb(xb)).item<double>(), 1e-6);

  // Naive accumulation (each micro-batch its own negatives) is measurably different.
  for (int m = 0; m < micro; ++m) {
    auto f = forward(m);
    (infoNce(f["a"], f["b"]) / micro).backward();
  }
  const auto naive = grads();
  EXPECT_FALSE(torch::allclose(naive[0], ref[0], 1e-3, 1e-4));
}
