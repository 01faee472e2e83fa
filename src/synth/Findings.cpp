#include "biud/synth/Findings.h"

#include "biud/core/Error.h"

namespace biud::synth {

const std::array<std::string, kNumFindings>& findingIds() {
  static const std::array<std::string, kNumFindings> ids = {
      "lung_nodule", "lung_mass",    "pleural_effusion",     "pneumothorax", "consolidation",
      "emphysema",   "cardiomegaly", "pericardial_effusion", "atelectasis",  "arterial_calcification"};
  return ids;
}

const std::string& findingId(Finding f) { return findingIds()[static_cast<size_t>(f)]; }

std::optional<Finding> findingFromId(const std::string& id) {
  for (int i = 0; i < kNumFindings; ++i)
    if (findingIds()[static_cast<size_t>(i)] == id) return static_cast<Finding>(i);
  return std::nullopt;
}

const std::map<std::string, double>& defaultFindingRates() {
  static const std::map<std::string, double> rates = {{"lung_nodule", 0.3},       {"lung_mass", 0.1},
                                                      {"pleural_effusion", 0.25}, {"pneumothorax", 0.12},
                                                      {"consolidation", 0.2},     {"emphysema", 0.2},
                                                      {"cardiomegaly", 0.2},      {"pericardial_effusion", 0.12},
                                                      {"atelectasis", 0.25},      {"arterial_calcification", 0.3}};
  return rates;
}

std::array<double, kNumFindings> resolveFindingRates(const std::map<std::string, double>& userRates) {
  std::array<double, kNumFindings> r{};
  for (int i = 0; i < kNumFindings; ++i)
    r[static_cast<size_t>(i)] = defaultFindingRates().at(findingIds()[static_cast<size_t>(i)]);
  for (const auto& [id, rate] : userRates) {
    const auto f = findingFromId(id);
    if (!f) {
      std::string all;
      for (const auto& s : findingIds()) all += (all.empty() ? "" : ", ") + s;
      BIUD_THROW(ConfigError, "synth.finding_rates: unknown finding `{}`; the findings are: {}", id, all);
    }
    BIUD_CHECK(rate >= 0 && rate <= 1, ConfigError, "synth.finding_rates.{} = {}: must be in [0, 1]", id, rate);
    r[static_cast<size_t>(*f)] = rate;
  }
  return r;
}

const char* sideName(Side s) {
  switch (s) {
    case Side::Right:
      return "right";
    case Side::Left:
      return "left";
    case Side::Bilateral:
      return "bilateral";
    default:
      return "";
  }
}

Labels sampleLabels(Rng& rng, double healthyFraction, const std::array<double, kNumFindings>& rates) {
  Labels l{};
  if (rng.uniform() < healthyFraction) return l;
  double total = 0;
  for (double r : rates) total += r;
  if (total <= 0) return l;  // every rate 0: only healthy studies can exist
  for (int i = 0; i < kNumFindings; ++i)
    l[static_cast<size_t>(i)] = rng.uniform() < rates[static_cast<size_t>(i)] ? 1 : 0;
  bool any = false;
  for (int v : l) any = any || v;
  if (!any) {
    // A non-healthy study has at least one finding: draw one in proportion to the rates.
    double u = rng.uniform(0, total);
    for (int i = 0; i < kNumFindings; ++i) {
      u -= rates[static_cast<size_t>(i)];
      if (u <= 0 || i == kNumFindings - 1) {
        if (rates[static_cast<size_t>(i)] > 0) {
          l[static_cast<size_t>(i)] = 1;
          break;
        }
      }
    }
    bool set = false;
    for (int v : l) set = set || v;
    if (!set)
      for (int i = kNumFindings - 1; i >= 0 && !set; --i)
        if (rates[static_cast<size_t>(i)] > 0) l[static_cast<size_t>(i)] = 1, set = true;
  }
  return l;
}

}  // namespace biud::synth
