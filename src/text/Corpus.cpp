#include "biud/text/Corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"

namespace biud::text {

namespace {

std::string lowerStr(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

/// Which columns make the text, given the header (lower-cased). Empty when none fits.
std::vector<std::size_t> pickColumns(const std::vector<std::string>& header, const CorpusOptions& opt,
                                     const std::string& file) {
  std::vector<std::size_t> cols;
  auto find = [&](const std::string& name) -> long {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (lowerStr(header[i]) == lowerStr(name)) return static_cast<long>(i);
    return -1;
  };
  if (!opt.columns.empty()) {
    for (const auto& c : opt.columns) {
      const long i = find(c);
      BIUD_CHECK(i >= 0, DataError, "`{}`: column `{}` not found (columns: {})", file, c,
                 fmt::format("{}", fmt::join(header, ", ")));
      cols.push_back(static_cast<std::size_t>(i));
    }
    return cols;
  }
  for (const char* c : {"report", "text", "report_text", "reports"})
    if (const long i = find(c); i >= 0) return {static_cast<std::size_t>(i)};
  for (const char* c : {"findings", "findings_en", "finding"})
    if (const long i = find(c); i >= 0) {
      cols.push_back(static_cast<std::size_t>(i));
      break;
    }
  for (const char* c : {"impression", "impressions", "impressions_en", "impression_en", "conclusion"})
    if (const long i = find(c); i >= 0) {
      cols.push_back(static_cast<std::size_t>(i));
      break;
    }
  BIUD_CHECK(!cols.empty(), DataError,
             "`{}` has no report column: expected `report`/`text` or `findings`/`impression` (columns: {}); pick "
             "columns with --column",
             file, fmt::format("{}", fmt::join(header, ", ")));
  return cols;
}

std::string joinColumns(const std::vector<std::string>& header, const std::vector<std::string>& row,
                        const std::vector<std::size_t>& cols, bool labelled) {
  std::string out;
  for (std::size_t c : cols) {
    if (c >= row.size()) continue;
    const std::string v = trim(row[c]);
    if (v.empty()) continue;
    if (!out.empty()) out += ' ';
    if (labelled) {
      // "Findings: ..." / "Impression: ..." so the report parser sees the sections.
      const std::string h = lowerStr(header[c]);
      out += (h.find("impression") != std::string::npos || h == "conclusion") ? "Impression: " : "Findings: ";
    }
    out += v;
  }
  return out;
}

}  // namespace

std::vector<std::vector<std::string>> parseCsv(const std::string& text, char sep, const std::string& file) {
  csv::ParseOptions opt;
  opt.separator = sep;
  return csv::parseRecords(text, file, opt).rows;
}

std::vector<std::string> readCorpus(const std::string& path, const CorpusOptions& opt) {
  fs::requireFile(path, "corpus (text, CSV or JSONL)");
  // `reports.csv.gz` is read as `reports.csv` (inflated transparently).
  const std::string ext = lowerStr(std::filesystem::path(fs::withoutGz(path)).extension().string());
  const std::string text = fs::readTextFile(path);
  std::vector<std::string> out;
  auto keep = [&](std::string s) {
    if (!opt.skipEmpty || !trim(s).empty()) out.push_back(std::move(s));
  };
  if (ext == ".csv" || ext == ".tsv") {
    const auto rows = parseCsv(text, ext == ".tsv" ? '\t' : ',', path);
    BIUD_CHECK(!rows.empty(), DataError, "`{}` is empty: expected a header row", path);
    csv::checkHeader(rows[0], path);  // a report column given twice would be read from its first copy
    const auto cols = pickColumns(rows[0], opt, path);
    for (std::size_t r = 1; r < rows.size(); ++r)
      keep(joinColumns(rows[0], rows[r], cols, opt.columns.empty() && cols.size() > 1));
    return out;
  }
  if (ext == ".jsonl" || ext == ".ndjson") {
    std::size_t pos = 0;
    int lineNo = 0;
    while (pos < text.size()) {
      std::size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      const std::string line = trim(text.substr(pos, nl - pos));
      pos = nl + 1;
      ++lineNo;
      if (line.empty()) continue;
      const nlohmann::json j = fs::parseJson(line, path, "corpus record", {}, static_cast<std::size_t>(lineNo));
      BIUD_CHECK(j.is_object(), DataError, "`{}` line {}: expected a JSON object per line", path, lineNo);
      std::vector<std::string> header, row;
      for (auto it = j.begin(); it != j.end(); ++it) {
        header.push_back(it.key());
        row.push_back(it->is_string() ? it->get<std::string>() : (it->is_null() ? "" : it->dump()));
      }
      const auto cols = pickColumns(header, opt, fmt::format("{} line {}", path, lineNo));
      keep(joinColumns(header, row, cols, opt.columns.empty() && cols.size() > 1));
    }
    return out;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    keep(std::move(line));
    pos = nl + 1;
  }
  return out;
}

}  // namespace biud::text
