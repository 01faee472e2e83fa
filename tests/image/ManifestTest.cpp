// Manifests: CSV/JSONL parsing by hand-written files, errors, CT-RATE and MIMIC-CXR layouts.
#include <cmath>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/image/Manifest.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Manifest, CsvWithQuotesLabelsAndRelativePaths) {
  TempDir t("man");
  writeText(t / "sub/m.csv",
            "id,image,findings,impression,split,patient,Effusion,Nodule\n"
            "a,vol/a.nii.gz,\"Left effusion, small.\nNo nodule.\",\"He said \"\"ok\"\"\",train,p1,1,0\n"
            "b,/abs/b.nii.gz;x/b2.png,,,val,,,1.0\n");
  auto m = image::readManifest((t / "sub/m.csv").string());
  ASSERT_EQ(m.items.size(), 2u);
  EXPECT_EQ(m.labelNames, (std::vector<std::string>{"Effusion", "Nodule"}));
  const auto& a = m.items[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(a.images[0], (t / "sub/vol/a.nii.gz").string());
  EXPECT_EQ(a.findings, "Left effusion, small.\nNo nodule.");
  EXPECT_EQ(a.impression, "He said \"ok\"");
  EXPECT_EQ(a.text(), "Left effusion, small.\nNo nodule. He said \"ok\"");
  EXPECT_EQ(a.labels, (std::vector<float>{1, 0}));
  EXPECT_EQ(a.group(), "p1");
  const auto& b = m.items[1];
  EXPECT_EQ(b.line, 4);  // the quoted newline makes record 1 span lines 2-3
  EXPECT_EQ(b.images, (std::vector<std::string>{"/abs/b.nii.gz", (t / "sub/x/b2.png").string()}));
  EXPECT_TRUE(std::isnan(b.labels[0]));
  EXPECT_EQ(b.labels[1], 1.0f);
  EXPECT_EQ(b.group(), "b");
  EXPECT_EQ(m.indicesOf("val"), (std::vector<size_t>{1}));
  // Write and read back.
  image::writeManifestCsv((t / "out.csv").string(), m);
  auto m2 = image::readManifest((t / "out.csv").string());
  EXPECT_EQ(m2.items[0].findings, a.findings);
  EXPECT_EQ(m2.items[1].images, b.images);
  EXPECT_EQ(m2.labelNames, m.labelNames);
}

TEST(Manifest, Jsonl) {
  TempDir t("jl");
  writeText(t / "m.jsonl",
            "{\"id\": \"a\", \"image\": [\"x.nii.gz\", \"y.png\"], \"report\": \"r\", \"Effusion\": 1}\n"
            "\n"
            "{\"id\": \"b\", \"image\": \"z.nii.gz\", \"report\": \"s\", \"Effusion\": null}\n");
  auto m = image::readManifest((t / "m.jsonl").string());
  ASSERT_EQ(m.items.size(), 2u);
  EXPECT_EQ(m.items[0].images.size(), 2u);
  EXPECT_EQ(m.items[0].text(), "r");
  EXPECT_EQ(m.items[0].labels[0], 1.0f);
  EXPECT_TRUE(std::isnan(m.items[1].labels[0]));
  EXPECT_EQ(m.items[1].line, 3);
}

