#include "biud/core/Csv.h"

#include <cctype>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::csv {

std::optional<std::size_t> Table::find(const std::string& column) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == column) return i;
  return std::nullopt;
}

std::size_t Table::require(const std::string& column) const {
  if (auto i = find(column)) return *i;
  BIUD_THROW(DataError, "`{}` has no column `{}` (columns: {})", source, column, fmt::join(header, ", "));
}

Records parseRecords(const std::string& text, const std::string& source, const ParseOptions& opt) {
  Records out;
  std::size_t i = 0, line = 1, rowLine = 1;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte-order mark (Excel)
  std::vector<std::string> row;
  std::string field;
  bool inQuotes = false, fieldQuoted = false, rowStarted = false;
  auto endField = [&] {
    row.push_back(std::move(field));
    field.clear();
    fieldQuoted = false;
  };
  auto endRow = [&] {
    const bool blank = row.empty() && field.empty() && !fieldQuoted;
    endField();
    if (!blank) {
      out.rows.push_back(std::move(row));
      out.lines.push_back(rowLine);
    }
    row.clear();
    rowStarted = false;
  };
  const std::size_t n = text.size();
  for (; i < n; ++i) {
    const char c = text[i];
    if (inQuotes) {
      if (c != '"') {
        if (c == '\n') ++line;
        field.push_back(c);
      } else if (i + 1 < n && text[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else {
        inQuotes = false;
        const char next = i + 1 < n ? text[i + 1] : '\n';
        BIUD_CHECK(!opt.strictQuotes || next == opt.separator || next == '\n' || next == '\r', DataError,
                   "{}:{}: unexpected character `{}` after a closing quote (quote the whole field and double inner "
                   "quotes)",
                   source, line, next);
      }
      continue;
    }
    if (!rowStarted) rowLine = line;
    rowStarted = true;
    if (c == '"' && field.empty() && !fieldQuoted) {
      inQuotes = fieldQuoted = true;
    } else if (c == '"' && opt.strictQuotes) {
      BIUD_THROW(DataError,
                 "{}:{}: stray quote inside an unquoted field (quote the whole field and double inner quotes)", source,
                 line);
    } else if (c == opt.separator) {
      endField();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      endRow();
      ++line;
    } else {
      field.push_back(c);  // (a stray quote in an unquoted field is data when not strict)
    }
  }
  BIUD_CHECK(!inQuotes, DataError, "{}:{}: unterminated quoted field (a `\"` is never closed)", source, rowLine);
  if (rowStarted) endRow();
  return out;
}

void checkHeader(const std::vector<std::string>& header, const std::string& source, std::size_t line) {
  std::map<std::string, std::size_t> first;  // trimmed name -> 0-based position
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::string name = trim(header[c]);
    if (name.empty()) continue;
    const auto [it, fresh] = first.emplace(name, c);
    if (fresh) continue;
    const std::string& a = header[it->second];
    const std::string& b = header[c];
    BIUD_THROW(DataError,
               "`{}` line {}: column `{}` appears twice in the header (columns {} and {}{}); rename or delete one of "
               "them (a reader would otherwise use one copy and silently ignore the other)",
               source, line, name, it->second + 1, c + 1,
               a == b ? std::string() : fmt::format(", written `{}` and `{}`", a, b));
  }
}

Table parse(const std::string& text, const std::string& source, const ParseOptions& opt) {
  auto rec = parseRecords(text, source, opt);
  BIUD_CHECK(!rec.rows.empty(), DataError, "`{}` is empty: expected a header line", source);
  checkHeader(rec.rows[0], source, rec.lines[0]);
  Table t;
  t.source = source;
  t.header = std::move(rec.rows[0]);
  for (std::size_t r = 1; r < rec.rows.size(); ++r) {
    BIUD_CHECK(rec.rows[r].size() == t.header.size(), DataError, "`{}` line {}: {} fields, but the header has {} ({})",
               source, rec.lines[r], rec.rows[r].size(), t.header.size(), fmt::join(t.header, ","));
    t.rows.push_back(std::move(rec.rows[r]));
    t.lines.push_back(rec.lines[r]);
  }
  return t;
}

std::string trim(const std::string& field) {
  size_t b = 0, e = field.size();
  while (b < e && std::isspace(static_cast<unsigned char>(field[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(field[e - 1]))) --e;
  return field.substr(b, e - b);
}

Table read(const std::string& path) { return parse(fs::readTextFile(path), path); }

std::string quote(const std::string& f) {
  const bool needs =
      f.find_first_of(",\"\r\n") != std::string::npos || (!f.empty() && (f.front() == ' ' || f.back() == ' '));
  if (!needs) return f;
  std::string q = "\"";
  for (char c : f) {
    if (c == '"')
      q += "\"\"";
    else
      q.push_back(c);
  }
  return q + "\"";
}

std::string line(const std::vector<std::string>& fields) {
  std::string s;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) s.push_back(',');
    s += quote(fields[i]);
  }
  s.push_back('\n');
  return s;
}

std::string format(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string s = line(header);
  for (const auto& r : rows) s += line(r);
  return s;
}

void write(const std::string& path, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows) {
  fs::atomicWrite(path, format(header, rows));
}

}  // namespace biud::csv
