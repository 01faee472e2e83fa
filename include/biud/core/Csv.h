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
  std::string source;  ///< file name, for messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;  ///< 1-based line where each row starts

  /// Column index, or nullopt.
  std::optional<std::size_t> find(const std::string& column) const;
  /// Column index; DataError naming the file, the column and the columns present otherwise.
  std::size_t require(const std::string& column) const;
};

/// How to read delimited text.
struct ParseOptions {
  char separator = ',';  ///< ',' for CSV, '\t' for TSV
  /// A `"` inside an unquoted field, or anything but a separator/line end after a closing quote,
  /// is a DataError (evaluation inputs); otherwise it is kept as data (hand-written manifests).
  bool strictQuotes = false;
};

/// Every record of the text (the header row included), blank lines skipped, with the 1-based
/// line each record starts on. Rows may have different lengths: callers check. DataError
/// naming `source` and the line on an unterminated quoted field (or a stray quote when strict).
/// This is the one delimited-text scanner of biud; every table reader calls it.
struct Records {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;
};
Records parseRecords(const std::string& text, const std::string& source = "<csv>", const ParseOptions& options = {});

/// DataError unless every named column of a header row is named once: "`<source>` line <line>:
/// column `id` appears twice in the header (columns 1 and 4); ...". Names are compared after
/// trim(), so `a` and ` a` are the same column (every reader that trims its header would
/// otherwise keep only one of them). Empty header cells are not compared: nothing can ask for
/// a column without a name (a pandas index written by `to_csv(index=True)` has none), and
/// readers that give columns a meaning by name reject them themselves (manifests, eval tables).
/// Every table reader calls it (csv::parse, image::readManifest, eval::parseCsv): a duplicated
/// column would otherwise be read silently from one of its copies.
void checkHeader(const std::vector<std::string>& header, const std::string& source, std::size_t line = 1);

/// Parse CSV text. The header's names must be unique (checkHeader); every row must have as many
/// fields as the header (DataError naming the source and line otherwise); blank lines are skipped.
Table parse(const std::string& text, const std::string& source = "<csv>", const ParseOptions& options = {});
/// Read a CSV file (IoError if it cannot be read).
Table read(const std::string& path);

/// A field without its surrounding white space (spaces, tabs, CR/LF).
std::string trim(const std::string& field);

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
