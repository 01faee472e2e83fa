#include "biud/evaluate/ZeroShot.h"

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/eval/Classification.h"
#include "biud/eval/Protocols.h"

namespace biud::evaluate {

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

PromptedColumns promptedColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts,
                                const std::string& labelsFrom) {
  auto out = prompts.matchLabels(labelNames, labelsFrom);
  if (!out.unmatched.empty())
    log::warn("zeroshot", "label columns of {} without prompts in `{}` are not evaluated: {} (prompt findings: {})",
              labelsFrom, prompts.file.empty() ? prompts.name : prompts.file, fmt::join(out.unmatched, ", "),
              prompts.describe());
  return out;
}

text::PromptSet ctClipPromptSet(const std::vector<std::string>& labelNames, const text::PromptSet* named) {
  text::PromptSet ps;
  ps.name = "ct-clip";
  for (const auto& col : labelNames) {
    const auto* m = named ? named->match(col) : nullptr;
    const std::string finding = m && m->name != m->id ? m->name : col;  // an explicit `name`, else the column
    const auto [pos, neg] = eval::ctClipPrompts(finding);
    ps.findings.push_back({col, finding, {pos}, {neg}});
  }
  return ps;
}

PromptedColumns validationColumns(const std::vector<std::string>& labelNames, const text::PromptSet& prompts,
                                  const std::string& manifest) {
  if (labelNames.empty()) {
    log::warn("zeroshot", "`{}` has no label columns: no zero-shot validation with the prompts of `{}` (eval.prompts)",
              manifest, prompts.file);
    return {};
  }
  return promptedColumns(labelNames, prompts, fmt::format("`{}` (validation)", manifest));
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

void addZeroShotAuroc(const torch::Tensor& images, const torch::Tensor& labels, const PromptEmbeddings& p, double tau,
                      std::map<std::string, double>& out) {
  addAurocMetrics(zeroShotProbabilities(images, p, tau), labels, p.findings, out);
}

void addZeroShotAuroc(const torch::Tensor& images, const torch::Tensor& labels, const text::PromptSet& prompts,
                      const PromptedColumns& columns, const TextEncoderFn& encode, double tau,
                      std::map<std::string, double>& out) {
  if (columns.findings.empty()) return;
  const auto pe = embedPrompts(prompts, columns.findings, encode);
  addZeroShotAuroc(images, labels.index_select(1, torch::tensor(columns.columns)), pe, tau, out);
}

}  // namespace biud::evaluate
