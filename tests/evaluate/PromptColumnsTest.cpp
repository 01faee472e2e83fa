// Zero-shot validation of a biud task on a manifest whose label columns carry CT-RATE's names
// (`Lung nodule`, `Medical material`) with configs/prompts/ct_rate.yaml: the columns find their
// prompts by name and score exactly what the same columns named by their prompt ids score; a
// prompt set that matches no column stops the task when it is built, naming both sides.
#include <cmath>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/text/Prompts.h"
#include "biud/train/Task.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

/// TinyWorld's CT manifest with its `lung_nodule` column renamed to `nodule` and a second label
/// column `material` = 1 - lung_nodule added.
void relabel(const TinyWorld& w, const std::string& nodule, const std::string& material) {
  auto text = readText(w.cfg.data.manifest);
  std::string out;
  std::size_t at = 0;
  bool header = true;
  while (at < text.size()) {
    const std::size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl - at);
    at = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    if (header) {
      line = std::regex_replace(line, std::regex(",lung_nodule$"), "," + nodule) + ",\"" + material + "\"";
      header = false;
    } else {
      line += line.back() == '1' ? ",0" : ",1";
    }
    out += line + "\n";
  }
  writeText(w.cfg.data.manifest, out);
}

train::Metrics validateWith(TinyWorld& w) {
  train::TaskContext ctx;
  ctx.runDir = (w.dir / "run").string();
  std::filesystem::create_directories(ctx.runDir);
  train::registerBuiltinTasks();
  torch::manual_seed(5);
  auto task = train::makeTask("biud", w.cfg, ctx);
  return task->validate();
}

TEST(PromptColumns, CtRateNamesMatchAndScoreLikeTheIds) {
  std::map<std::string, train::Metrics> got;
  for (const auto& [nodule, material] :
       {std::pair<std::string, std::string>{"Lung nodule", "Medical material"}, {"lung_nodule", "medical_material"}}) {
    TinyWorld w;
    w.cfg.task = "biud";
    w.cfg.eval.prompts = (sourceDir() / "configs/prompts/ct_rate.yaml").string();
    relabel(w, nodule, material);
    const auto m = image::readManifest(w.cfg.data.manifest);
    ASSERT_EQ(m.labelNames, (std::vector<std::string>{nodule, material}));
    got[nodule] = validateWith(w);
  }
  const auto& real = got["Lung nodule"];
  const auto& ids = got["lung_nodule"];
  // Keys carry the data set's own names; the numbers equal the id-named run's (same weights, same prompts).
  ASSERT_TRUE(real.count("auroc/Lung nodule") && real.count("auroc/Medical material")) << "validation computed nothing";
  EXPECT_DOUBLE_EQ(real.at("auroc/Lung nodule"), ids.at("auroc/lung_nodule"));
  EXPECT_DOUBLE_EQ(real.at("auroc/Medical material"), ids.at("auroc/medical_material"));
  EXPECT_DOUBLE_EQ(real.at("auroc_macro"), ids.at("auroc_macro"));
  EXPECT_TRUE(std::isfinite(real.at("auroc_macro")));
  EXPECT_DOUBLE_EQ(real.at("auroc_macro"), 0.5 * (real.at("auroc/Lung nodule") + real.at("auroc/Medical material")));
}

TEST(PromptColumns, UnmatchedPromptsStopTheTaskNamingBothSides) {
  TinyWorld w;
  w.cfg.task = "biud";
  w.cfg.eval.prompts = (sourceDir() / "configs/prompts/synthetic.yaml").string();
  relabel(w, "Hiatal hernia", "Medical material");
  try {
    validateWith(w);
    ADD_FAILURE() << "the task was built";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    for (const char* s : {"`Hiatal hernia`, `Medical material`", "lung_nodule", "synthetic.yaml", "ct.csv"})
      EXPECT_NE(m.find(s), std::string::npos) << s << " not in: " << m;
  }
}

// CT-CLIP's prompt pair per column, named after the matching finding (or the column).
TEST(PromptColumns, CtClipPromptsUseTheFindingNames) {
  const auto named = text::PromptSet::load((sourceDir() / "configs/prompts/ct_rate.yaml").string());
  const auto ps = evaluate::ctClipPromptSet({"lung_nodule", "Age"}, &named);
  ASSERT_EQ(ps.findings.size(), 2u);
  // A finding without an explicit name (name = id) leaves the column's own name in the prompt.
  const auto bare = text::PromptSet::fromString("findings: [{id: lung_nodule, positive: [x], negative: [y]}]");
  EXPECT_EQ(evaluate::ctClipPromptSet({"Lung nodule"}, &bare).at("Lung nodule").positive,
            std::vector<std::string>{"Lung nodule is present."});
  EXPECT_EQ(ps.at("lung_nodule").positive, std::vector<std::string>{"Lung nodule is present."});
  EXPECT_EQ(ps.at("lung_nodule").negative, std::vector<std::string>{"Lung nodule is not present."});
  EXPECT_EQ(ps.at("Age").positive, std::vector<std::string>{"Age is present."});
}

}  // namespace
}  // namespace biud::test
