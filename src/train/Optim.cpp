#include "biud/train/Optim.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include <ATen/ops/_fused_adamw.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::train {

bool excludedFromDecay(const std::string& name, const torch::Tensor& p) {
  return p.dim() < 2 || name.find("logit_scale") != std::string::npos || name.find("temperature") != std::string::npos;
}

double baseLrFor(const std::string& name, const OptimizerConfig& cfg) {
  double lr = cfg.lr;
  size_t best = 0;
  for (const auto& [prefix, value] : cfg.module_lr) {
    const bool match = name == prefix || (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
                                          name[prefix.size()] == '.');
    if (match && prefix.size() > best) best = prefix.size(), lr = value;
  }
  return lr;
}

namespace {

/// The non-negative integer that `s` is entirely, or -1.
int wholeNumber(const std::string& s) {
  if (s.empty() || s.size() > 9) return -1;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
  return std::stoi(s);
}

std::vector<std::string> splitDots(const std::string& name) {
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    const size_t j = name.find('.', i);
    out.push_back(name.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) return out;
    i = j + 1;
  }
}

/// 1-based depth of a block/stage parameter (`blocks.3.x` -> 4, `layer2.0.x` -> 2,
/// `encoder.layer.3.x` -> 4, `encoder.layers.encoder_layer_3.x` -> 4), or -1.
int blockDepth(const std::vector<std::string>& c) {
  if (c.size() >= 2 && c[0] == "blocks")
    if (int b = wholeNumber(c[1]); b >= 0) return b + 1;
  if (c.size() >= 2 && c[0].size() > 5 && c[0].compare(0, 5, "layer") == 0)  // ResNet stage; the param lives below it
    if (int k = wholeNumber(c[0].substr(5)); k >= 0) return k;
  if (c.size() >= 3 && c[0] == "encoder" && c[1] == "layer")
    if (int b = wholeNumber(c[2]); b >= 0) return b + 1;
  const std::string vit2d = "encoder_layer_";
  if (c.size() >= 3 && c[0] == "encoder" && c[1] == "layers" && c[2].compare(0, vit2d.size(), vit2d) == 0)
    if (int b = wholeNumber(c[2].substr(vit2d.size())); b >= 0) return b + 1;
  return -1;
}

bool isEncoderName(const std::string& top) {
  const std::string suffix = "encoder";
  return top.size() >= suffix.size() && top.compare(top.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// torch::optim::AdamW whose step() updates each parameter group with ATen's fused kernel
/// (`at::_fused_adamw_`, the kernel of Python's `torch.optim.AdamW(fused=True)`): one pass over
/// parameter, gradient and both moments instead of LibTorch's seven tensor operations per
/// parameter and a temporary `denom` the size of the parameter. Same state (AdamWParamState:
/// step, exp_avg, exp_avg_sq), so save()/load() and checkpoints are unchanged. The arithmetic
/// is the fused kernel's (the moments and the update in one expression per element), equal to
/// PyTorch's fused AdamW bit for bit, within float rounding of LibTorch's loop.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard noGrad;
    torch::Tensor loss;
    if (closure) {
      at::AutoGradMode enable(true);
      loss = closure();
    }
    for (auto& group : param_groups_)
      for (auto& p : group.params())  // the kernel needs dense memory (parameters always are)
        if (p.grad().defined() && !p.is_non_overlapping_and_dense()) return torch::optim::AdamW::step(nullptr);
    for (auto& group : param_groups_) {
      auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
      std::vector<torch::Tensor> ps, gs, ms, vs, maxs, steps;
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        torch::Tensor g = p.grad();
        BIUD_CHECK(!g.is_sparse(), ValueError, "AdamW does not support sparse gradients");
        auto& slot = state_[p.unsafeGetTensorImpl()];
        if (!slot) {
          auto st = std::make_unique<torch::optim::AdamWParamState>();
          st->step(0);
          st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
          st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
          if (o.amsgrad()) st->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
          slot = std::move(st);
        }
        auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
        st.step(st.step() + 1);
        // The kernel walks raw memory: every tensor of a parameter must have its strides (a
        // gradient of another layout, or moments loaded from another layout, are brought to it).
        auto same = [&](torch::Tensor t) {
          if (t.strides() == p.strides()) return t;
          auto c = at::empty_like(p);
          c.copy_(t);
          return c;
        };
        g = same(g);
        if (st.exp_avg().strides() != p.strides()) st.exp_avg(same(st.exp_avg()));
        if (st.exp_avg_sq().strides() != p.strides()) st.exp_avg_sq(same(st.exp_avg_sq()));
        if (o.amsgrad() && st.max_exp_avg_sq().strides() != p.strides()) st.max_exp_avg_sq(same(st.max_exp_avg_sq()));
        ps.push_back(p);
        gs.push_back(g);
        ms.push_back(st.exp_avg());
        vs.push_back(st.exp_avg_sq());
        if (o.amsgrad()) maxs.push_back(st.max_exp_avg_sq());
        // Python keeps `step` as a float32 tensor; the kernel reads it per parameter.
        steps.push_back(torch::full({}, static_cast<double>(st.step()), p.options().dtype(torch::kFloat32)));
      }
      if (ps.empty()) continue;
      at::_fused_adamw_(ps, gs, ms, vs, maxs, steps, o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()),
                        o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
    }
    return loss;
  }
};

}  // namespace

