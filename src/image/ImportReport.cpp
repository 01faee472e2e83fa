#include "biud/image/ImportReport.h"

#include <fmt/format.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::image {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

const char* flag(bool b) { return b ? "true" : "false"; }

}  // namespace

std::map<std::string, std::string> importOptionsRecord(const CtRateImportOptions& o) {
  return {
      {"root", o.root},          {"splits", joined(o.splits)},       {"one_reconstruction", flag(o.oneReconstruction)},
      {"rescale", o.rescale},    {"geometry", flag(o.geometry)},     {"val_fraction", fmt::format("{}", o.valFraction)},
      {"volumes", o.volumeRoot}, {"check_files", flag(o.checkFiles)}};
}

std::map<std::string, std::string> importOptionsRecord(const MimicCxrImportOptions& o) {
  return {{"root", o.root},
          {"reports", o.reports},
          {"views", joined(o.views)},
          {"labels", o.labels},
          {"uncertain", o.uncertain},
          {"blank", o.blank},
          {"require_report", flag(o.requireReport)},
          {"check_files", flag(o.checkFiles)}};
}

std::map<std::string, std::string> importOptionsRecord(const RadChestCtImportOptions& o) {
  return {{"root", o.root},
          {"volumes", o.volumeRoot},
          {"splits", joined(o.splits)},
          {"labels", o.labels},
          {"all_test", flag(o.allTest)},
          {"spacing", fmt::format("{}", o.spacing)},
          {"check_files", flag(o.checkFiles)}};
}

std::map<std::string, std::string> importOptionsRecord(const FolderImportOptions& o) {
  return {{"root", o.root},
          {"labels", o.labels},
          {"id_column", o.idColumn},
          {"patient_column", o.patientColumn},
          {"split_column", o.splitColumn},
          {"report_column", o.reportColumn},
          {"val_fraction", fmt::format("{}", o.valFraction)},
          {"test_fraction", fmt::format("{}", o.testFraction)}};
}

std::string importSummary(const ImportResult& r) {
  std::map<std::string, size_t> splits;
  for (const auto& it : r.manifest.items) ++splits[it.split];
  std::string s;
  for (const auto& [k, v] : splits) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", v, k);
  return fmt::format("{}: {} items ({}), {} labels, {} rows skipped", r.dataset, r.manifest.items.size(), s,
                     r.manifest.labelNames.size(), r.skipped.size());
}

void finishImport(const std::string& outDir, const ImportResult& r, const std::map<std::string, std::string>& options) {
  BIUD_CHECK(!r.manifest.items.empty(), DataError,
             "{}: no item could be imported ({} rows skipped; the first: {}). Check --root", r.dataset,
             r.skipped.size(),
             r.skipped.empty() ? std::string("none") : r.skipped.front().id + ": " + r.skipped.front().reason);
  writeImport(outDir, r, options);
  for (const auto& n : r.notes) log::info("import", "{}", n);
  log::info("import", "{} -> {}/manifest.csv, {}/import.json", importSummary(r), outDir, outDir);
  if (!r.skipped.empty())
    log::warn("import", "{} rows skipped; counted by reason in {}/import.json", r.skipped.size(), outDir);
}

}  // namespace biud::image
