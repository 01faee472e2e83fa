#pragma once
/// \file ImportReport.h
/// What biud-import does after an importer ran: the `options` record kept in import.json (one
/// overload per release, values as applied), the check that something was imported, and the
/// files and log lines a user sees (Import.h has the importers).
#include <map>
#include <string>

#include "biud/image/Import.h"

namespace biud::image {

/// The options of an import as import.json stores them (lists joined with `,`, flags as
/// true/false, numbers as fmt prints them).
std::map<std::string, std::string> importOptionsRecord(const CtRateImportOptions& o);
std::map<std::string, std::string> importOptionsRecord(const MimicCxrImportOptions& o);
std::map<std::string, std::string> importOptionsRecord(const RadChestCtImportOptions& o);
std::map<std::string, std::string> importOptionsRecord(const FolderImportOptions& o);

/// `<dataset>: N items (a test, b train, ...), L labels, S rows skipped` (splits in name order).
std::string importSummary(const ImportResult& r);

/// DataError naming the dataset and the first skipped row when nothing was imported; else
/// writeImport() into `outDir`, then log the notes, the summary and (when rows were skipped) a
/// warning pointing at import.json.
void finishImport(const std::string& outDir, const ImportResult& r, const std::map<std::string, std::string>& options);

}  // namespace biud::image
