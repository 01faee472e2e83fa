#include "biud/eval/Clinical.h"

#include <cmath>

#include "biud/core/Error.h"

namespace biud::eval {

nlohmann::json ClinicalScores::toJson() const {
  nlohmann::json j;
  j["micro"] = {{"precision", microP}, {"recall", microR}, {"f1", microF1}};
  j["macro"] = {{"precision", macroP}, {"recall", macroR}, {"f1", macroF1}};
  nlohmann::json per = nlohmann::json::object();
  for (std::size_t i = 0; i < findings.size(); ++i) {
    const auto& c = perFinding[i];
    per[findings[i]] = {{"precision", c.precision()},
                        {"recall", c.recall()},
                        {"f1", c.f1()},
                        {"support", c.support},
                        {"tp", c.tp},
                        {"fp", c.fp},
                        {"fn", c.fn}};
  }
  j["per_finding"] = per;
  return j;
}

ClinicalScores clinicalEfficacy(const std::vector<std::vector<double>>& pred,
                                const std::vector<std::vector<double>>& ref, const std::vector<std::string>& findings) {
  BIUD_CHECK(pred.size() == ref.size(), ValueError, "clinical efficacy: {} predicted reports but {} references",
             pred.size(), ref.size());
  ClinicalScores s;
  s.findings = findings;
  s.perFinding.assign(findings.size(), {});
  PrfCounts micro;
  for (std::size_t r = 0; r < pred.size(); ++r) {
    BIUD_CHECK(pred[r].size() == findings.size() && ref[r].size() == findings.size(), ValueError,
               "clinical efficacy: report {} has {}/{} values, expected {}", r, pred[r].size(), ref[r].size(),
               findings.size());
    for (std::size_t f = 0; f < findings.size(); ++f) {
      const double y = ref[r][f], p = pred[r][f];
      if (std::isnan(y)) continue;
      BIUD_CHECK(y == 0 || y == 1, ValueError, "clinical efficacy: reference `{}` of report {} is {}, expected 0/1",
                 findings[f], r, y);
      BIUD_CHECK(p == 0 || p == 1, ValueError, "clinical efficacy: prediction `{}` of report {} is {}, expected 0/1",
                 findings[f], r, p);
      auto& c = s.perFinding[f];
      if (y == 1 && p == 1)
        c.tp += 1;
      else if (y == 0 && p == 1)
        c.fp += 1;
      else if (y == 1 && p == 0)
        c.fn += 1;
      c.support += y;
    }
  }
  for (const auto& c : s.perFinding) {
    micro.tp += c.tp;
    micro.fp += c.fp;
    micro.fn += c.fn;
    s.macroP += c.precision();
    s.macroR += c.recall();
    s.macroF1 += c.f1();
  }
  if (!findings.empty()) {
    const double n = static_cast<double>(findings.size());
    s.macroP /= n;
    s.macroR /= n;
    s.macroF1 /= n;
  }
  s.microP = micro.precision();
  s.microR = micro.recall();
  s.microF1 = micro.f1();
  return s;
}

ClinicalScores clinicalEfficacy(const std::vector<std::set<std::string>>& pred,
                                const std::vector<std::set<std::string>>& ref, std::vector<std::string> findings) {
  if (findings.empty()) {
    std::set<std::string> all;
    for (const auto& s : pred) all.insert(s.begin(), s.end());
    for (const auto& s : ref) all.insert(s.begin(), s.end());
    findings.assign(all.begin(), all.end());
  }
  std::vector<std::vector<double>> p, r;
  for (const auto& s : pred) {
    std::vector<double> v;
    for (const auto& f : findings) v.push_back(s.count(f) ? 1.0 : 0.0);
    p.push_back(std::move(v));
  }
  for (const auto& s : ref) {
    std::vector<double> v;
    for (const auto& f : findings) v.push_back(s.count(f) ? 1.0 : 0.0);
    r.push_back(std::move(v));
  }
  return clinicalEfficacy(p, r, findings);
}

}  // namespace biud::eval
