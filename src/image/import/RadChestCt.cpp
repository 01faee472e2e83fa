// RAD-ChestCT release -> manifest (Import.h). Conventions and where each was verified: docs/data.md,
// "RAD-ChestCT".
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/image/Import.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

using csv::trim;

/// CT-RATE's 18 finding names in the release's column order (multi_abnormality_labels/*.csv).
const std::vector<std::string>& ctRateNames() {
  static const std::vector<std::string> n = {"Medical material",
                                             "Arterial wall calcification",
                                             "Cardiomegaly",
                                             "Pericardial effusion",
                                             "Coronary artery wall calcification",
                                             "Hiatal hernia",
                                             "Lymphadenopathy",
                                             "Emphysema",
                                             "Atelectasis",
                                             "Lung nodule",
                                             "Lung opacity",
                                             "Pulmonary fibrotic sequela",
                                             "Pleural effusion",
                                             "Mosaic attenuation pattern",
                                             "Peribronchial thickening",
                                             "Consolidation",
                                             "Bronchiectasis",
                                             "Interlobular septal thickening"};
  return n;
}

}  // namespace

const std::vector<std::pair<std::string, std::vector<std::string>>>& radChestCtToCtRate() {
  // biud's own mapping (CT-CLIP's is not public: CT-CLIP issues #20, #24, #29). A CT-RATE finding
  // gets the OR of the RAD-ChestCT abnormalities that name the same finding; left out: Hiatal
  // hernia (RAD-ChestCT's `hernia` is any hernia) and Mosaic attenuation pattern (no such label;
  // `air_trapping` is a cause, not the pattern).
  static const std::vector<std::pair<std::string, std::vector<std::string>>> m = {
      {"Medical material",
       {"catheter_or_port", "pacemaker_or_defib", "heart_valve_replacement", "hardware", "stent", "clip", "staple",
        "suture", "chest_tube", "tracheal_tube", "gi_tube"}},
      {"Arterial wall calcification", {"atherosclerosis"}},
      {"Cardiomegaly", {"cardiomegaly"}},
      {"Pericardial effusion", {"pericardial_effusion"}},
      {"Coronary artery wall calcification", {"coronary_artery_disease"}},
      {"Lymphadenopathy", {"lymphadenopathy"}},
      {"Emphysema", {"emphysema"}},
      {"Atelectasis", {"atelectasis"}},
      {"Lung nodule", {"nodule", "nodulegr1cm"}},
      {"Lung opacity", {"opacity", "groundglass"}},
      {"Pulmonary fibrotic sequela", {"fibrosis", "scarring"}},
      {"Pleural effusion", {"pleural_effusion"}},
      {"Peribronchial thickening", {"bronchial_wall_thickening"}},
      {"Consolidation", {"consolidation"}},
      {"Bronchiectasis", {"bronchiectasis"}},
      {"Interlobular septal thickening", {"septal_thickening"}}};
  return m;
}

