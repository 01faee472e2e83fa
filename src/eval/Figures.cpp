#include "biud/eval/Figures.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/eval/DeLong.h"
#include "biud/eval/Plot.h"

namespace biud::eval {

std::string safeFileName(const std::string& s) {
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return o.empty() ? "_" : o;
}

namespace {
/// Known-label scores and labels of finding `l`.
void knownColumn(const std::vector<std::vector<double>>& probs, const std::vector<std::vector<double>>& labels,
                 std::size_t l, std::vector<double>& s, std::vector<int>& y) {
  s.clear();
  y.clear();
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (!std::isnan(labels[i][l])) {
      s.push_back(probs[i][l]);
      y.push_back(static_cast<int>(labels[i][l]));
    }
}
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json evaluateModels(const std::vector<ModelPredictions>& models,
                              const std::vector<std::vector<double>>& labels, const std::vector<std::string>& findings,
                              const ClassificationOptions& options, const std::string& plotDir) {
  BIUD_CHECK(!models.empty(), ValueError, "evaluateModels: no model");
  nlohmann::json top, all = nlohmann::json::object();
  std::vector<plot::ModelRocs> rocs;
  if (!plotDir.empty()) fs::makeDirs(plotDir);
  for (std::size_t m = 0; m < models.size(); ++m) {
    const auto& mp = models[m];
    BIUD_CHECK(all.find(mp.name) == all.end(), ValueError,
               "two models are named `{}`; give each --pred a distinct NAME=FILE", mp.name);
    const auto rep = evaluateClassification(mp.probs, labels, findings, options);
    nlohmann::json rj = rep.toJson();
    plot::ModelRocs mr;
    mr.name = mp.name;
    std::vector<std::vector<double>> pos, neg;
    for (std::size_t l = 0; l < findings.size(); ++l) {
      std::vector<double> s;
      std::vector<int> y;
      knownColumn(mp.probs, labels, l, s, y);
      const bool two = std::count(y.begin(), y.end(), 1) > 0 && std::count(y.begin(), y.end(), 0) > 0;
      mr.curves.push_back(two ? rocCurve(s, y) : RocCurve{});
      mr.aucs.push_back(rep.labels[l].auroc);
      std::vector<double> p, n;
      for (std::size_t i = 0; i < s.size(); ++i) (y[i] ? p : n).push_back(s[i]);
      pos.push_back(std::move(p));
      neg.push_back(std::move(n));
      if (m > 0) {
        // DeLong against the first model on the same cases.
        std::vector<double> s0;
        knownColumn(models[0].probs, labels, l, s0, y);
        auto& d = rj["delong_vs_" + models[0].name][findings[l]];
        if (two) {
          const auto r = delongTest(s, s0, y, options.ci);
          d = {{"auc1", r.auc1}, {"auc2", r.auc2}, {"diff", r.diff},
               {"z", num(r.z)},  {"p", r.p},       {"diff_ci", {r.ciLo, r.ciHi}}};
        } else {
          d = nullptr;
        }
      }
    }
    if (!plotDir.empty())
      plot::violins((std::filesystem::path(plotDir) / ("violin_" + safeFileName(mp.name) + ".png")).string(), findings,
                    pos, neg, "Predicted probabilities: " + mp.name);
    log::info("eval", "model `{}`: macro AUROC {:.4f}", mp.name, rep.macro.at("auroc"));
    if (m == 0) top = rj;
    all[mp.name] = std::move(rj);
    rocs.push_back(std::move(mr));
  }
  if (models.size() > 1) top["models"] = std::move(all);
  if (!plotDir.empty()) plot::rocGrid((std::filesystem::path(plotDir) / "roc.png").string(), findings, rocs);
  return top;
}

}  // namespace biud::eval
