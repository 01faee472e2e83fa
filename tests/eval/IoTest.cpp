// CSV parsing (RFC 4180 cases worked by hand), numeric tables, retrieval and plotting primitives.
#include <cmath>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/eval/CsvTable.h"
#include "biud/eval/EvalIo.h"
#include "biud/eval/Plot.h"
#include "biud/eval/Retrieval.h"
#include "common/TestUtil.h"

using namespace biud::eval;

namespace {
std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const biud::Error& e) {
    return e.what();
  }
  return "<no error>";
}
}  // namespace

TEST(Csv, Rfc4180Quoting) {
  const auto t = parseCsv("\xEF\xBB\xBFid,text\r\n1,\"a, \"\"quoted\"\"\r\nline\"\r\n2,plain\n\n3,\n", "x.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"id", "text"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][1], "a, \"quoted\"\r\nline");
  EXPECT_EQ(t.rows[1][1], "plain");
  EXPECT_EQ(t.rows[2][1], "");
  EXPECT_EQ(toCsv(t.header, t.rows), "id,text\n1,\"a, \"\"quoted\"\"\r\nline\"\n2,plain\n3,\n");
}

TEST(Csv, ErrorsNameFileAndLine) {
  EXPECT_EQ(errorOf([] { parseCsv("a,b\n1,2,3\n", "f.csv"); }),
            "f.csv:2: row has 3 fields but the header has 2 (quote fields that contain commas)");
  EXPECT_EQ(errorOf([] { parseCsv("a,b\n1,\"x\n", "f.csv"); }),
            "f.csv:2: unterminated quoted field (a `\"` is never closed)");
  EXPECT_EQ(errorOf([] { parseCsv("a,a\n", "f.csv"); }),
            "`f.csv` line 1: column `a` appears twice in the header (columns 1 and 2); rename or delete one of them (a "
            "reader would otherwise use one copy and silently ignore the other)");
  EXPECT_EQ(errorOf([] { parseCsv("a,b\n1,x\"y\n", "f.csv"); }),
            "f.csv:2: stray quote inside an unquoted field (quote the whole field and double inner quotes)");
  const auto t = parseCsv("id,b\n1,2\n", "f.csv");
  EXPECT_EQ(errorOf([&] { t.require("c"); }),
            "f.csv: column `c` missing (columns: id, b); add it or check the header row");
}

TEST(Csv, NumericTable) {
  const auto t = numericTableFrom(parseCsv("id,a,b\nx,1,\ny,NaN,2.5e-1\n", "n.csv"));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_DOUBLE_EQ(t.values[0][0], 1);
  EXPECT_TRUE(std::isnan(t.values[0][1]));
  EXPECT_TRUE(std::isnan(t.values[1][0]));
  EXPECT_DOUBLE_EQ(t.values[1][1], 0.25);
  EXPECT_EQ(errorOf([] { numericTableFrom(parseCsv("id,a\nx,1\nx,2\n", "n.csv")); }), "n.csv: id `x` appears twice");
}

TEST(Retrieval, HandWorkedRanksAndTies) {
  // Query 0: relevant 0.9 ranks first. Query 1: relevant 0.5 behind 0.7 -> rank 2.
  // Query 2: relevant 0.4 ties with another 0.4 -> pessimistic rank 2, behind 0.8 -> rank 3.
  const Matrix s = {{0.9, 0.1, 0.2}, {0.7, 0.5, 0.1}, {0.8, 0.4, 0.4}};
  const auto r = retrievalScores(s, {}, {}, {1, 2});
  EXPECT_DOUBLE_EQ(r.recall[0], 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.recall[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.map, (1.0 + 0.5 + 1.0 / 3.0) / 3.0);
  EXPECT_DOUBLE_EQ(r.medianRank, 2.0);
  // Two relevant items for a query (ids): ranks 1 and 3 -> AP = (1/1 + 2/3) / 2.
  const auto m = retrievalScores({{0.9, 0.5, 0.7}}, {"p"}, {"p", "p", "q"}, {1});
  EXPECT_DOUBLE_EQ(m.map, (1.0 + 2.0 / 3.0) / 2.0);
  EXPECT_THROW(retrievalScores({{0.1, 0.2}}, {"a"}, {"b", "c"}), biud::ValueError);
  // Cosine: orthogonal and parallel rows.
  const auto c = cosineSimilarity({{1, 0}, {0, 2}}, {{3, 0}, {1, 1}});
  EXPECT_NEAR(c[0][0], 1.0, 1e-15);
  EXPECT_NEAR(c[1][0], 0.0, 1e-15);
  EXPECT_NEAR(c[1][1], std::sqrt(0.5), 1e-15);
}

TEST(Plot, FontAndPrimitives) {
  plot::Canvas c(40, 20);
  c.text(2, 2, "I", {0, 0, 0}, 1);
  // Glyph 'I' row 0 is ".###.": columns 1..3 inked, 0 and 4 not.
  EXPECT_EQ(c.at(2 + 1, 2).r, 0);
  EXPECT_EQ(c.at(2 + 3, 2).r, 0);
  EXPECT_EQ(c.at(2 + 0, 2).r, 255);
  EXPECT_EQ(c.at(2 + 4, 2).r, 255);
  // Row 3 of 'I' is "..#..": only the centre column.
  EXPECT_EQ(c.at(2 + 2, 2 + 3).r, 0);
  EXPECT_EQ(c.at(2 + 1, 2 + 3).r, 255);
  EXPECT_EQ(plot::Canvas::textWidth("abc", 2), (3 * 6 - 1) * 2);
  // A horizontal line through pixel centres: full coverage on the line, none two pixels away.
  plot::Canvas l(20, 10);
  l.line(2, 5.5, 17, 5.5, {255, 0, 0}, 1.0);
  EXPECT_EQ(l.at(10, 5).g, 0);
  EXPECT_EQ(l.at(10, 7).g, 255);
  // Nice ticks.
  EXPECT_EQ(plot::niceTicks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0}));
  EXPECT_EQ(plot::tickLabel(0.25, 0.25), "0.25");
  EXPECT_EQ(plot::tickLabel(2, 1), "2");
}

TEST(EvalIo, NpyAndTexts) {
  biud::test::TempDir d("eval-io");
  // A float64 .npy written by hand: header dict padded to 64 bytes total prefix.
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string f = std::string("\x93NUMPY\x01\x00", 8);
  f += static_cast<char>(header.size() & 0xff);
  f += static_cast<char>(header.size() >> 8);
  f += header;
  const double v[4] = {1.5, -2, 3, 4.25};
  f.append(reinterpret_cast<const char*>(v), sizeof v);
  biud::test::writeText(d / "m.npy", f);
  std::vector<std::string> ids;
  const auto m = readMatrix((d / "m.npy").string(), &ids);
  EXPECT_EQ(m, (Matrix{{1.5, -2}, {3, 4.25}}));
  EXPECT_EQ(ids, (std::vector<std::string>{"0", "1"}));
  biud::test::writeText(d / "t.txt", "first report\r\nsecond\n");
  const auto t = readTexts((d / "t.txt").string());
  EXPECT_EQ(t.ids, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(t.texts[0][0], "first report");
}