TEST(Manifest, ErrorsNameFileColumnAndLine) {
  TempDir t("err");
  writeText(t / "noimg.csv", "id,report\na,x\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "noimg.csv").string()); }).find("required column `image` missing"),
            std::string::npos);
  writeText(t / "badlabel.csv", "id,image,Site\na,x.nii,Boston\n");
  const std::string e = errorOf([&] { image::readManifest((t / "badlabel.csv").string()); });
  EXPECT_NE(e.find("column `Site`"), std::string::npos) << e;
  EXPECT_NE(e.find("badlabel.csv"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  image::ManifestOptions o;
  o.ignore = {"Site"};
  EXPECT_EQ(image::readManifest((t / "badlabel.csv").string(), o).labelNames.size(), 0u);
  o = {};
  o.labels = {"Effusion"};
  EXPECT_NE(errorOf([&] { image::readManifest((t / "badlabel.csv").string(), o); }).find("label column `Effusion`"),
            std::string::npos);
  writeText(t / "dup.csv", "id,image\na,x\na,y\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "dup.csv").string()); }).find("duplicate id `a`"),
            std::string::npos);
  writeText(t / "ragged.csv", "id,image\na,x,extra\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "ragged.csv").string()); }).find("3 fields"), std::string::npos);
  writeText(t / "open.csv", "id,image\na,\"x\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "open.csv").string()); }).find("never closed"), std::string::npos);
  writeText(t / "m.jsonl", "{\"id\": \"a\", \"image\": \"x\"}\n{\"id\": \"b\", \"image\": \"y\", \"Extra\": 1}\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "m.jsonl").string()); }).find("unknown key `Extra`"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { image::readManifest((t / "none.csv").string()); }).find("does not exist"), std::string::npos);
}

// Issue 20: a label column written twice was read from its second copy (the record's name ->
// value map keeps the last), so `Effusion` below read 1 for `a` although its first column says 0.
TEST(Manifest, DuplicatedOrNamelessColumnIsAnError) {
  TempDir t("dupcol");
  writeText(t / "m.csv", "id,image,Effusion,Nodule,Effusion\na,x.nii.gz,0,1,1\n");
  EXPECT_EQ(errorOf([&] { image::readManifest((t / "m.csv").string()); }),
            "`" + (t / "m.csv").string() +
                "` line 1: column `Effusion` appears twice in the header (columns 3 and 5); rename or delete one of "
                "them (a reader would otherwise use one copy and silently ignore the other)");
  // ` id` is `id` once trimmed (the manifest trims its column names).
  writeText(t / "s.csv", "id,image, id\na,x.nii.gz,b\n");
  EXPECT_NE(errorOf([&] {
              image::readManifest((t / "s.csv").string());
            }).find("column `id` appears twice in the header (columns 1 and 3, written `id` and ` id`)"),
            std::string::npos);
  // A column without a name (a pandas index) would have become a label called "".
  writeText(t / "p.csv", ",id,image\n0,a,x.nii.gz\n");
  EXPECT_EQ(errorOf([&] { image::readManifest((t / "p.csv").string()); }),
            "manifest `" + (t / "p.csv").string() +
                "` line 1: column 1 of the header has no name; name it (or delete the column: a pandas index has no "
                "name, write the table with to_csv(index=False))");
  // Gzip-compressed manifests go through the same check (same text inflated).
  const auto gz = t / "m.csv.gz";
  ASSERT_EQ(run("gzip -c " + quote((t / "m.csv").string()) + " > " + quote(gz.string())).rc, 0);
  EXPECT_NE(errorOf([&] { image::readManifest(gz.string()); }).find("column `Effusion` appears twice"),
            std::string::npos);
}

// A `.tsv` manifest is split at tabs (it was split at commas, so its header was one column).
// Issue 20 (fuzzing finding F1): an id that is not UTF-8 (a Latin-1 manifest) used to pass here
// and kill biud-preprocess at its very end, when index.json was written. Now the manifest says so.
TEST(Manifest, IdThatIsNotUtf8IsAnErrorNamingTheLine) {
  TempDir t("mfutf8");
  writeText(t / "m.csv", std::string("id,image\nok,a.nii\ncaf\xe9,b.nii\n"));
  try {
    image::readManifest((t / "m.csv").string());
    ADD_FAILURE() << "a Latin-1 id was accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("line 3"), std::string::npos) << m;
    EXPECT_NE(m.find("not valid UTF-8"), std::string::npos) << m;
  }
  writeText(t / "u.csv", std::string("id,image\ncaf\xc3\xa9,b.nii\n"));  // the same id in UTF-8
  EXPECT_EQ(image::readManifest((t / "u.csv").string()).items.at(0).id, "caf\xc3\xa9");
}

TEST(Manifest, TsvIsSplitAtTabs) {
  TempDir t("tsv");
  writeText(t / "m.tsv", "id\timage\tfindings\tEffusion\na\tx.nii.gz\tSmall effusion, left.\t1\n");
  const auto m = image::readManifest((t / "m.tsv").string());
  ASSERT_EQ(m.items.size(), 1u);
  EXPECT_EQ(m.labelNames, (std::vector<std::string>{"Effusion"}));
  EXPECT_EQ(m.items[0].findings, "Small effusion, left.");
  EXPECT_EQ(m.items[0].labels, (std::vector<float>{1}));
  writeText(t / "d.tsv", "id\timage\tid\na\tx\tb\n");
  EXPECT_NE(errorOf([&] { image::readManifest((t / "d.tsv").string()); })
                .find("column `id` appears twice in the header "
                      "(columns 1 and 3)"),
            std::string::npos);
}

// The JSONL counterpart: nlohmann::json keeps the last of two equal keys (as Python's json does),
// so `{"Effusion": 0, ..., "Effusion": 1}` read 1. Now an error naming the file, line and key; a
// syntax error names the line and the column within it.
TEST(Manifest, JsonlKeyTwiceOrBrokenRecordNamesLine) {
  TempDir t("dupkey");
  writeText(t / "m.jsonl",
            "{\"id\": \"a\", \"image\": \"x\", \"Effusion\": 1}\n"
            "{\"id\": \"b\", \"image\": \"y\", \"Effusion\": 0, \"Effusion\": 1}\n");
  EXPECT_EQ(errorOf([&] { image::readManifest((t / "m.jsonl").string()); }),
            "`" + (t / "m.jsonl").string() +
                "` line 2: not valid JSON (manifest record): key `Effusion` is written twice in the same object (a "
                "JSON reader keeps only one of them, silently). Fix or delete it");
  // Line 3 (after a blank line); the record's `}` follows a comma, at column 26.
  writeText(t / "b.jsonl", "{\"id\": \"a\", \"image\": \"x\"}\n\n{\"id\": \"b\", \"image\": \"y\",}\n");
  EXPECT_EQ(errorOf([&] { image::readManifest((t / "b.jsonl").string()); }),
            "`" + (t / "b.jsonl").string() +
                "` line 3: not valid JSON (manifest record): parse error at column 26: syntax error while parsing "
                "object key - unexpected '}'; expected string literal. Fix or delete it");
}

// The release layouts (CT-RATE, MIMIC-CXR-JPG) are read by the importers: tests/image/ImportTest.cpp.

}  // namespace
}  // namespace biud::test
