#include "biud/evaluate/X2ctEval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"
#include "biud/eval/Retrieval.h"
#include "biud/tensor/Safetensors.h"

namespace biud::evaluate {

torch::Tensor embedXrays(models::ClipModel& model, const train::XraySet& set, const c10::Device& device) {
  torch::NoGradGuard ng;
  model->eval();
  std::vector<torch::Tensor> parts;
  for (std::int64_t b = 0; b < set.size(); b += 64)
    parts.push_back(model->encodeImage(set.images.slice(0, b, std::min(set.size(), b + 64)).to(device)).cpu());
  return torch::cat(parts).to(torch::kFloat32);
}

namespace {
eval::Matrix toMatrix(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous().cpu();
  eval::Matrix m(static_cast<size_t>(c.size(0)), std::vector<double>(static_cast<size_t>(c.size(1))));
  const double* p = c.data_ptr<double>();
  for (size_t i = 0; i < m.size(); ++i)
    std::copy(p + i * m[i].size(), p + (i + 1) * m[i].size(), m[i].begin());
  return m;
}
}  // namespace

nlohmann::json x2ctRetrieval(const torch::Tensor& xray, const std::vector<std::string>& xrayIds,
                             const train::X2ctLatents& latents) {
  BIUD_CHECK(xray.size(0) == static_cast<std::int64_t>(xrayIds.size()) && !xrayIds.empty(), ValueError,
             "x2ctRetrieval: {} X-ray embeddings for {} ids", xray.size(0), xrayIds.size());
  std::vector<std::string> scans, gallery;
  std::vector<std::int64_t> rows;
  std::map<std::string, bool> seen;
  for (const auto& id : xrayIds) {
    scans.push_back(train::x2ctScanId(id));
    if (seen.emplace(scans.back(), true).second) {
      const auto r = latents.row(scans.back());
      BIUD_CHECK(r >= 0, DataError, "X-ray `{}`: its CT `{}` has no cached latents", id, scans.back());
      gallery.push_back(scans.back());
      rows.push_back(r);
    }
  }
  auto idx = torch::tensor(rows);
  auto rep = latents.report.index_select(0, idx), ct = latents.ct.index_select(0, idx);
  auto x2r = toMatrix(torch::matmul(xray, rep.t())), x2c = toMatrix(torch::matmul(xray, ct.t()));
  nlohmann::json j;
  j["xray_to_report"] = eval::retrievalScores(x2r, scans, gallery).toJson();
  j["report_to_xray"] = eval::retrievalScores(eval::transpose(x2r), gallery, scans).toJson();
  j["xray_to_ct"] = eval::retrievalScores(x2c, scans, gallery).toJson();
  j["ct_to_xray"] = eval::retrievalScores(eval::transpose(x2c), gallery, scans).toJson();
  // The frozen pair itself (the ceiling the X-ray tower is pulled towards): CT -> report.
  j["ct_to_report"] = eval::retrievalScores(toMatrix(torch::matmul(ct, rep.t())), gallery, gallery).toJson();
  j["gallery"] = gallery.size();
  j["chance_recall@5"] = std::min(1.0, 5.0 / static_cast<double>(gallery.size()));
  return j;
}

torch::Tensor linearProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                          double C, int maxIter) {
  BIUD_CHECK(C > 0, ValueError, "linearProbe: C must be > 0, got {}", C);
  BIUD_CHECK(xTrain.dim() == 2 && yTrain.dim() == 2 && xTrain.size(0) == yTrain.size(0) && xTest.size(1) == xTrain.size(1),
             ValueError, "linearProbe: shapes x {} y {} test {} do not fit", tensor::shapeStr(xTrain.sizes()),
             tensor::shapeStr(yTrain.sizes()), tensor::shapeStr(xTest.sizes()));
  torch::NoGradGuard outer;
  auto x = xTrain.to(torch::kFloat64), xt = xTest.to(torch::kFloat64);
  auto y = yTrain.to(torch::kFloat64);
  auto known = ~torch::isnan(y);
  auto yk = torch::where(known, y, torch::zeros_like(y)).gt(0.5).to(torch::kFloat64);
  auto kf = known.to(torch::kFloat64);
  const std::int64_t d = x.size(1), F = y.size(1);
  auto out = torch::empty({xt.size(0), F}, torch::kFloat64);
  for (std::int64_t f = 0; f < F; ++f) {
    const double n = kf.select(1, f).sum().item<double>();
    const double pos = (yk.select(1, f) * kf.select(1, f)).sum().item<double>();
    if (n == 0 || pos == 0 || pos == n) {
      // One class (or none) known: the best constant.
      out.select(1, f).fill_(n == 0 ? 0.5 : pos / n);
      continue;
    }
    auto w = torch::zeros({d}, torch::dtype(torch::kFloat64).requires_grad(true));
    auto b = torch::zeros({1}, torch::dtype(torch::kFloat64).requires_grad(true));
    auto mask = kf.select(1, f), target = yk.select(1, f);
    torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                        .max_iter(maxIter)
                                        .tolerance_grad(1e-10)
                                        .tolerance_change(1e-14)
                                        .history_size(20)
                                        .line_search_fn("strong_wolfe"));
    auto closure = [&] {
      opt.zero_grad();
      torch::AutoGradMode on(true);
      auto z = torch::mv(x, w) + b;
      // sklearn: C * sum logloss + 0.5 ||w||^2 (divided by C n for a well-scaled objective).
      auto ll = torch::nn::functional::binary_cross_entropy_with_logits(
          z, target, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
      auto loss = (ll * mask).sum() / n + 0.5 * w.dot(w) / (C * n);
      loss.backward();
      return loss;
    };
    {
      torch::AutoGradMode on(true);
      opt.step(closure);
    }
    out.select(1, f).copy_(torch::sigmoid(torch::mv(xt, w.detach()) + b.detach()));
  }
  return out.to(torch::kFloat32);
}

std::vector<std::int64_t> fewShotSubset(std::int64_t n, double fraction, std::uint64_t seed) {
  BIUD_CHECK(n > 0 && fraction > 0 && fraction <= 1, ValueError, "fewShotSubset: n {} fraction {}", n, fraction);
  const std::int64_t k = std::min<std::int64_t>(n, std::max<std::int64_t>(2, std::llround(fraction * static_cast<double>(n))));
  std::vector<std::int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  Rng rng(seed);
  std::shuffle(all.begin(), all.end(), rng.engine());
  all.resize(static_cast<size_t>(k));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace biud::evaluate
