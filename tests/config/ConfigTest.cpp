// The typed config: strict reading, messages that name key, value, file and line, includes and
// overrides. Expected messages are written out by hand.
#include <gtest/gtest.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "common/TestUtil.h"

using biud::Config;
using biud::ConfigError;
using biud::test::TempDir;
using biud::test::writeText;

namespace {

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

}  // namespace

TEST(Config, DefaultsFollowMethod) {
  Config c;
  EXPECT_EQ(c.loss.roco.mode, "soft");
  EXPECT_DOUBLE_EQ(c.loss.roco.temperature_init, 0.07);
  EXPECT_DOUBLE_EQ(c.loss.roco.fn_threshold, 0.92);
  EXPECT_DOUBLE_EQ(c.loss.pair.tau, 0.1);
  EXPECT_DOUBLE_EQ(c.loss.efm.weight, 0.5);
  EXPECT_DOUBLE_EQ(c.loss.efm.p_entity, 0.5);
  EXPECT_EQ(c.model.embed_dim, 512);
  EXPECT_DOUBLE_EQ(c.loss.trimodal.alpha, 0.0);
}

TEST(Config, UnknownKeyNamesFileLineAndSuggests) {
  TempDir d;
  writeText(d / "x.yaml", "task: biud\n\noptimiser:\n  lr: 0.001\n");
  const auto msg = errorOf([&] { biud::loadConfig((d / "x.yaml").string(), {}); });
  EXPECT_EQ(msg, "unknown key `optimiser.lr` in " + (d / "x.yaml").string() + ":4; did you mean `optimizer.lr`?");
}

TEST(Config, UnknownLeafSuggestsSibling) {
  TempDir d;
  writeText(d / "x.yaml", "optimizer:\n  lrr: 0.001\n");
  const auto msg = errorOf([&] { biud::loadConfig((d / "x.yaml").string(), {}); });
  EXPECT_EQ(msg, "unknown key `optimizer.lrr` in " + (d / "x.yaml").string() + ":2; did you mean `optimizer.lr`?");
}

TEST(Config, MisplacedKeySuggestsItsSection) {
  const auto msg = errorOf([&] { biud::loadConfig("", {"warmup_steps=10"}); });
  EXPECT_EQ(msg, "unknown key `warmup_steps` in --set warmup_steps=10; did you mean `schedule.warmup_steps`?");
}

TEST(Config, TypeErrorNamesKeyValueAndExpectation) {
  TempDir d;
  writeText(d / "x.yaml", "optimizer:\n  lr: fast\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "x.yaml").string(), {}); }),
            "config key `optimizer.lr` in " + (d / "x.yaml").string() + ":2: expected a number, got `fast`");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"trainer.steps=1.5"}); }),
            "config key `trainer.steps` in --set trainer.steps=1.5: expected an integer, got `1.5`");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"data.ct.spacing=1.0"}); }),
            "config key `data.ct.spacing` in --set data.ct.spacing=1.0: expected a list of numbers, got `1.0`");
}

TEST(Config, RangeAndChoiceErrors) {
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"optimizer.lr=-1"}); }),
            "config key `optimizer.lr` = -1 in --set optimizer.lr=-1 is out of range: allowed (0, 10]");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"loss.roco.mode=sofft"}); }),
            "config key `loss.roco.mode` = `sofft` in --set loss.roco.mode=sofft is not allowed: use one of none, "
            "remove, soft (did you mean `soft`?)");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"data.ct.spacing=[1,2]"}); }),
            "config key `data.ct.spacing` in --set data.ct.spacing=[1,2]: expected 3 values, got 2");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"data.ct.hu_min=2000"}); }),
            "config key `data.ct.hu_min` in --set data.ct.hu_min=2000: must be below hu_max");
  EXPECT_EQ(errorOf([&] { biud::loadConfig("", {"model.ct_encoder.stem_kernel_depth=4"}); }),
            "config key `model.ct_encoder.stem_kernel_depth` in --set model.ct_encoder.stem_kernel_depth=4: must be "
            "odd (the stem pads depth / 2 slices on each side), got 4");
}