bool fusedAdamW() {
  const char* v = std::getenv("BIUD_ADAMW");
  if (!v || !*v || std::strcmp(v, "fused") == 0) return true;
  BIUD_CHECK(std::strcmp(v, "loop") == 0, ConfigError, "BIUD_ADAMW=`{}`: use fused (the default) or loop", v);
  return false;
}

int encoderLayerId(const std::string& name, int numLayers) {
  const auto c = splitDots(name);
  for (const char* stem :
       {"patch_embed", "pos_embed", "cls_token", "conv1", "bn1", "stem", "conv_proj", "class_token", "embeddings"})
    if (c[0] == stem) return 0;
  if (c.size() == 2 && c[0] == "encoder" && c[1] == "pos_embedding") return 0;
  if (int d = blockDepth(c); d >= 0) return d;
  return numLayers;
}

int encoderNumLayers(const std::vector<std::string>& names) {
  int deepest = 0;
  for (const auto& n : names) deepest = std::max(deepest, blockDepth(splitDots(n)));
  return deepest + 1;
}

std::map<std::string, double> parameterLrs(torch::nn::Module& module, const OptimizerConfig& cfg) {
  std::map<std::string, double> out;
  std::map<std::string, std::vector<std::string>> encoders;  // top-level encoder -> its trainable parameters (relative)
  for (const auto& np : module.named_parameters(/*recurse=*/true)) {
    if (!np.value().requires_grad()) continue;
    out[np.key()] = baseLrFor(np.key(), cfg);
    const size_t dot = np.key().find('.');
    if (cfg.layer_decay < 1.0 && dot != std::string::npos && isEncoderName(np.key().substr(0, dot)))
      encoders[np.key().substr(0, dot)].push_back(np.key().substr(dot + 1));
  }
  for (const auto& [prefix, rel] : encoders) {
    const int numLayers = encoderNumLayers(rel);
    for (const auto& r : rel)
      out[prefix + "." + r] *= std::pow(cfg.layer_decay, numLayers - encoderLayerId(r, numLayers));
  }
  return out;
}

