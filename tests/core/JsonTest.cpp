// fs::parseJson / fs::readJsonFile (issue 20): a damaged JSON file names itself, the parser's line
// and column, and what to do; an object with a key twice is refused (nlohmann::json, like Python's
// json module, keeps the last silently). Line/column values are worked out by hand from the texts.
#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/Json.h"
#include "common/TestUtil.h"

using namespace biud;

namespace {

template <class F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Json, ParsesAndNamesTheFileOnSyntaxErrors) {
  test::TempDir d;
  test::writeText(d / "ok.json", "{\"task\": \"biud\", \"step\": 40, \"ids\": [\"a\", \"b\"]}");
  const auto j = fs::readJsonFile(d / "ok.json", "training state");
  EXPECT_EQ(j.at("task"), "biud");
  EXPECT_EQ(j.at("step"), 40);
  EXPECT_EQ(j.at("ids").size(), 2u);

  // A trailing comma: the parser stops at the `}` on line 3, column 1.
  const auto bad = d / "state.json";
  test::writeText(bad, "{\n  \"step\": 40,\n}\n");
  const std::string m = errorOf([&] { fs::readJsonFile(bad, "training state of a checkpoint"); });
  EXPECT_EQ(m.rfind("`" + bad.string() +
                        "`: not valid JSON (training state of a checkpoint): parse error at line 3, "
                        "column 1: syntax error while parsing object key",
                    0),
            0u)
      << m;
  EXPECT_EQ(m.substr(m.size() - 18), ". Fix or delete it") << m;
  EXPECT_THROW(fs::readJsonFile(bad, "x"), DataError);

  // Truncated (a write cut short): the end of input, on line 2 after `40`.
  test::writeText(bad, "{\n  \"step\": 40");
  EXPECT_NE(errorOf([&] {
              fs::readJsonFile(bad, "s", "Resume from an earlier step");
            }).find("parse error at line 2, column 13: syntax error while parsing object - unexpected end of input"),
            std::string::npos);
  EXPECT_NE(
      errorOf([&] { fs::readJsonFile(bad, "s", "Resume from an earlier step"); }).find(". Resume from an earlier step"),
      std::string::npos);

  // Empty (a disk that filled up): said in words.
  test::writeText(bad, "\n");
  EXPECT_EQ(errorOf([&] { fs::readJsonFile(bad, "training state"); }),
            "`" + bad.string() + "`: not valid JSON (training state): the file is empty. Fix or delete it");

  // Missing: IoError naming the file.
  EXPECT_THROW(fs::readJsonFile(d / "missing.json", "x"), IoError);
}

TEST(Json, KeyTwiceInOneObjectIsAnErrorWithItsPath) {
  EXPECT_EQ(errorOf([] { fs::parseJson("{\"label\": 1, \"label\": 0}", "m.json", "record"); }),
            "`m.json`: not valid JSON (record): key `label` is written twice in the same object (a JSON reader keeps "
            "only one of them, silently). Fix or delete it");
  // The path through objects and arrays: a.b[1].c (element 1 of b; element 0 is the number 1).
  EXPECT_NE(errorOf([] {
              fs::parseJson(R"({"a": {"b": [1, {"c": 1, "d": [], "c": 2}]}})", "n.json", "x");
            }).find("key `a.b[1].c` is written twice"),
            std::string::npos);
  // Elements after nested arrays and objects are counted too: x[2].k.
  EXPECT_NE(errorOf([] {
              fs::parseJson(R"({"x": [[1, 2], {"k": 1}, {"k": 1, "k": 2}]})", "n.json", "x");
            }).find("key `x[2].k` is written twice"),
            std::string::npos);
  // The same key in different objects is fine.
  const auto j = fs::parseJson(R"({"a": {"k": 1}, "b": {"k": 2}, "c": [{"k": 3}, {"k": 4}]})", "ok.json", "x");
  EXPECT_EQ(j.at("c").at(1).at("k"), 4);
}

TEST(Json, OneRecordOfAJsonLinesFile) {
  // Line 7 of the file; inside the record the parser's column is kept (the `}` at column 10).
  EXPECT_EQ(errorOf([] { fs::parseJson("{\"id\": 1,}", "m.jsonl", "manifest record", {}, 7); }),
            "`m.jsonl` line 7: not valid JSON (manifest record): parse error at column 10: syntax error while parsing "
            "object key - unexpected '}'; expected string literal. Fix or delete it");
  EXPECT_EQ(errorOf([] { fs::parseJson("{\"id\": \"a\", \"id\": \"b\"}", "m.jsonl", "manifest record", {}, 2); }),
            "`m.jsonl` line 2: not valid JSON (manifest record): key `id` is written twice in the same object (a JSON "
            "reader keeps only one of them, silently). Fix or delete it");
}

}  // namespace
