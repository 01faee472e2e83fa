#pragma once
/// \file CsvTable.h
/// A small RFC 4180 CSV reader/writer for evaluation inputs (predictions, labels, reader
/// studies, embeddings). Quoted fields may hold commas, doubled quotes and newlines; CRLF and LF
/// line ends are accepted; a UTF-8 BOM is skipped. The first row is the header.
/// (The data area has its own manifest readers; this one is deliberately minimal.)
#include <map>
#include <string>
#include <vector>

namespace biud::eval {

struct CsvTable {
  std::string source;                          ///< file name (or label) used in messages
  std::vector<std::string> header;             ///< column names
  std::vector<std::vector<std::string>> rows;  ///< every row has header.size() fields

  /// Index of `column`; -1 when absent.
  int find(const std::string& column) const;
  /// Index of `column`; DataError naming the file, the column and the columns present otherwise.
  int require(const std::string& column) const;
};

/// Parse CSV text. DataError (naming `source` and the line) on an unterminated quote, a stray
/// quote inside an unquoted field, a row with a different number of fields than the header,
/// an empty or duplicate header name.
CsvTable parseCsv(const std::string& text, const std::string& source = "<csv>");
/// Read and parse a file (IoError if it cannot be read).
CsvTable readCsv(const std::string& path);

/// Quote a field when it holds a comma, quote, CR or LF.
std::string csvField(const std::string& s);
/// Rows -> CSV text (LF line ends).
std::string toCsv(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

/// Parse a number the way the evaluation inputs allow: decimal/scientific, "nan", "inf".
/// Returns false when `s` is not a number (surrounding spaces are ignored).
bool parseDouble(const std::string& s, double& out);

/// A table of numbers keyed by the `id` column: one column per finding.
/// Empty cells and "nan"/"NA" read as NaN (unknown); anything else that is not a number is a
/// DataError naming file, id and column.
struct NumericTable {
  std::string source;
  std::vector<std::string> ids;              ///< row order of the file
  std::vector<std::string> columns;          ///< value columns (header minus `id`)
  std::vector<std::vector<double>> values;   ///< values[row][column]
  std::map<std::string, std::size_t> rowOf;  ///< id -> row
};
/// Read a CSV with an `idColumn` and numeric columns. Duplicate ids are a DataError.
NumericTable readNumericTable(const std::string& path, const std::string& idColumn = "id");
NumericTable numericTableFrom(const CsvTable& t, const std::string& idColumn = "id");

}  // namespace biud::eval