TEST(Config, OverridesWinOverFileAndParseTypes) {
  TempDir d;
  writeText(d / "x.yaml", "optimizer:\n  lr: 0.001\ndata:\n  ct:\n    size: [8, 8, 8]\n");
  Config c = biud::loadConfig((d / "x.yaml").string(),
                              {"optimizer.lr=3e-4", "trainer.steps=20", "optimizer.module_lr={text_encoder: 1e-5}",
                               "data.report_sections=[impression]", "logging.jsonl=false"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-4);
  EXPECT_EQ(c.trainer.steps, 20);
  EXPECT_EQ(c.data.ct.size, (std::vector<int>{8, 8, 8}));
  EXPECT_DOUBLE_EQ(c.optimizer.module_lr.at("text_encoder"), 1e-5);
  EXPECT_EQ(c.data.report_sections, std::vector<std::string>{"impression"});
  EXPECT_FALSE(c.logging.jsonl);
}

TEST(Config, IncludeMergesUnderneathAndResolvesRelativePaths) {
  TempDir d;
  writeText(d / "presets" / "base.yaml", "optimizer:\n  lr: 0.5\n  weight_decay: 0.1\ntrainer:\n  steps: 7\n");
  writeText(d / "presets" / "more.yaml", "include: base.yaml\ntrainer:\n  steps: 8\n");
  writeText(d / "run.yaml", "include: [presets/more.yaml]\noptimizer:\n  lr: 0.25\n");
  Config c = biud::loadConfig((d / "run.yaml").string(), {});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.25);           // the including file wins
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.1);  // deep merge keeps siblings
  EXPECT_EQ(c.trainer.steps, 8);
  // Errors in an included file point at that file.
  writeText(d / "bad.yaml", "trainer:\n  stepz: 3\n");
  writeText(d / "top.yaml", "base: bad.yaml\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "top.yaml").string(), {}); }),
            "unknown key `trainer.stepz` in " + (d / "bad.yaml").string() + ":2; did you mean `trainer.steps`?");
}

TEST(Config, IncludeCycleAndMissingFileAreErrors) {
  TempDir d;
  writeText(d / "a.yaml", "include: b.yaml\n");
  writeText(d / "b.yaml", "include: a.yaml\n");
  EXPECT_NE(errorOf([&] { biud::loadConfig((d / "a.yaml").string(), {}); }).find("include cycle"), std::string::npos);
  writeText(d / "c.yaml", "include: nope.yaml\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "c.yaml").string(), {}); }),
            "config file `" + (d / "nope.yaml").string() + "` not found (included from `" +
                std::filesystem::weakly_canonical(d / "c.yaml").string() + "`)");
}

TEST(Config, YamlSyntaxErrorNamesLine) {
  TempDir d;
  writeText(d / "x.yaml", "trainer:\n  steps: [1, 2\n");
  const auto msg = errorOf([&] { biud::loadConfig((d / "x.yaml").string(), {}); });
  EXPECT_EQ(msg.rfind((d / "x.yaml").string() + ":", 0), 0u) << msg;
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config a = biud::loadConfig(
      "", {"optimizer.lr=0.1", "name=abc", "data.ct.spacing=[0.75,0.75,1.5]", "optimizer.module_lr={bert: 2e-5}"});
  const std::string yaml = biud::config::toYaml(a, /*comments=*/true);
  Config b = biud::config::parse<Config>(biud::config::Document::fromString(yaml));
  EXPECT_EQ(biud::config::toYaml(b), biud::config::toYaml(a));
  EXPECT_DOUBLE_EQ(b.optimizer.lr, 0.1);
  EXPECT_EQ(b.name, "abc");
  EXPECT_EQ(b.data.ct.spacing, (std::vector<double>{0.75, 0.75, 1.5}));
  EXPECT_DOUBLE_EQ(b.optimizer.module_lr.at("bert"), 2e-5);
}

