// trainer.precision: bf16 autocast equals PyTorch's torch.autocast on the same tensors; fp32 and
// leaving the scope restore full precision; `auto` picks bf16 only on CUDA.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Precision.h"
#include "common/TestUtil.h"

using namespace biud;

TEST(Precision, ResolvesPerDevice) {
  EXPECT_EQ(train::resolvePrecision("auto", c10::Device(c10::kCPU)), "fp32");
  EXPECT_EQ(train::resolvePrecision("auto", c10::Device(c10::kCUDA, 0)), "bf16");
  EXPECT_EQ(train::resolvePrecision("bf16", c10::Device(c10::kCPU)), "bf16");
  EXPECT_EQ(train::resolvePrecision("fp32", c10::Device(c10::kCUDA, 0)), "fp32");
  EXPECT_THROW(train::resolvePrecision("fp16", c10::Device(c10::kCPU)), ConfigError);
}

TEST(Precision, ScopeSwitchesMatmulsToBf16AndBack) {
  torch::manual_seed(0);
  torch::nn::Linear fc(8, 4);
  auto x = torch::randn({3, 8});
  {
    train::AutocastScope amp("bf16", c10::Device(c10::kCPU));
    EXPECT_EQ(fc(x).scalar_type(), torch::kBFloat16);
    {
      train::AutocastScope inner("bf16", c10::Device(c10::kCPU));
      EXPECT_EQ(fc(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(fc(x).scalar_type(), torch::kBFloat16);  // the inner scope left the outer one on
  }
  EXPECT_EQ(fc(x).scalar_type(), torch::kFloat32);
  {
    train::AutocastScope off("fp32", c10::Device(c10::kCPU));
    EXPECT_EQ(fc(x).scalar_type(), torch::kFloat32);
  }
  EXPECT_EQ(fc->weight.scalar_type(), torch::kFloat32);
}

TEST(Precision, Bf16StepEqualsTorchAutocast) {
  torch::manual_seed(1);
  test::TempDir d("amp");
  tensor::TensorMap in{{"x", torch::randn({5, 6})},           {"y", torch::randn({5, 3})},
                       {"fc1.weight", torch::randn({16, 6})}, {"fc1.bias", torch::randn({16})},
                       {"fc2.weight", torch::randn({3, 16})}, {"fc2.bias", torch::randn({3})}};
  tensor::writeSafetensors((d / "in.safetensors").string(), in);
  test::runPython("train_autocast.py", (d / "in.safetensors").string() + " " + (d / "out.safetensors").string());
  auto ref = tensor::readSafetensors((d / "out.safetensors").string());

  std::map<std::string, torch::Tensor> p;
  for (const char* k : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}) p[k] = in[k].clone().requires_grad_(true);
  torch::Tensor out, loss;
  {
    train::AutocastScope amp("bf16", c10::Device(c10::kCPU));
    auto h = torch::nn::functional::linear(in["x"], p["fc1.weight"], p["fc1.bias"]);
    h = torch::layer_norm(h, {h.size(-1)});
    out = torch::nn::functional::linear(torch::gelu(h), p["fc2.weight"], p["fc2.bias"]);
    loss = torch::mse_loss(out.to(torch::kFloat32), in["y"]);
  }
  loss.backward();
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(ref["out_bf16"].item<float>(), 1.0f);
  // Same kernels on the same inputs: equal to bf16 rounding.
  EXPECT_LT((out.to(torch::kFloat32) - ref["out"]).abs().max().item<double>(), 1e-2);
  EXPECT_NEAR(loss.item<double>(), ref["loss"].item<double>(), 1e-4 * std::max(1.0, ref["loss"].item<double>()));
  for (auto& [k, v] : p) {
    ASSERT_EQ(v.grad().scalar_type(), torch::kFloat32) << k;  // gradients of fp32 weights stay fp32
    const auto& r = ref["grad." + k];
    EXPECT_LT((v.grad() - r).abs().max().item<double>(), 2e-2 * std::max(1.0, r.abs().max().item<double>())) << k;
  }
  // And it is really bf16: fp32 differs from it by more than float rounding.
  auto h32 = torch::layer_norm(torch::nn::functional::linear(in["x"], p["fc1.weight"], p["fc1.bias"]), {16});
  auto out32 = torch::nn::functional::linear(torch::gelu(h32), p["fc2.weight"], p["fc2.bias"]);
  EXPECT_GT((out32 - out.to(torch::kFloat32)).abs().max().item<double>(), 1e-5);
}
