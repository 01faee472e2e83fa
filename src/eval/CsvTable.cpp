#include "biud/eval/CsvTable.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::eval {

int CsvTable::find(const std::string& column) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == column) return static_cast<int>(i);
  return -1;
}

int CsvTable::require(const std::string& column) const {
  const int i = find(column);
  if (i < 0) {
    std::string cols;
    for (const auto& h : header) cols += (cols.empty() ? "" : ", ") + h;
    BIUD_THROW(DataError, "{}: column `{}` missing (columns: {}); add it or check the header row", source, column,
               cols);
  }
  return i;
}

CsvTable parseCsv(const std::string& text, const std::string& source) {
  CsvTable t;
  t.source = source;
  csv::ParseOptions opt;
  opt.strictQuotes = true;  // predictions and labels come from scripts: a stray quote is a bug there
  auto parsed = csv::parseRecords(text, source, opt);
  auto& records = parsed.rows;
  const auto& recordLine = parsed.lines;
  if (records.empty()) BIUD_THROW(DataError, "{}: empty CSV (expected a header row)", source);
  t.header = std::move(records[0]);
  // A name given twice (` a` and `a` included) names the file, the column and both positions.
  csv::checkHeader(t.header, source, recordLine[0]);
  for (std::size_t c = 0; c < t.header.size(); ++c) {
    auto& h = t.header[c];
    // Trim spaces around header names only: values keep theirs.
    while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.pop_back();
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.erase(h.begin());
    if (h.empty()) BIUD_THROW(DataError, "{}:{}: header column {} has no name", source, recordLine[0], c + 1);
  }
  for (std::size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != t.header.size())
      BIUD_THROW(DataError, "{}:{}: row has {} fields but the header has {} (quote fields that contain commas)", source,
                 recordLine[r], records[r].size(), t.header.size());
    t.rows.push_back(std::move(records[r]));
  }
  return t;
}

CsvTable readCsv(const std::string& path) {
  fs::requireFile(path, "CSV file");
  return parseCsv(fs::readTextFile(path), path);
}

std::string csvField(const std::string& s) { return csv::quote(s); }

std::string toCsv(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size(); ++i) out += (i ? "," : "") + csvField(r[i]);
    out += '\n';
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

bool parseDouble(const std::string& s, double& out) {
  std::size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) --b;
  if (a == b) return false;
  const std::string t = s.substr(a, b - a);
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return false;
  out = v;
  return true;
}

namespace {
bool isUnknown(const std::string& s) {
  std::string t;
  for (char c : s)
    if (c != ' ' && c != '\t') t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t.empty() || t == "nan" || t == "na" || t == "n/a";
}
}  // namespace

NumericTable numericTableFrom(const CsvTable& t, const std::string& idColumn) {
  NumericTable nt;
  nt.source = t.source;
  const int idc = t.require(idColumn);
  std::vector<int> cols;
  for (std::size_t c = 0; c < t.header.size(); ++c)
    if (static_cast<int>(c) != idc) {
      nt.columns.push_back(t.header[c]);
      cols.push_back(static_cast<int>(c));
    }
  for (const auto& row : t.rows) {
    const std::string& id = row[idc];
    BIUD_CHECK(!id.empty(), DataError, "{}: a row has an empty `{}`", t.source, idColumn);
    BIUD_CHECK(nt.rowOf.emplace(id, nt.ids.size()).second, DataError, "{}: id `{}` appears twice", t.source, id);
    nt.ids.push_back(id);
    std::vector<double> v(cols.size());
    for (std::size_t k = 0; k < cols.size(); ++k) {
      const std::string& cell = row[cols[k]];
      if (isUnknown(cell)) {
        v[k] = std::nan("");
      } else if (!parseDouble(cell, v[k])) {
        BIUD_THROW(DataError, "{}: id `{}`, column `{}`: `{}` is not a number", t.source, id, nt.columns[k], cell);
      }
    }
    nt.values.push_back(std::move(v));
  }
  return nt;
}

NumericTable readNumericTable(const std::string& path, const std::string& idColumn) {
  return numericTableFrom(readCsv(path), idColumn);
}

}  // namespace biud::eval
