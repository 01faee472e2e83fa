// MIMIC-CXR-JPG release -> manifest of X-rays with reports (Import.h). Conventions checked
// against the release's own documentation (PhysioNet, MIMIC-CXR-JPG 2.0.0/2.1.0) and readers of it
// (docs/data.md, "MIMIC-CXR-JPG").
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/image/Import.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

using csv::trim;

/// `mimic-cxr-2.0.0-<kind>.csv.gz` (or `.csv`) under root; the 2.1.0 release keeps the 2.0.0 names.
std::optional<stdfs::path> findTable(const stdfs::path& root, const std::string& kind) {
  std::error_code ec;
  for (const char* ver : {"2.0.0", "2.1.0"})
    for (const char* ext : {".csv.gz", ".csv"}) {
      const stdfs::path p = root / fmt::format("mimic-cxr-{}-{}{}", ver, kind, ext);
      if (stdfs::exists(p, ec)) return p;
    }
  return std::nullopt;
}

/// CheXpert label value: 1.0 positive, 0.0 negative, -1.0 uncertain, empty = not mentioned.
float chexpertValue(const std::string& raw, const MimicCxrImportOptions& opt, bool& ok) {
  const std::string t = trim(raw);
  ok = true;
  auto policy = [](const std::string& p) { return p == "positive" ? 1.0f : p == "negative" ? 0.0f : NAN; };
  if (t.empty() || t == "nan" || t == "NaN") return policy(opt.blank);
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || *end != '\0') {
    ok = false;
    return NAN;
  }
  if (d == 1.0) return 1.0f;
  if (d == 0.0) return 0.0f;
  if (d == -1.0) return policy(opt.uncertain);
  ok = false;
  return NAN;
}

}  // namespace