ImportResult importRadChestCt(const RadChestCtImportOptions& opt) {
  ImportResult r;
  r.dataset = "rad-chestct";
  BIUD_CHECK(!opt.root.empty(), ConfigError, "rad-chestct: --root (the RAD-ChestCT download folder) is required");
  BIUD_CHECK(opt.labels == "own" || opt.labels == "ct-rate", ConfigError,
             "rad-chestct: --label-names `{}` (own or ct-rate)", opt.labels);
  BIUD_CHECK(std::isfinite(opt.spacing) && opt.spacing > 0, ConfigError,
             "rad-chestct: --iso-spacing {} mm (must be positive)", opt.spacing);
  std::error_code ec;
  const stdfs::path root = opt.root;
  BIUD_CHECK(stdfs::is_directory(root, ec), IoError, "RAD-ChestCT: `{}` is not a folder", opt.root);
  const stdfs::path volRoot = opt.volumeRoot.empty() ? root : stdfs::path(opt.volumeRoot);
  const std::map<std::string, std::string> splitName = {{"train", "train"}, {"valid", "val"}, {"test", "test"}};

  struct Row {
    std::string id, split;
    int line = 0;
    std::string file;
    std::unordered_map<std::string, float> abn;  // abnormality -> OR over its locations (NaN = unknown)
  };
  std::vector<Row> rows;
  std::vector<std::string> abnormalities;  // first-seen order over the tables
  std::set<std::string> seenAbn, seenIds;
  size_t tablesRead = 0;
  for (const auto& split : opt.splits) {
    BIUD_CHECK(splitName.count(split), ConfigError, "rad-chestct: unknown split `{}` (train, valid, test)", split);
    stdfs::path p = root / ("img" + split + "_Abnormality_and_Location_Labels.csv");
    if (!stdfs::exists(p, ec) && stdfs::exists(p.string() + ".gz", ec)) p = p.string() + ".gz";
    if (!stdfs::exists(p, ec)) {
      r.notes.push_back(fmt::format("labels CSV `{}` not found: split `{}` not imported", p.string(), split));
      continue;
    }
    r.filesRead.push_back(p.string());
    ++tablesRead;
    const csv::Table t = csv::read(p.string());
    const size_t cId = t.require("NoteAcc_DEID");
    std::vector<std::string> colAbn(t.header.size());
    for (size_t c = 0; c < t.header.size(); ++c) {
      if (c == cId) continue;
      const std::string h = trim(t.header[c]);
      const size_t star = h.find('*');
      colAbn[c] = star == std::string::npos ? h : h.substr(0, star);  // `<abnormality>*<location>`
      if (!colAbn[c].empty() && seenAbn.insert(colAbn[c]).second) abnormalities.push_back(colAbn[c]);
    }
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const auto& row = t.rows[i];
      Row rw;
      rw.id = trim(row[cId]);
      rw.split = split;
      rw.line = static_cast<int>(t.lines[i]);
      rw.file = t.source;
      if (rw.id.empty()) {
        r.skipped.push_back({t.source, rw.line, "", "empty NoteAcc_DEID"});
        continue;
      }
      if (!seenIds.insert(rw.id).second) {
        r.skipped.push_back({t.source, rw.line, rw.id, "NoteAcc_DEID listed twice"});
        continue;
      }
      for (size_t c = 0; c < row.size() && c < colAbn.size(); ++c) {
        if (c == cId || colAbn[c].empty()) continue;
        const std::string v = trim(row[c]);
        float x = NAN;
        if (v == "1" || v == "1.0" || v == "True")
          x = 1;
        else if (v == "0" || v == "0.0" || v == "False")
          x = 0;
        else
          BIUD_CHECK(v.empty() || v == "nan" || v == "NaN", DataError,
                     "RAD-ChestCT `{}` line {}: column `{}` has `{}` (0 or 1 expected)", t.source, rw.line, t.header[c],
                     v);
        auto [pos, fresh] = rw.abn.emplace(colAbn[c], x);
        if (!fresh) {  // OR over locations: any 1 -> 1; else unknown if any unknown; else 0
          float& o = pos->second;
          if (o == 1 || x == 1)
            o = 1;
          else if (std::isnan(o) || std::isnan(x))
            o = NAN;
        }
      }
      rows.push_back(std::move(rw));
    }
  }
  BIUD_CHECK(tablesRead > 0, IoError,
             "RAD-ChestCT: none of img{{train,valid,test}}_Abnormality_and_Location_Labels.csv found under `{}`; is "
             "--root the folder you downloaded Zenodo record 6406114 into?",
             opt.root);

  // Label columns.
  struct Out {
    std::string name;
    std::vector<std::string> from;
  };
  std::vector<Out> outs;
  if (opt.labels == "own") {
    for (const auto& a : abnormalities) outs.push_back({a, {a}});
    r.notes.push_back(fmt::format("labels: RAD-ChestCT's own {} abnormality names, each the OR over its locations",
                                  abnormalities.size()));
  } else {
    std::set<std::string> mapped;
    for (const auto& [ct, from] : radChestCtToCtRate()) {
      std::vector<std::string> present;
      for (const auto& f : from)
        if (seenAbn.count(f)) present.push_back(f);
      if (present.empty()) {
        r.notes.push_back(fmt::format("CT-RATE `{}` left out: none of its RAD-ChestCT labels ({}) is in the tables", ct,
                                      fmt::join(from, ", ")));
        continue;
      }
      outs.push_back({ct, present});
      mapped.insert(ct);
    }
    std::vector<std::string> unmapped;
    for (const auto& n : ctRateNames())
      if (!mapped.count(n)) unmapped.push_back(n);
    r.notes.push_back(fmt::format(
        "labels: mapped onto {} CT-RATE finding names by biud's table (docs/data.md; CT-CLIP's own mapping is not "
        "public); left out, no RAD-ChestCT counterpart or none in the tables: {}",
        outs.size(), unmapped.empty() ? std::string("none") : fmt::format("{}", fmt::join(unmapped, ", "))));
  }
  for (const auto& o : outs) r.manifest.labelNames.push_back(o.name);

  for (auto& rw : rows) {
    ManifestItem it;
    it.id = rw.id;
    it.line = rw.line;
    it.split = opt.allTest ? "test" : splitName.at(rw.split);
    const stdfs::path vol = volRoot / (rw.id + ".npz");
    if (opt.checkFiles && !stdfs::exists(vol, ec)) {
      r.skipped.push_back({rw.file, rw.line, rw.id, "volume file not found"});
      continue;
    }
    it.images.push_back(vol.lexically_normal().string());
    it.overrides.spacing = {opt.spacing, opt.spacing, opt.spacing};
    // Slices are stored head first (k towards the feet): the 9-number orientation says so, and
    // readVolume brings the volume to LPS+ like every other CT.
    static const double kHeadFirst[9] = {1, 0, 0, 0, 1, 0, 0, 0, -1};
    it.overrides.setOrientation(kHeadFirst, 9);
    for (const auto& o : outs) {
      float v = 0;
      bool unknown = false;
      for (const auto& f : o.from) {
        auto a = rw.abn.find(f);
        if (a == rw.abn.end() || std::isnan(a->second))
          unknown = true;
        else if (a->second == 1)
          v = 1;
      }
      it.labels.push_back(v == 1 ? 1.0f : unknown ? NAN : 0.0f);
    }
    r.manifest.items.push_back(std::move(it));
  }
  r.manifest.path = root.string();
  r.notes.push_back(fmt::format(
      "volumes: <NoteAcc_DEID>.npz, array `ct` (int16 HU, clipped to [-1000, 1000] by the release), read with "
      "axes [slice, row, column] -> voxel (i, j, k) = ct[k, j, i]; spacing {:g} x {:g} x {:g} mm written as overrides",
      opt.spacing, opt.spacing, opt.spacing));
  r.notes.push_back(
      "orientation: the files carry none; RAD-ChestCT's preprocessing sorts slices by descending position along the "
      "slice normal (head first for axial scans), so k runs head -> feet: written as the override orientation "
      "[1 0 0, 0 1 0, 0 0 -1], which brings the volumes to LPS+ like CT-RATE's");
  r.notes.push_back("patient: unknown (the label tables carry no patient id); items are grouped by NoteAcc_DEID");
  if (opt.allTest) r.notes.push_back("--all-test: every item is in split `test` (CT-CLIP's external validation)");
  return r;
}

}  // namespace biud::image
