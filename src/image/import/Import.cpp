// Shared pieces of the release importers (Import.h): import.json and the hashed split.
#include "biud/image/Import.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "biud/core/Fs.h"
#include "biud/core/Rng.h"

namespace biud::image {

bool inHashedFraction(const std::string& id, double fraction) {
  if (fraction <= 0) return false;
  if (fraction >= 1) return true;
  // FNV-1a: stable across machines and releases of biud.
  return static_cast<double>(fnv1a(id) % 1000000ull) < fraction * 1e6;
}

void writeImport(const std::string& outDir, const ImportResult& r, const std::map<std::string, std::string>& options) {
  namespace stdfs = std::filesystem;
  fs::makeDirs(outDir);
  // Image paths were built from --root as given; a manifest resolves relative paths against its
  // own folder, so every path is written absolute (else `--root data` breaks in `--out elsewhere`).
  Manifest m = r.manifest;
  for (auto& it : m.items)
    for (auto& img : it.images) img = stdfs::absolute(img).lexically_normal().string();
  writeManifestCsv((stdfs::path(outDir) / "manifest.csv").string(), m);
  nlohmann::json j;
  j["dataset"] = r.dataset;
  j["options"] = options;
  j["files_read"] = r.filesRead;
  j["items"] = r.manifest.items.size();
  std::map<std::string, size_t> splits, patients;
  std::map<std::string, std::set<std::string>> perSplitPatients;
  for (const auto& it : r.manifest.items) {
    ++splits[it.split];
    perSplitPatients[it.split].insert(it.group());
  }
  for (const auto& [s, p] : perSplitPatients) patients[s] = p.size();
  j["splits"] = splits;
  j["patients"] = patients;
  nlohmann::json labels = nlohmann::json::object();
  for (size_t l = 0; l < r.manifest.labelNames.size(); ++l) {
    size_t pos = 0, neg = 0, unk = 0;
    for (const auto& it : r.manifest.items) {
      const float v = it.labels.at(l);
      if (std::isnan(v))
        ++unk;
      else if (v > 0.5f)
        ++pos;
      else
        ++neg;
    }
    labels[r.manifest.labelNames[l]] = {{"positive", pos}, {"negative", neg}, {"unknown", unk}};
  }
  j["labels"] = labels;
  std::map<std::string, size_t> reasons;
  nlohmann::json first = nlohmann::json::array();
  for (const auto& s : r.skipped) {
    ++reasons[s.reason];
    if (first.size() < 100) first.push_back({{"file", s.file}, {"line", s.line}, {"id", s.id}, {"reason", s.reason}});
  }
  j["skipped"] = {{"total", r.skipped.size()}, {"by_reason", reasons}, {"first", first}};
  j["notes"] = r.notes;
  fs::atomicWrite(stdfs::path(outDir) / "import.json", j.dump(2) + "\n");
}

}  // namespace biud::image
