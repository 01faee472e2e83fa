// Every shipped recipe in configs/ loads with the strict config reader (a renamed key or a bad
// value in a recipe fails here, not in a user's run), and the ablation variants switch off
// exactly the terms their names say.
#include <filesystem>

#include <gtest/gtest.h>

#include "biud/config/Config.h"
#include "common/TestUtil.h"

using namespace biud;
namespace stdfs = std::filesystem;

TEST(Recipes, EveryShippedRecipeLoads) {
  const auto root = test::sourceDir() / "configs";
  int n = 0;
  for (const auto& e : stdfs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file() || e.path().extension() != ".yaml") continue;
    const auto rel = stdfs::relative(e.path(), root).string();
    // Lexicons and prompt sets are not run configs (they have their own readers and tests).
    if (rel.rfind("lexicon/", 0) == 0 || rel.rfind("prompts/", 0) == 0) continue;
    if (rel == "regime/findings.yaml") continue;  // the regime script's finding groups, not a recipe
    EXPECT_NO_THROW(loadConfig(e.path().string(), {})) << rel;
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(Recipes, AblationVariantsSwitchOffTheirTerms) {
  const auto dir = test::sourceDir() / "configs" / "ablation";
  auto load = [&](const std::string& v) { return loadConfig((dir / (v + ".yaml")).string(), {}); };
  const auto clip = load("clip"), roco = load("roco"), pair = load("roco_pair"), sem = load("roco_pair_sem"),
             full = load("full");
  EXPECT_EQ(clip.loss.roco.mode, "none");
  EXPECT_EQ(roco.loss.roco.mode, full.loss.roco.mode);
  EXPECT_NE(full.loss.roco.mode, "none");
  for (const auto* c : {&clip, &roco}) EXPECT_EQ(c->loss.pair.weight + c->loss.sem.weight + c->loss.efm.weight, 0.0);
  EXPECT_GT(pair.loss.pair.weight, 0.0);
  EXPECT_EQ(pair.loss.sem.weight + pair.loss.efm.weight, 0.0);
  EXPECT_GT(sem.loss.sem.weight, 0.0);
  EXPECT_EQ(sem.loss.efm.weight, 0.0);
  EXPECT_GT(full.loss.efm.weight, 0.0);
  // Everything else (data, model, budget) is the quickstart's, but every variant caches the CT at
  // the ablation's coarser grid (configs/ablation/base.yaml), the same for all.
  const auto q = loadConfig((test::sourceDir() / "configs" / "quickstart.yaml").string(), {});
  for (const auto* c : {&clip, &roco, &pair, &sem, &full}) {
    EXPECT_EQ(c->trainer.steps, q.trainer.steps);
    EXPECT_EQ(c->model.ct_encoder.arch, q.model.ct_encoder.arch);
    EXPECT_EQ(c->model.ct_encoder.preset, q.model.ct_encoder.preset);
    // ... with the 7-slice stem the ablation was measured with; the quickstart's is 3 slices.
    EXPECT_EQ(c->model.ct_encoder.stem_kernel_depth, 7);
    EXPECT_EQ(c->model.text_encoder.weights, q.model.text_encoder.weights);
    EXPECT_EQ(c->data.manifest, q.data.manifest);
    EXPECT_EQ(c->data.pairing, q.data.pairing);
    EXPECT_EQ(c->data.ct.spacing, (std::vector<double>{3.0, 3.0, 6.0}));
    EXPECT_EQ(c->data.ct.size, (std::vector<int>{64, 64, 32}));
    EXPECT_EQ(c->data.cache_dir, "runs/ablation/cache");
    EXPECT_EQ(c->data.ct.crop, q.data.ct.crop);  // the rest of data.ct comes from the quickstart
  }
}

// The quickstart's BIUD stage changes only the loop (trainer, optimizer): same data, models and
// losses as the recipe the teacher and retrieval ran with (a key moved out of those sections
// would silently fork them).
TEST(Recipes, QuickstartBiudStageDiffersOnlyInTheLoop) {
  auto q = loadConfig((test::sourceDir() / "configs" / "quickstart.yaml").string(), {});
  EXPECT_EQ(q.model.ct_encoder.stem_kernel_depth, 3);
  // The regime benchmark keeps the 7-slice stem its tables were measured with.
  const auto r = loadConfig((test::sourceDir() / "configs" / "regime" / "base.yaml").string(), {});
  EXPECT_EQ(r.model.ct_encoder.stem_kernel_depth, 7);
  EXPECT_EQ(r.model.ct_encoder.arch, q.model.ct_encoder.arch);
  auto b = loadConfig((test::sourceDir() / "configs" / "quickstart-biud.yaml").string(), {});
  EXPECT_EQ(b.task, "biud");
  EXPECT_GT(b.trainer.ema, 0.0);
  EXPECT_EQ(q.trainer.ema, 0.0);                  // the teacher (and the ablation) train without the average
  EXPECT_EQ(b.optimizer.lr, 2 * q.optimizer.lr);  // chosen on the validation split (docs/STATUS.md, session 16)
  b.task = q.task;
  b.trainer = q.trainer;
  b.optimizer = q.optimizer;
  EXPECT_EQ(config::toYaml(b), config::toYaml(q));
}
