// Precision and device: losses keep float32 logits under autocast, float32 inputs agree with
// float64, CUDA agrees with CPU (skipped without a GPU), and the config's cross-field checks.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/LossConfig.h"
#include "biud/core/Error.h"
#include "biud/losses/BiudLoss.h"
#include "biud/losses/ClipLoss.h"
#include "biud/losses/TrimodalLoss.h"

namespace L = biud::losses;
using torch::Tensor;

namespace {

/// A BIUD batch with every term on, on `dev` in `dtype`, built from one seed.
L::BiudLossInputs batch(torch::Device dev, torch::Dtype dtype) {
  torch::manual_seed(17);
  auto o = torch::TensorOptions().dtype(torch::kDouble);
  L::BiudLossInputs in;
  const int64_t b = 8;
  in.roco.features = {torch::randn({b, 16}, o), torch::randn({b, 16}, o)};
  in.roco.tau = torch::tensor(0.07, o);
  in.roco.report_embeddings = torch::randn({b, 12}, o);
  in.roco.report_embeddings[5] = in.roco.report_embeddings[2];
  in.roco.findings = torch::tensor({0, 1, 0, 2, 3, 4, 5, 0});
  in.relation = {
      torch::randn({b, 12}, o),
      torch::nn::functional::normalize(torch::randn({b, 12}, o), torch::nn::functional::NormalizeFuncOptions().dim(1))};
  auto labels = torch::randint(0, 20, {2, 6}, torch::kLong).masked_fill(torch::rand({2, 6}).lt(0.5), L::kIgnoreLabel);
  labels.index_put_({0, 0}, 3);
  in.efm = {torch::randn({2, 6, 20}, o), labels, torch::rand({2, 6}).lt(0.5)};
  auto cast = [&](Tensor& t) {
    if (t.defined()) t = (t.is_floating_point() ? t.to(dtype) : t).to(dev);
  };
  for (Tensor* t :
       {&in.roco.features.a, &in.roco.features.b, &in.roco.tau, &in.roco.report_embeddings, &in.roco.findings,
        &in.relation.student, &in.relation.teacher, &in.efm.logits, &in.efm.labels, &in.efm.entity_mask})
    cast(*t);
  return in;
}

std::map<std::string, double> run(torch::Device dev, torch::Dtype dtype) {
  return L::BiudLoss(biud::LossConfig{})(batch(dev, dtype)).scalars();
}

}  // namespace

TEST(LossPrecision, Float32AgreesWithFloat64) {
  const auto f64 = run(torch::kCPU, torch::kDouble), f32 = run(torch::kCPU, torch::kFloat);
  ASSERT_EQ(f64.size(), f32.size());
  for (const auto& [k, v] : f64) EXPECT_NEAR(f32.at(k), v, 1e-5 * std::max(1.0, std::abs(v))) << k;
}

TEST(LossPrecision, AutocastDoesNotLowerLogitPrecision) {
  torch::manual_seed(2);
  auto a = torch::randn({16, 64}), b = torch::randn({16, 64});
  const auto tau = torch::tensor(0.01f);
  const double ref = L::clipLoss({a, b}, tau).total.item<double>();
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  const double under = L::clipLoss({a, b}, tau).total.item<double>();
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  EXPECT_NEAR(under, ref, 1e-5 * std::max(1.0, std::abs(ref)));
}

TEST(LossPrecision, CudaAgreesWithCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto cpu = run(torch::kCPU, torch::kFloat), gpu = run(torch::Device(torch::kCUDA, 0), torch::kFloat);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (const auto& [k, v] : cpu) EXPECT_NEAR(gpu.at(k), v, 1e-4 * std::max(1.0, std::abs(v))) << k;
  // Backward runs on the device, gradients land on the device.
  auto in = batch(torch::Device(torch::kCUDA, 0), torch::kFloat);
  in.roco.features.a.requires_grad_(true);
  L::BiudLoss(biud::LossConfig{})(in).total.backward();
  EXPECT_TRUE(in.roco.features.a.grad().is_cuda());
  EXPECT_TRUE(torch::isfinite(in.roco.features.a.grad()).all().item<bool>());
}

TEST(LossConfigRead, CrossFieldChecksNameTheKey) {
  auto parse = [](const std::string& yaml) {
    return biud::config::parse<biud::LossConfig>(biud::config::Document::fromString(yaml, "loss.yaml"));
  };
  EXPECT_NO_THROW(parse("roco: {mode: remove, alpha: 0.5}\nefm: {weight: 0}\n"));
  try {
    parse("roco: {temperature_init: 2.0}\n");
    FAIL();
  } catch (const biud::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("temperature_init"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse("efm: {mask_token_frac: 0.9, random_token_frac: 0.2}\n"), biud::ConfigError);
  EXPECT_THROW(parse("trimodal: {temperature_min: 0.5, temperature_max: 0.1}\n"), biud::ConfigError);
  EXPECT_THROW(parse("roco: {mode: sloppy}\n"), biud::ConfigError);
  const auto cfg = parse("trimodal: {alpha: 0.2, temperature_init: 0.05}\n");
  EXPECT_EQ(cfg.trimodal.alpha, 0.2);
  EXPECT_EQ(cfg.trimodal.temperature_init, 0.05);
}
