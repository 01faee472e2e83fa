// A user's own labelled CT set: a folder of volumes (files or DICOM series folders) and a labels
// CSV -> manifest (Import.h).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/image/Import.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

using csv::trim;

/// id of a folder entry: a volume file without its extension, or a folder's name.
bool volumeId(const stdfs::directory_entry& e, std::string& id) {
  const std::string name = e.path().filename().string();
  if (name.empty() || name[0] == '.') return false;
  std::error_code ec;
  if (e.is_directory(ec)) {
    id = name;
    return true;
  }
  for (const char* ext : {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".npz"}) {
    const std::string x(ext);
    if (name.size() > x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0) {
      id = name.substr(0, name.size() - x.size());
      return true;
    }
  }
  return false;
}

}  // namespace

ImportResult importFolder(const FolderImportOptions& opt) {
  ImportResult r;
  r.dataset = "folder";
  BIUD_CHECK(!opt.root.empty(), ConfigError, "folder: --root (the folder of volumes) is required");
  BIUD_CHECK(!opt.labels.empty(), ConfigError, "folder: --labels (the labels CSV) is required");
  BIUD_CHECK(opt.valFraction >= 0 && opt.testFraction >= 0 && opt.valFraction + opt.testFraction < 1, ConfigError,
             "folder: --val-fraction {} + --test-fraction {} must be below 1", opt.valFraction, opt.testFraction);
  std::error_code ec;
  BIUD_CHECK(stdfs::is_directory(opt.root, ec), IoError, "folder: `{}` is not a folder", opt.root);
  // Volumes: every volume file and every sub-folder (a DICOM series) directly under root.
  std::map<std::string, std::string> volumes;
  for (const auto& e : stdfs::directory_iterator(opt.root)) {
    std::string id;
    if (!volumeId(e, id)) continue;
    auto [pos, fresh] = volumes.emplace(id, e.path().lexically_normal().string());
    BIUD_CHECK(fresh, DataError, "folder: two volumes have the id `{}`: `{}` and `{}`; rename one", id, pos->second,
               e.path().string());
  }
  r.filesRead.push_back(opt.labels);
  const csv::Table t = csv::read(opt.labels);
  const size_t cid = t.require(opt.idColumn);
  auto optional = [&](const std::string& c) -> std::optional<size_t> {
    if (c.empty()) return std::nullopt;
    auto f = t.find(c);
    BIUD_CHECK(f.has_value(), DataError, "folder: column `{}` not in `{}` (columns: {})", c, opt.labels,
               fmt::join(t.header, ", "));
    return f;
  };
  const auto cpat = optional(opt.patientColumn), csplit = optional(opt.splitColumn), crep = optional(opt.reportColumn);
  std::set<std::string> ignored(opt.ignoreColumns.begin(), opt.ignoreColumns.end());
  std::vector<size_t> labelCols;
  for (size_t c = 0; c < t.header.size(); ++c) {
    if (c == cid || (cpat && c == *cpat) || (csplit && c == *csplit) || (crep && c == *crep)) continue;
    if (ignored.count(trim(t.header[c]))) continue;
    labelCols.push_back(c);
    r.manifest.labelNames.push_back(trim(t.header[c]));
  }
  BIUD_CHECK(!labelCols.empty(), DataError, "folder: `{}` has no label column besides `{}`", opt.labels, opt.idColumn);
  std::set<std::string> seen;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& row = t.rows[i];
    const int line = static_cast<int>(t.lines[i]);
    ManifestItem it;
    it.id = trim(row[cid]);
    it.line = line;
    BIUD_CHECK(!it.id.empty(), DataError, "folder: `{}` line {}: empty `{}`", opt.labels, line, opt.idColumn);
    BIUD_CHECK(seen.insert(it.id).second, DataError, "folder: `{}` line {}: id `{}` appears twice", opt.labels, line,
               it.id);
    auto v = volumes.find(it.id);
    if (v == volumes.end()) {
      r.skipped.push_back({t.source, line, it.id, "no volume with this id in --root"});
      continue;
    }
    it.images.push_back(v->second);
    if (cpat) it.patient = trim(row[*cpat]);
    if (crep) it.report = row[*crep];
    for (size_t k = 0; k < labelCols.size(); ++k) {
      const std::string s = trim(row[labelCols[k]]);
      float x = NAN;
      if (s == "1" || s == "1.0" || s == "true" || s == "True")
        x = 1;
      else if (s == "0" || s == "0.0" || s == "false" || s == "False")
        x = 0;
      else
        BIUD_CHECK(s.empty() || s == "-1" || s == "nan" || s == "NaN", DataError,
                   "folder: `{}` line {} (id `{}`): column `{}` has `{}`; labels are 0/1, empty or -1 "
                   "(unknown). Not a label? --ignore-columns {}",
                   opt.labels, line, it.id, r.manifest.labelNames[k], s, r.manifest.labelNames[k]);
      it.labels.push_back(x);
    }
    if (csplit) {
      it.split = trim(row[*csplit]);
    } else {
      // By patient (or id), hashed: the same on every machine, stable when rows are added.
      const std::string& g = it.group();
      it.split = inHashedFraction("test/" + g, opt.testFraction)                            ? "test"
                 : inHashedFraction("val/" + g, opt.valFraction / (1.0 - opt.testFraction)) ? "val"
                                                                                            : "train";
    }
    r.manifest.items.push_back(std::move(it));
  }
  for (const auto& [id, path] : volumes)
    if (!seen.count(id)) r.skipped.push_back({"", 0, id, "volume without a labels row"});
  if (!csplit)
    r.notes.push_back(fmt::format("splits by a hash of the {} id: test {:g} %, val {:g} %, the rest train",
                                  cpat ? "patient" : "item", opt.testFraction * 100, opt.valFraction * 100));
  return r;
}

}  // namespace biud::image
