// CT-RATE release -> manifest (Import.h). Conventions checked against the release's own layout
// and the authors' code (docs/data.md, "CT-RATE").
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/image/Import.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

using csv::trim;

std::string stripNii(std::string s) {
  s = trim(s);
  for (const char* e : {".nii.gz", ".nii"}) {
    const std::string ext(e);
    if (s.size() > ext.size() && s.compare(s.size() - ext.size(), ext.size(), ext) == 0)
      return s.substr(0, s.size() - ext.size());
  }
  return s;
}

/// The release's report text: "Not given." (and empty cells) mean no text, as in CT-CLIP's loaders.
std::string reportText(const std::string& s) {
  const std::string t = trim(s);
  return t == "Not given." || t == "nan" ? std::string() : t;
}

/// A table of the release: found, read (gzip-transparent) and remembered in filesRead.
struct Tables {
  ImportResult& r;
  std::optional<csv::Table> read(const stdfs::path& p, bool required, const std::string& what) {
    std::error_code ec;
    stdfs::path q = p;
    if (!stdfs::exists(q, ec) && stdfs::exists(q.string() + ".gz", ec)) q = q.string() + ".gz";
    if (!stdfs::exists(q, ec)) {
      BIUD_CHECK(!required, IoError,
                 "CT-RATE: {} `{}` not found; is --root the release folder (the one holding "
                 "`dataset/`)?",
                 what, p.string());
      r.notes.push_back(fmt::format("{} `{}` not found", what, p.string()));
      return std::nullopt;
    }
    r.filesRead.push_back(q.string());
    return csv::read(q.string());
  }
};

struct Meta {
  std::array<double, 3> spacing{};
  double slope = NAN, intercept = NAN;
  std::vector<double> orientation, origin;
  int line = 0;
  std::string problem;  ///< why the row cannot be used ("" = fine)
};

double number(const std::string& s, bool& ok) {
  const std::string t = trim(s);
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  ok = !t.empty() && end && *end == '\0' && std::isfinite(d);
  return d;
}

}  // namespace

