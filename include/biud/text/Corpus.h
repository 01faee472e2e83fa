#pragma once
/// \file Corpus.h
/// Report texts from the files users have: a plain text file (one text per line), a JSONL
/// manifest or a CSV manifest. For manifests the report is the `report` (or `text`) column, or
/// else findings + impression joined as "Findings: ... Impression: ..." (column names matched
/// case-insensitively; CT-RATE's Findings_EN / Impressions_EN work).
#include <string>
#include <vector>

namespace biud::text {

struct CorpusOptions {
  /// Explicit column(s) to use, joined with a space; empty = the automatic choice above.
  std::vector<std::string> columns;
  /// Skip empty texts.
  bool skipEmpty = true;
};

/// Read texts. The format follows the extension (.txt/.text, .jsonl/.ndjson, .csv/.tsv);
/// anything else is read as text lines. DataError naming the file and line on malformed rows or
/// when no report column exists (listing the columns found).
std::vector<std::string> readCorpus(const std::string& path, const CorpusOptions& opt = {});

/// Parse CSV text (RFC 4180: quoted fields with "" escapes and newlines). `sep` ',' or '\t'.
std::vector<std::vector<std::string>> parseCsv(const std::string& text, char sep = ',',
                                               const std::string& file = "<csv>");

}  // namespace biud::text
