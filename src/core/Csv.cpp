#include "biud/core/Csv.h"

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

Table parse(const std::string& text, const std::string& source) {
  Table t;
  t.source = source;
  std::size_t i = 0, line = 1;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  std::vector<std::string> row;
  std::string field;
  bool inQuotes = false, fieldQuoted = false, any = false;
  std::size_t rowLine = 1;
  auto endRow = [&] {
    row.push_back(std::move(field));
    field.clear();
    const bool blank = row.size() == 1 && row[0].empty() && !fieldQuoted;
    if (!blank) {
      if (t.header.empty() && t.rows.empty() && !any) {
        t.header = std::move(row);
        any = true;
      } else {
        BIUD_CHECK(row.size() == t.header.size(), DataError, "`{}` line {}: {} fields, but the header has {} ({})",
                   source, rowLine, row.size(), t.header.size(), fmt::join(t.header, ","));
        t.rows.push_back(std::move(row));
        t.lines.push_back(rowLine);
      }
    }
    row.clear();
    fieldQuoted = false;
  };
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (inQuotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          inQuotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    switch (c) {
      case '"':
        if (field.empty()) {
          inQuotes = fieldQuoted = true;
        } else {
          field.push_back(c);  // a stray quote inside an unquoted field is kept as data
        }
        break;
      case ',':
        row.push_back(std::move(field));
        field.clear();
        fieldQuoted = false;
        break;
      case '\r':
        break;
      case '\n':
        endRow();
        rowLine = ++line;
        break;
      default:
        field.push_back(c);
    }
  }
  BIUD_CHECK(!inQuotes, DataError, "`{}` line {}: a quoted field is never closed (missing `\"`)", source, rowLine);
  if (!field.empty() || !row.empty() || fieldQuoted) endRow();
  BIUD_CHECK(!t.header.empty(), DataError, "`{}` is empty: expected a header line", source);
  return t;
}

Table read(const std::string& path) { return parse(fs::readFile(path), path); }

std::string quote(const std::string& f) {
  const bool needs = f.find_first_of(",\"\r\n") != std::string::npos ||
                     (!f.empty() && (f.front() == ' ' || f.back() == ' '));
  if (!needs) return f;
  std::string q = "\"";
  for (char c : f) {
    if (c == '"') q += "\"\"";
    else q.push_back(c);
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