bool parseCtRateName(const std::string& volumeName, CtRateName& out) {
  const std::string id = stripNii(volumeName);
  std::vector<std::string> parts;
  std::string cur;
  for (char c : id) {
    if (c == '_') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  if (parts.size() != 4 || parts[0].empty() || parts[1].empty() || parts[2].empty() || parts[3].empty()) return false;
  auto digits = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  if (!digits(parts[1]) || !digits(parts[3])) return false;
  out.split = parts[0];
  out.patient = parts[0] + "_" + parts[1];
  out.scan = out.patient + "_" + parts[2];
  out.reconstruction = std::stoi(parts[3]);
  return true;
}

ImportResult importCtRate(const CtRateImportOptions& opt) {
  ImportResult r;
  r.dataset = "ct-rate";
  BIUD_CHECK(!opt.root.empty(), ConfigError, "ct-rate: --root (the CT-RATE release folder) is required");
  BIUD_CHECK(opt.rescale == "metadata" || opt.rescale == "file", ConfigError,
             "ct-rate: --rescale `{}` (metadata or file)", opt.rescale);
  std::error_code ec;
  stdfs::path ds = opt.root;
  if (stdfs::is_directory(ds / "dataset", ec)) ds = ds / "dataset";
  BIUD_CHECK(stdfs::is_directory(ds, ec), IoError, "CT-RATE: `{}` is not a folder", opt.root);
  const stdfs::path volRoot = opt.volumeRoot.empty() ? ds : stdfs::path(opt.volumeRoot);
  Tables tables{r};
  // File names of the release, per split (the reports and metadata say "validation", the
  // labels and volume folders "valid").
  struct SplitFiles {
    const char* reports;
    const char* labels;
    const char* metadata;
  };
  const std::map<std::string, SplitFiles> files = {
      {"train", {"train_reports.csv", "train_predicted_labels.csv", "train_metadata.csv"}},
      {"valid", {"validation_reports.csv", "valid_predicted_labels.csv", "validation_metadata.csv"}}};
  std::vector<ManifestItem> items;
  std::vector<std::string> labelNames;
  struct Pending {
    ManifestItem item;
    CtRateName name;
  };
  std::vector<Pending> pending;
  for (const auto& split : opt.splits) {
    auto f = files.find(split);
    BIUD_CHECK(f != files.end(), ConfigError, "ct-rate: unknown split `{}` (train, valid)", split);
    auto reports = tables.read(ds / "radiology_text_reports" / f->second.reports, true, "reports CSV");
    auto labels = tables.read(ds / "multi_abnormality_labels" / f->second.labels, false, "labels CSV");
    auto meta = tables.read(ds / "metadata" / f->second.metadata, false, "metadata CSV");
    const csv::Table& rep = *reports;
    const size_t cName = rep.require("VolumeName"), cFind = rep.require("Findings_EN"),
                 cImp = rep.require("Impressions_EN");
    const auto cClin = rep.find("ClinicalInformation_EN"), cTech = rep.find("Technique_EN");

    // Labels: VolumeName + the label columns, in the release's order.
    std::unordered_map<std::string, std::vector<float>> lab;
    if (labels) {
      const size_t cn = labels->require("VolumeName");
      std::vector<std::string> names;
      for (size_t c = 0; c < labels->header.size(); ++c)
        if (c != cn) names.push_back(trim(labels->header[c]));
      if (labelNames.empty()) labelNames = names;
      BIUD_CHECK(names == labelNames, DataError, "CT-RATE: the label columns of `{}` differ from the other split's",
                 labels->source);
      if (names.size() != 18)
        r.notes.push_back(fmt::format("`{}` has {} label columns (the release has 18)", labels->source, names.size()));
      for (size_t i = 0; i < labels->rows.size(); ++i) {
        const auto& row = labels->rows[i];
        std::vector<float> v;
        size_t k = 0;
        for (size_t c = 0; c < row.size(); ++c) {
          if (c == cn) continue;
          const std::string t = trim(row[c]);
          float x = NAN;
          if (t == "1" || t == "1.0")
            x = 1;
          else if (t == "0" || t == "0.0")
            x = 0;
          else
            BIUD_CHECK(t.empty() || t == "nan", DataError,
                       "CT-RATE `{}` line {}: column `{}` has `{}` (0 or 1 expected)", labels->source, labels->lines[i],
                       names[k], t);
          v.push_back(x);
          ++k;
        }
        lab[stripNii(row[cn])] = std::move(v);
      }
    } else {
      r.notes.push_back(fmt::format("no labels for split `{}`: its items have no label values", split));
    }

    // Metadata: the true spacing and rescale (the NIfTI headers of the release carry neither).
    std::unordered_map<std::string, Meta> md;
    if (meta) {
      const size_t cn = meta->require("VolumeName"), cxy = meta->require("XYSpacing"), cz = meta->require("ZSpacing");
      const size_t cs = meta->require("RescaleSlope"), ci = meta->require("RescaleIntercept");
      const auto co = meta->find("ImageOrientationPatient"), cp = meta->find("ImagePositionPatient");
      for (size_t i = 0; i < meta->rows.size(); ++i) {
        const auto& row = meta->rows[i];
        Meta m;
        m.line = static_cast<int>(meta->lines[i]);
        bool ok1 = true, ok2 = true, ok3 = true, ok4 = true;
        // XYSpacing is written as a Python list "[0.75, 0.75]" (row spacing, column spacing; CT-CLIP
        // reads the first for both).
        const auto xy = parseNumberList(row[cxy], &ok1);
        const double z = number(row[cz], ok2);
        m.slope = number(row[cs], ok3);
        m.intercept = number(row[ci], ok4);
        if (!ok1 || xy.empty() || xy.size() > 2 || !(xy[0] > 0) || !(xy.back() > 0))
          m.problem = "bad XYSpacing";
        else if (!ok2 || !(z > 0))
          m.problem = "bad ZSpacing";
        else if (!ok3 || !ok4 || m.slope == 0)
          m.problem = "bad RescaleSlope/RescaleIntercept";
        if (m.problem.empty()) m.spacing = {xy[0], xy.back(), z};
        if (co) {
          bool ok = true;
          m.orientation = parseNumberList(row[*co], &ok);
          if (!ok || m.orientation.size() != 6) m.orientation.clear();
        }
        if (cp) {
          bool ok = true;
          m.origin = parseNumberList(row[*cp], &ok);
          if (!ok || m.origin.size() != 3) m.origin.clear();
        }
        md[stripNii(row[cn])] = std::move(m);
      }
    } else {
      r.notes.push_back(fmt::format(
          "no metadata CSV for split `{}`: spacing and rescale come from the NIfTI headers, which in the CT-RATE "
          "release do not carry them — the cache will have wrong sizes and HU values unless your files were "
          "re-exported",
          split));
    }

    for (size_t i = 0; i < rep.rows.size(); ++i) {
      const auto& row = rep.rows[i];
      const int line = static_cast<int>(rep.lines[i]);
      const std::string vname = trim(row[cName]);
      CtRateName nm;
      if (!parseCtRateName(vname, nm)) {
        r.skipped.push_back({rep.source, line, vname, "VolumeName does not parse as <split>_<patient>_<scan>_<rec>"});
        continue;
      }
      ManifestItem it;
      it.id = stripNii(vname);
      it.line = line;
      it.patient = nm.patient;
      it.findings = reportText(row[cFind]);
      it.impression = reportText(row[cImp]);
      // The whole report as the release has it, sections named (report-generation targets use
      // findings; retrieval and training use data.report_sections).
      std::string full;
      auto section = [&](const char* head, const std::string& text) {
        if (!text.empty()) full += (full.empty() ? "" : " ") + std::string(head) + ": " + text;
      };
      if (cClin) section("Clinical information", reportText(row[*cClin]));
      if (cTech) section("Technique", reportText(row[*cTech]));
      section("Findings", it.findings);
      section("Impression", it.impression);
      it.report = full;
      const std::string file = it.id + ".nii.gz";
      const std::string dir = opt.volumeDirs.count(nm.split) ? opt.volumeDirs.at(nm.split) : nm.split;
      const stdfs::path vol = volRoot / dir / nm.patient / nm.scan / file;
      if (opt.checkFiles && !stdfs::exists(vol, ec)) {
        r.skipped.push_back({rep.source, line, it.id, "volume file not found"});
        continue;
      }
      it.images.push_back(vol.lexically_normal().string());
      if (meta) {
        auto m = md.find(it.id);
        if (m == md.end()) {
          r.skipped.push_back({rep.source, line, it.id, "no metadata row (spacing and rescale unknown)"});
          continue;
        }
        if (!m->second.problem.empty()) {
          r.skipped.push_back({meta->source, m->second.line, it.id, "metadata: " + m->second.problem});
          continue;
        }
        VolumeOverrides& o = it.overrides;
        if (opt.geometry) {
          o.spacing = m->second.spacing;
          if (!m->second.orientation.empty()) o.setOrientation(m->second.orientation.data(), 6);
          if (!m->second.origin.empty()) std::copy(m->second.origin.begin(), m->second.origin.end(), o.origin.begin());
        }
        if (opt.rescale == "metadata") {
          o.slope = m->second.slope;
          o.intercept = m->second.intercept;
        }
      }
      if (labels) {
        auto l = lab.find(it.id);
        if (l == lab.end())
          r.skipped.push_back({rep.source, line, it.id, "no labels row (kept, labels unknown)"});
        else
          it.labels = l->second;
      }
      pending.push_back({std::move(it), nm});
    }
  }
  // One reconstruction per scan: the lowest reconstruction number that made it this far.
  if (opt.oneReconstruction) {
    std::unordered_map<std::string, int> best;
    for (const auto& p : pending) {
      auto [pos, fresh] = best.emplace(p.name.scan, p.name.reconstruction);
      if (!fresh) pos->second = std::min(pos->second, p.name.reconstruction);
    }
    std::vector<Pending> kept;
    for (auto& p : pending) {
      if (best[p.name.scan] == p.name.reconstruction)
        kept.push_back(std::move(p));
      else
        r.skipped.push_back(
            {"", p.item.line, p.item.id, "another reconstruction of the scan kept (--one-reconstruction)"});
    }
    pending = std::move(kept);
  }
  r.manifest.labelNames = labelNames;
  r.manifest.path = (ds / "radiology_text_reports").string();
  size_t val = 0;
  for (auto& p : pending) {
    ManifestItem& it = p.item;
    // Splits by patient, so the reconstructions and scans of one patient stay together.
    if (p.name.split == "valid")
      it.split = "test";
    else if (inHashedFraction(p.name.patient, opt.valFraction)) {
      it.split = "val";
      ++val;
    } else {
      it.split = p.name.split;
    }
    if (!labelNames.empty() && it.labels.empty()) it.labels.assign(labelNames.size(), NAN);
    r.manifest.items.push_back(std::move(it));
  }
  r.notes.push_back(
      "CT-RATE's `valid` set is split `test` (the zero-shot benchmark set of CT-CLIP and BIUD); split "
      "`val` is a hashed " +
      fmt::format("{:g}", opt.valFraction * 100) + " % of the training patients (" + std::to_string(val) + " volumes)");
  if (opt.rescale == "metadata")
    r.notes.push_back(
        "HU = RescaleSlope * stored value + RescaleIntercept (metadata CSV; CT-CLIP's convention); use "
        "--rescale file for a copy whose files already hold HU");
  return r;
}

}  // namespace biud::image
