// The terminal table of a classification report: exact formatting of known values, and NaN (no
// crash) for whatever an evaluation could not compute — no bootstrap CI (bootstrap = 0 writes an
// empty list), a finding with one class, a report without `macro`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/evaluate/CtEval.h"

namespace biud::test {
namespace {

TEST(ClassificationTable, FormatsValuesAndToleratesMissingOnes) {
  const auto j = nlohmann::json::parse(R"({
    "per_label": {
      "a": {"auroc": 0.8126, "auroc_ci": [0.75, 0.875], "ap": 0.5, "f1": 0.25},
      "b": {"auroc": null, "auroc_ci": [], "ap": 0.1},
      "c": {}
    },
    "macro": {"auroc": 0.8126}
  })");
  const auto t = evaluate::classificationTable(j, {"a", "b", "c", "not_evaluated"});
  EXPECT_NE(t.find("  a                         0.813  [0.750, 0.875]   0.500   0.250\n"), std::string::npos) << t;
  EXPECT_NE(t.find("  b                           nan  [  nan,   nan]   0.100     nan\n"), std::string::npos) << t;
  EXPECT_NE(t.find("  c                           nan  [  nan,   nan]     nan     nan\n"), std::string::npos) << t;
  EXPECT_EQ(t.find("not_evaluated"), std::string::npos);
  EXPECT_NE(t.find("  macro                     0.813\n"), std::string::npos) << t;
  // Not even a report: still a table, never undefined behaviour.
  EXPECT_NE(evaluate::classificationTable(nlohmann::json::array(), {"a"}).find("macro"), std::string::npos);
}

}  // namespace
}  // namespace biud::test