TEST(Config, EveryShippedRecipeLoads) {
  ASSERT_TRUE(std::filesystem::is_directory(biud::test::sourceDir() / "configs"));
  for (const auto& e : std::filesystem::recursive_directory_iterator(biud::test::sourceDir() / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    const auto rel = std::filesystem::relative(e.path(), biud::test::sourceDir() / "configs").string();
    // Lexicons, prompt sets and model presets are not run recipes.
    if (rel.rfind("lexicon", 0) == 0 || rel.rfind("prompts", 0) == 0 || rel.rfind("presets", 0) == 0) continue;
    if (rel == "regime/findings.yaml") continue;  // the regime script's finding groups, not a recipe
    EXPECT_NO_THROW(biud::loadConfig(e.path().string(), {})) << e.path();
  }
}

TEST(ConfigSuggest, EditDistanceByHand) {
  EXPECT_EQ(biud::config::editDistance("kitten", "sitting"), 3);
  EXPECT_EQ(biud::config::editDistance("", "abc"), 3);
  EXPECT_EQ(biud::config::closest("optimiser.lr", {"optimizer.lr", "optimizer.eps"}), "optimizer.lr");
  EXPECT_EQ(biud::config::closest("zzzzzz", {"optimizer.lr"}), "");
}

// Issue 20: a key written twice in one mapping of one file used to be taken silently (the last one
// after the merge). PyYAML does the same (yaml.safe_load("lr: 1\nlr: 2") == {"lr": 2}); ruamel.yaml
// raises DuplicateKeyError; we refuse it with both lines and the key's path. Lines and columns are
// counted by hand in the texts below.
TEST(Config, KeyTwiceInOneMappingIsAnErrorWithBothLines) {
  TempDir d;
  const std::string tail =
      "; a YAML reader keeps only one of them, so delete the one you do not mean (to override a value on purpose, put "
      "it in a file that includes this one, or use --set)";
  writeText(d / "a.yaml", "optimizer:\n  lr: 0.1\n  weight_decay: 0.0\n  lr: 0.2\ntrainer:\n  steps: 3\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "a.yaml").string(), {}); }),
            (d / "a.yaml").string() +
                ":4:3: key `optimizer.lr` is written twice in the same section (first at line 2, "
                "column 3)" +
                tail);
  // A whole section twice at the top level.
  writeText(d / "b.yaml", "trainer:\n  steps: 3\noptimizer:\n  lr: 0.1\ntrainer:\n  steps: 4\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "b.yaml").string(), {}); }),
            (d / "b.yaml").string() +
                ":5:1: key `trainer` is written twice in the same section (first at line 1, "
                "column 1)" +
                tail);
  // A flow mapping on one line; a quoted spelling is the same key.
  writeText(d / "c.yaml", "optimizer: {lr: 0.1, \"lr\": 0.2}\n");
  EXPECT_EQ(errorOf([&] { biud::loadConfig((d / "c.yaml").string(), {}); }),
            (d / "c.yaml").string() +
                ":1:22: key `optimizer.lr` is written twice in the same section (first at line "
                "1, column 13)" +
                tail);
  // Inside a list, the path says which element.
  writeText(d / "e.yaml", "data:\n  labels: [{a: 1, a: 2}]\n");
  EXPECT_NE(errorOf([&] {
              biud::loadConfig((d / "e.yaml").string(), {});
            }).find(":2:19: key `data.labels[0].a` is written twice in the same section (first at line 2, column 13)"),
            std::string::npos);
  // fromString (and so the app's --config text) checks too.
  EXPECT_NE(errorOf([] {
              biud::config::Document::fromString("a: 1\nb: 2\na: 3\n", "s.yaml");
            }).find("s.yaml:3:1: key `a` is written twice"),
            std::string::npos);
  // --set with a mapping value.
  writeText(d / "ok.yaml", "trainer:\n  steps: 3\n");
  EXPECT_NE(errorOf([&] {
              biud::loadConfig((d / "ok.yaml").string(), {"optimizer={lr: 0.1, lr: 0.2}"});
            }).find("key `optimizer.lr` is written twice"),
            std::string::npos);
}

TEST(Config, SameKeyInIncludedAndIncludingFileOrInTwoSectionsIsAllowed) {
  TempDir d;
  // The including file overrides the included one on purpose: not a duplicate.
  writeText(d / "base.yaml", "optimizer:\n  lr: 0.5\ntrainer:\n  steps: 7\n");
  writeText(d / "run.yaml", "include: base.yaml\noptimizer:\n  lr: 0.25\n");
  // `lr` in two different sections, `steps` once in each file.
  writeText(d / "two.yaml",
            "include: base.yaml\noptimizer:\n  lr: 0.3\nschedule:\n  warmup_steps: 2\ntrainer:\n  steps: 9\n");
  const Config c = biud::loadConfig((d / "run.yaml").string(), {"optimizer.lr=0.125"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.125);  // --set wins over both files
  const Config t = biud::loadConfig((d / "two.yaml").string(), {});
  EXPECT_DOUBLE_EQ(t.optimizer.lr, 0.3);
  EXPECT_EQ(t.trainer.steps, 9);
}

TEST(Config, AliasInsideItsOwnAnchorIsAnErrorNotACrash) {
  // yaml-cpp registers an anchor when its node starts, so `*x` inside `&x` makes a cycle.
  EXPECT_NE(
      errorOf([] { biud::config::Document::fromString("a: &x {b: *x}\n", "cyc.yaml"); }).find("nested more than 64"),
      std::string::npos);
}