ImportResult importMimicCxr(const MimicCxrImportOptions& opt) {
  ImportResult r;
  r.dataset = "mimic-cxr";
  BIUD_CHECK(!opt.root.empty(), ConfigError, "mimic-cxr: --root (the MIMIC-CXR-JPG folder) is required");
  for (const auto* p : {&opt.uncertain, &opt.blank})
    BIUD_CHECK(*p == "unknown" || *p == "positive" || *p == "negative", ConfigError,
               "mimic-cxr: label policy `{}` (unknown, positive or negative)", *p);
  const stdfs::path root = opt.root;
  auto need = [&](const char* kind) {
    auto p = findTable(root, kind);
    BIUD_CHECK(p.has_value(), IoError,
               "MIMIC-CXR-JPG: `mimic-cxr-2.0.0-{}.csv.gz` not found in `{}`; is --root the release folder (the one "
               "holding files/ and the mimic-cxr-2.0.0-*.csv.gz tables)?",
               kind, root.string());
    r.filesRead.push_back(p->string());
    return csv::read(p->string());
  };
  const csv::Table split = need("split");
  const csv::Table meta = need("metadata");
  std::optional<csv::Table> labels;
  if (!opt.labels.empty()) {
    const std::string kind = opt.labels;  // chexpert or negbio
    auto p = findTable(root, kind);
    if (p) {
      r.filesRead.push_back(p->string());
      labels = csv::read(p->string());
    } else {
      r.notes.push_back(fmt::format("no `mimic-cxr-2.0.0-{}.csv.gz`: items have no labels", kind));
    }
  }
  // dicom_id -> ViewPosition
  std::unordered_map<std::string, std::string> view;
  {
    const size_t cd = meta.require("dicom_id"), cv = meta.require("ViewPosition");
    for (const auto& row : meta.rows) view[trim(row[cd])] = trim(row[cv]);
  }
  // study_id -> label values
  std::unordered_map<std::string, std::vector<float>> lab;
  if (labels) {
    const size_t cs = labels->require("study_id"), cj = labels->require("subject_id");
    for (size_t c = 0; c < labels->header.size(); ++c)
      if (c != cs && c != cj) r.manifest.labelNames.push_back(trim(labels->header[c]));
    for (size_t i = 0; i < labels->rows.size(); ++i) {
      const auto& row = labels->rows[i];
      std::vector<float> v;
      size_t k = 0;
      for (size_t c = 0; c < row.size(); ++c) {
        if (c == cs || c == cj) continue;
        bool ok = true;
        v.push_back(chexpertValue(row[c], opt, ok));
        BIUD_CHECK(ok, DataError, "MIMIC-CXR-JPG `{}` line {}: column `{}` has `{}` (1.0, 0.0, -1.0 or empty expected)",
                   labels->source, labels->lines[i], r.manifest.labelNames[k], row[c]);
        ++k;
      }
      lab[trim(row[cs])] = std::move(v);
    }
  }
  const std::set<std::string> views(opt.views.begin(), opt.views.end());
  const stdfs::path reportRoot = opt.reports.empty() ? root : stdfs::path(opt.reports);
  std::unordered_map<std::string, std::pair<std::string, std::string>> sections;  // study -> findings, impression
  const size_t cd = split.require("dicom_id"), cst = split.require("study_id"), csu = split.require("subject_id"),
               csp = split.require("split");
  size_t noReport = 0;
  for (size_t i = 0; i < split.rows.size(); ++i) {
    const auto& row = split.rows[i];
    const int line = static_cast<int>(split.lines[i]);
    ManifestItem it;
    it.id = trim(row[cd]);
    it.line = line;
    const std::string study = trim(row[cst]), subject = trim(row[csu]);
    if (subject.size() < 2) {
      r.skipped.push_back({split.source, line, it.id, "bad subject_id"});
      continue;
    }
    auto v = view.find(it.id);
    const std::string vp = v == view.end() ? std::string() : v->second;
    if (!views.empty() && !views.count(vp)) {
      r.skipped.push_back({split.source, line, it.id,
                           vp.empty() ? "no ViewPosition in the metadata" : "view " + vp + " (not in --views)"});
      continue;
    }
    // files/p10/p10000032/s50414267/<dicom_id>.jpg
    const stdfs::path rel = stdfs::path("files") / ("p" + subject.substr(0, 2)) / ("p" + subject) / ("s" + study);
    const stdfs::path img = root / rel / (it.id + ".jpg");
    std::error_code ec;
    if (opt.checkFiles && !stdfs::exists(img, ec)) {
      r.skipped.push_back({split.source, line, it.id, "image file not found"});
      continue;
    }
    it.images.push_back(img.lexically_normal().string());
    it.patient = subject;
    const std::string sp = trim(row[csp]);
    it.split = sp == "validate" ? "val" : sp;
    auto s = sections.find(study);
    if (s == sections.end()) {
      std::string findings, impression;
      const stdfs::path rep =
          reportRoot / "files" / ("p" + subject.substr(0, 2)) / ("p" + subject) / ("s" + study + ".txt");
      if (stdfs::exists(rep, ec)) splitReportSections(fs::readFile(rep), findings, impression);
      s = sections.emplace(study, std::make_pair(findings, impression)).first;
    }
    it.findings = s->second.first;
    it.impression = s->second.second;
    if (it.findings.empty() && it.impression.empty()) {
      if (opt.requireReport) {
        r.skipped.push_back({split.source, line, it.id, "no FINDINGS/IMPRESSION report text"});
        continue;
      }
      ++noReport;
    }
    if (labels) {
      auto l = lab.find(study);
      it.labels = l != lab.end() ? l->second : std::vector<float>(r.manifest.labelNames.size(), NAN);
    }
    r.manifest.items.push_back(std::move(it));
  }
  r.manifest.path = split.source;
  if (noReport)
    r.notes.push_back(fmt::format("{} images kept without report text (--require-report skips them)", noReport));
  r.notes.push_back(fmt::format("views kept: {}; CheXpert -1 (uncertain) -> {}, empty (not mentioned) -> {}",
                                views.empty() ? std::string("all") : fmt::format("{}", fmt::join(opt.views, ", ")),
                                opt.uncertain, opt.blank));
  return r;
}

}  // namespace biud::image
