// app::parseRunList: the one `[NAME=]PATH` parser of --run / --pred, rule by rule
// (biud/core/RunList.h), on values worked out by hand against real files and folders.
#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/RunList.h"
#include "common/TestUtil.h"

using biud::app::NamedPath;
using biud::app::parseNamedPath;
using biud::app::parseRunList;

namespace {
void expectNamed(const NamedPath& np, const std::string& name, const std::string& path) {
  EXPECT_EQ(np.name, name) << np.path;
  EXPECT_EQ(np.path, path);
}
}  // namespace

TEST(RunList, NameEqualsPathSplitsAtTheFirstEquals) {
  expectNamed(parseNamedPath("base=runs/a"), "base", "runs/a");
  expectNamed(parseNamedPath("lr=3e-4=runs/b"), "lr", "3e-4=runs/b");  // first `=` only
  expectNamed(parseNamedPath("m=preds/x.csv", "--pred"), "m", "preds/x.csv");
}

TEST(RunList, PathAloneIsNamedAfterItsLastComponent) {
  biud::test::TempDir t("runlist");
  biud::test::writeText(t / "preds" / "model_a.csv", "id,a\n");
  biud::test::writeText(t / "runs" / "biud-0.5" / "config.resolved.yaml", "");
  // An existing regular file loses its extension; a folder keeps its whole name (dots included).
  expectNamed(parseNamedPath((t / "preds" / "model_a.csv").string()), "model_a",
              (t / "preds" / "model_a.csv").string());
  expectNamed(parseNamedPath((t / "runs" / "biud-0.5").string()), "biud-0.5", (t / "runs" / "biud-0.5").string());
  // Trailing slashes are ignored for the name and kept in the path.
  const std::string slash = (t / "runs" / "biud-0.5").string() + "//";
  expectNamed(parseNamedPath(slash), "biud-0.5", slash);
  // A path that does not exist (yet) keeps its last component as it is.
  expectNamed(parseNamedPath("runs/missing.d"), "missing.d", "runs/missing.d");
}

TEST(RunList, ExistingPathWithEqualsIsOnePath) {
  biud::test::TempDir t("runlist-eq");
  const auto dir = t / "lr=3e-4";
  biud::test::writeText(dir / "x.txt", "");
  expectNamed(parseNamedPath(dir.string()), "lr=3e-4", dir.string());
  // The same text naming nothing on disk is NAME=PATH.
  expectNamed(parseNamedPath((t / "lr=nothing").string()), (t / "lr").string(), "nothing");
}

TEST(RunList, EmptyPartsAreConfigErrorsNamingFlagAndValue) {
  for (const std::string v : {"=runs/a", "name=", "", "/"}) {
    try {
      parseNamedPath(v, "--run");
      ADD_FAILURE() << "no error for `" << v << "`";
    } catch (const biud::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--run"), std::string::npos) << e.what();
    }
  }
}

TEST(RunList, ListKeepsOrderAndRefusesTwinNames) {
  const auto l = parseRunList({"b=runs/x", "a=runs/y", "runs/z/"}, "--run");
  ASSERT_EQ(l.size(), 3u);
  expectNamed(l[0], "b", "runs/x");
  expectNamed(l[1], "a", "runs/y");
  expectNamed(l[2], "z", "runs/z/");
  try {
    parseRunList({"runs/a", "other/a"}, "--pred");
    ADD_FAILURE() << "two values named `a` were accepted";
  } catch (const biud::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("`runs/a` and `other/a` are both named `a`"), std::string::npos) << m;
    EXPECT_NE(m.find("--pred"), std::string::npos) << m;
  }
  EXPECT_TRUE(parseRunList({}).empty());
}
