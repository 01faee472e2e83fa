#pragma once
/// \file Csv.h
/// RFC 4180 CSV: quoted fields with embedded commas, quotes ("") and newlines; CRLF or LF; a
/// UTF-8 BOM is skipped. One reader and one writer for every table biud reads or writes
/// (manifests, labels, predictions, pairing files).
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace biud::csv {

struct Table {
  std::string source;                       ///< file name, for messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;           ///< 1-based line where each row starts

  /// Column index, or nullopt.
  std::optional<std::size_t> find(const std::string& column) const;
  /// Column index; DataError naming the file, the column and the columns present otherwise.
  std::size_t require(const std::string& column) const;
};

/// Parse CSV text. Every row must have as many fields as the header (DataError naming the
/// source and line otherwise); blank lines are skipped.
Table parse(const std::string& text, const std::string& source = "<csv>");
/// Read a CSV file (IoError if it cannot be read).
Table read(const std::string& path);

/// Quote a field when it needs it (comma, quote, CR/LF, leading/trailing space).
std::string quote(const std::string& field);
/// One CSV line (with trailing '\n').
std::string line(const std::vector<std::string>& fields);
/// The whole table as CSV text.
std::string format(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
/// Write atomically.
void write(const std::string& path, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows);

}  // namespace biud::csv
