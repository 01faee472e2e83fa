#pragma once
// A small deterministic regression task for trainer tests: y = W x + b + noise, a 2-layer MLP
// with dropout (exercises torch's RNG), data drawn from the task's own RNG (exercises task state).
#include <functional>

#include <torch/torch.h>

#include "biud/core/Process.h"
#include "biud/core/Rng.h"
#include "biud/train/Task.h"

namespace biud::test {

struct ToyNetImpl : torch::nn::Module {
  ToyNetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(6, 16));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({16})));
    fc2 = register_module("fc2", torch::nn::Linear(16, 2));
    drop = register_module("drop", torch::nn::Dropout(0.2));
  }
  torch::Tensor forward(torch::Tensor x) { return fc2(drop(torch::gelu(norm(fc1(x))))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(ToyNet);

class ToyTask : public train::Task {
 public:
  explicit ToyTask(std::uint64_t seed) : rng_(seed) {
    torch::manual_seed(static_cast<std::uint64_t>(seed));
    net_ = ToyNet();
  }
  torch::nn::Module& module() override { return *net_; }
  train::StepResult trainStep(const train::StepContext& step) override {
    const int accum = step.accum;
    net_->train();
    ++calls_;
    if (onStep) onStep(calls_);
    double total = 0;
    for (int a = 0; a < accum; ++a) {
      std::vector<float> xs, ys;
      for (int i = 0; i < 8; ++i) {
        float x[6];
        for (float& v : x) v = static_cast<float>(rng_.normal());
        for (float v : x) xs.push_back(v);
        ys.push_back(x[0] - 2 * x[1] + 0.5f * x[2] + 0.1f * static_cast<float>(rng_.normal()));
        ys.push_back(x[3] * x[4] + 0.1f * static_cast<float>(rng_.normal()));
      }
      auto x = torch::tensor(xs).view({8, 6});
      auto y = torch::tensor(ys).view({8, 2});
      auto loss = torch::mse_loss(net_->forward(x), y) / accum;
      if (nanAt_ > 0 && calls_ >= nanAt_ && calls_ < nanAt_ + nanCount_)
        loss = loss * std::numeric_limits<float>::quiet_NaN();
      loss.backward();
      if (infGradAt_ > 0 && calls_ == infGradAt_)  // a finite loss with a non-finite gradient
        net_->fc2->weight.mutable_grad().fill_(std::numeric_limits<float>::infinity());
      total += loss.item<double>();
    }
    if (stopAtCall_ > 0 && calls_ == stopAtCall_) app::requestStop();
    return {total, {{"mse", total}}, 8 * accum};
  }
  train::Metrics validate() override { return onValidate ? onValidate() : train::Metrics{}; }
  nlohmann::json state() const override {
    if (onState) onState();
    return {{"rng", rng_.state()}, {"calls", calls_}};
  }
  void loadState(const nlohmann::json& s) override {
    rng_.setState(s.at("rng").get<std::string>());
    calls_ = s.at("calls").get<int>();
  }
  ToyNet net_{nullptr};
  Rng rng_;
  int calls_ = 0;
  int nanAt_ = 0, nanCount_ = 0, stopAtCall_ = 0;
  int infGradAt_ = 0;                          ///< this call leaves an infinite gradient in fc2.weight
  std::function<void(int)> onStep;             ///< called with the call count at the start of every step
  std::function<train::Metrics()> onValidate;  ///< validate()'s metrics (none when empty)
  std::function<void()> onState;  ///< called whenever a checkpoint asks for the task state (inside the save)
};

}  // namespace biud::test
