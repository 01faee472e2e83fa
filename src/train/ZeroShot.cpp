#include "biud/train/ZeroShot.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "biud/core/Error.h"
#include "biud/eval/Classification.h"

namespace biud::train {

namespace {
torch::Tensor ensemble(const torch::Tensor& emb) {
  auto m = emb.mean(0);
  return m / m.norm().clamp_min(1e-12);
}
}  // namespace

PromptEmbeddings embedPrompts(const text::PromptSet& prompts, const std::vector<std::string>& findings,
                              const TextEncoderFn& encode) {
  PromptEmbeddings out;
  out.findings = findings;
  std::vector<torch::Tensor> pos, neg;
  torch::NoGradGuard ng;
  for (const auto& f : findings) {
    const auto& fp = prompts.at(f);
    pos.push_back(ensemble(encode(fp.positive)));
    neg.push_back(ensemble(encode(fp.negative)));
  }
  out.positive = torch::stack(pos);
  out.negative = torch::stack(neg);
  return out;
}

PromptedColumns promptedColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts) {
  PromptedColumns out;
  const auto ids = prompts.ids();
  for (size_t j = 0; j < labelNames.size(); ++j)
    if (std::find(ids.begin(), ids.end(), labelNames[j]) != ids.end()) {
      out.findings.push_back(labelNames[j]);
      out.columns.push_back(static_cast<std::int64_t>(j));
    }
  return out;
}

torch::Tensor zeroShotProbabilities(const torch::Tensor& images, const PromptEmbeddings& p, double tau) {
  BIUD_CHECK(tau > 0, ValueError, "zero-shot temperature must be > 0, got {}", tau);
  torch::NoGradGuard ng;
  auto x = images.to(torch::kFloat32);
  auto sp = torch::matmul(x, p.positive.to(x.device()).t()) / tau;  // [N, F]
  auto sn = torch::matmul(x, p.negative.to(x.device()).t()) / tau;
  return torch::softmax(torch::stack({sp, sn}, -1), -1).select(-1, 0);
}

void addAurocMetrics(const torch::Tensor& probs, const torch::Tensor& labels, const std::vector<std::string>& names,
                     std::map<std::string, double>& out) {
  auto pr = probs.to(torch::kFloat64).contiguous().cpu();
  auto lb = labels.to(torch::kFloat64).contiguous().cpu();
  double sum = 0;
  int n = 0;
  for (size_t f = 0; f < names.size(); ++f) {
    std::vector<double> s;
    std::vector<int> y;
    for (std::int64_t i = 0; i < pr.size(0); ++i) {
      const double l = lb[i][static_cast<std::int64_t>(f)].item<double>();
      if (std::isnan(l)) continue;
      s.push_back(pr[i][static_cast<std::int64_t>(f)].item<double>());
      y.push_back(l > 0.5 ? 1 : 0);
    }
    const double auc = eval::rocAuc(s, y);
    out["auroc/" + names[f]] = auc;
    if (std::isfinite(auc)) sum += auc, ++n;
  }
  out["auroc_macro"] = n ? sum / n : NAN;
}

}  // namespace biud::train