std::unique_ptr<torch::optim::Optimizer> buildOptimizer(torch::nn::Module& module, const OptimizerConfig& cfg,
                                                        std::vector<ParamGroupInfo>* groupsOut) {
  // Ordered by first appearance so that optimizer state order is stable across runs.
  std::vector<std::pair<std::pair<double, bool>, ParamGroupInfo>> order;
  std::vector<std::vector<torch::Tensor>> tensors;
  const auto lrs = parameterLrs(module, cfg);
  for (const auto& np : module.named_parameters(/*recurse=*/true)) {
    if (!np.value().requires_grad()) continue;
    const bool noDecay = excludedFromDecay(np.key(), np.value());
    const double lr = lrs.at(np.key());
    size_t g = 0;
    for (; g < order.size(); ++g)
      if (order[g].first.first == lr && order[g].first.second == noDecay) break;
    if (g == order.size()) {
      order.push_back({{lr, noDecay}, ParamGroupInfo{{}, lr, noDecay ? 0.0 : cfg.weight_decay}});
      tensors.emplace_back();
    }
    order[g].second.names.push_back(np.key());
    tensors[g].push_back(np.value());
  }
  BIUD_CHECK(!order.empty(), ConfigError, "the model has no trainable parameters (everything frozen?)");
  for (const auto& [prefix, lr] : cfg.module_lr) {
    bool used = false;
    for (auto& o : order)
      for (auto& n : o.second.names) used = used || n == prefix || n.rfind(prefix + ".", 0) == 0;
    if (used) continue;
    // A recipe is shared by the tasks of a chain (quickstart.yaml trains clip2d, biud, finetune,
    // ...): a tower another task has is skipped with a note; anything else is a typo.
    static const std::set<std::string> towers = {"ct_encoder", "text_encoder", "image_encoder", "fusion",     "decoder",
                                                 "adapter",    "ct_proj",      "text_proj",     "image_proj", "head"};
    BIUD_CHECK(towers.count(prefix), ConfigError,
               "optimizer.module_lr: prefix `{}` matches no trainable parameter (names look like `{}`)", prefix,
               order.front().second.names.front());
    log::info("optim", "optimizer.module_lr.{}: this task has no trainable `{}`; the entry is for another task", prefix,
              prefix);
  }

  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (cfg.name == "adamw") {
    for (size_t g = 0; g < order.size(); ++g) {
      auto o = std::make_unique<torch::optim::AdamWOptions>(order[g].second.lr);
      o->betas({cfg.betas[0], cfg.betas[1]}).eps(cfg.eps).weight_decay(order[g].second.weightDecay);
      groups.emplace_back(tensors[g], std::move(o));
    }
    if (groupsOut)
      for (auto& o : order) groupsOut->push_back(o.second);
    if (fusedAdamW()) return std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(cfg.lr));
    return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(cfg.lr));
  }
  for (size_t g = 0; g < order.size(); ++g) {
    auto o = std::make_unique<torch::optim::SGDOptions>(order[g].second.lr);
    o->momentum(cfg.betas[0]).weight_decay(order[g].second.weightDecay);
    groups.emplace_back(tensors[g], std::move(o));
  }
  if (groupsOut)
    for (auto& o : order) groupsOut->push_back(o.second);
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(cfg.lr));
}

double lrFactor(std::int64_t step, std::int64_t total, const ScheduleConfig& cfg) {
  if (cfg.warmup_steps > 0 && step < cfg.warmup_steps) return static_cast<double>(step + 1) / cfg.warmup_steps;
  if (cfg.name == "constant") return 1.0;
  const double span = std::max<std::int64_t>(1, total - cfg.warmup_steps);
  const double p = std::min(1.0, static_cast<double>(step - cfg.warmup_steps) / span);
  const double lo = cfg.min_lr_ratio;
  if (cfg.name == "linear") return 1.0 - (1.0 - lo) * p;
  return lo + (1.0 - lo) * 0.5 * (1.0 + std::cos(M_PI * p));
}

std::vector<double> groupLrs(const torch::optim::Optimizer& opt) {
  std::vector<double> out;
  for (const auto& g : opt.param_groups()) out.push_back(g.options().get_lr());
  return out;
}

void applyLr(torch::optim::Optimizer& opt, const std::vector<double>& baseLrs, double factor) {
  auto& groups = opt.param_groups();
  BIUD_CHECK(groups.size() == baseLrs.size(), ValueError, "{} param groups but {} base lrs", groups.size(),
             baseLrs.size());
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(baseLrs[i] * factor);
}

}  // namespace biud::train
