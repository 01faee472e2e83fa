// CSV against Python's csv module (an independent RFC 4180 implementation) and hand cases.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "common/TestUtil.h"

using namespace biud;

TEST(Csv, HandCases) {
  const auto t = csv::parse(
      "\xEF\xBB\xBFid,report,label\r\n1,\"No effusion, no nodule.\",0\n\n2,\"He said \"\"hi\"\"\nnext line\",1\n3,,\n",
      "m.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"id", "report", "label"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][1], "No effusion, no nodule.");
  EXPECT_EQ(t.rows[1][1], "He said \"hi\"\nnext line");
  EXPECT_EQ(t.rows[2], (std::vector<std::string>{"3", "", ""}));
  EXPECT_EQ(t.lines, (std::vector<std::size_t>{2, 4, 6}));
  EXPECT_EQ(t.require("label"), 2u);
  try {
    t.require("split");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "`m.csv` has no column `split` (columns: id, report, label)");
  }
  try {
    csv::parse("a,b\n1,2,3\n", "x.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "`x.csv` line 2: 3 fields, but the header has 2 (a,b)");
  }
  EXPECT_THROW(csv::parse("a\n\"open\n", "y.csv"), DataError);
  EXPECT_THROW(csv::parse("", "z.csv"), DataError);
}

TEST(Csv, RoundTripThroughPythonCsvModule) {
  test::TempDir d;
  std::vector<std::vector<std::string>> rows = {{"a", "plain"},       {"b", "comma, inside"}, {"c", "quote \" inside"},
                                                {"d", "multi\nline"}, {"e", " padded "},      {"f", ""}};
  csv::write((d / "t.csv").string(), {"id", "text"}, rows);
  test::writeText(d / "r.py",
                  "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))\n");
  auto r = test::run(test::quote(test::python()) + " " + (d / "r.py").string() + " " + (d / "t.csv").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto py = nlohmann::json::parse(r.out).get<std::vector<std::vector<std::string>>>();
  ASSERT_EQ(py.size(), rows.size() + 1);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(py[i + 1], rows[i]);
  // And we read back what we wrote.
  const auto t = csv::read((d / "t.csv").string());
  EXPECT_EQ(t.rows, rows);
}

// Issue 20: a column name given twice used to be read from one copy silently (csv::Table::find
// returns the first, a manifest's name -> value map keeps the last). Positions are 1-based.
TEST(Csv, DuplicatedHeaderNameIsAnErrorNamingBothPositions) {
  auto errorOf = [](const std::string& text, const std::string& source) {
    try {
      csv::parse(text, source);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(errorOf("id,label,label\n1,0,1\n", "labels.csv"),
            "`labels.csv` line 1: column `label` appears twice in the header (columns 2 and 3); rename or delete one "
            "of them (a reader would otherwise use one copy and silently ignore the other)");
  // Names are compared after trimming: ` a` and `a` are one column for every reader that trims.
  EXPECT_EQ(errorOf("x, a,b,a \n1,2,3,4\n", "t.csv"),
            "`t.csv` line 1: column `a` appears twice in the header (columns 2 and 4, written ` a` and `a `); rename "
            "or delete one of them (a reader would otherwise use one copy and silently ignore the other)");
  // The header's own line (blank lines and a byte-order mark before it).
  EXPECT_EQ(errorOf("\xEF\xBB\xBF\n\nid,id\n", "b.csv").substr(0, 72),
            "`b.csv` line 3: column `id` appears twice in the header (columns 1 and 2");
  // Empty header cells are not names: a pandas index column (and two of them) is fine.
  const auto t = csv::parse(",,a\n0,1,2\n", "p.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"", "", "a"}));
  EXPECT_EQ(t.require("a"), 2u);
  // Case matters (as in find()): `ID` and `id` are two columns.
  EXPECT_EQ(csv::parse("id,ID\n1,2\n", "c.csv").header.size(), 2u);
  // And through csv::read (every importer's table reader).
  test::TempDir d;
  test::writeText(d / "meta.csv", "VolumeName,XYSpacing,ZSpacing,XYSpacing\nv,0.7,1.5,0.8\n");
  EXPECT_THROW(csv::read((d / "meta.csv").string()), DataError);
  try {
    csv::read((d / "meta.csv").string());
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("meta.csv` line 1: column `XYSpacing` appears twice in the header (columns 2 "
                                         "and 4)"),
              std::string::npos)
        << e.what();
  }
}
