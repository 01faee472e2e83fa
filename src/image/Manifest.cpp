#include "biud/image/Manifest.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"
#include "biud/core/Log.h"
#include "biud/text/Utf8.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

constexpr float kUnknown = std::numeric_limits<float>::quiet_NaN();

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == suffix;
}

/// 0/1/true/false/empty/NaN/-1; anything else is not a label value.
bool parseLabel(const std::string& raw, float& out) {
  const std::string s = lower(trim(raw));
  if (s.empty() || s == "nan" || s == "na" || s == "null" || s == "none") {
    out = kUnknown;
    return true;
  }
  if (s == "1" || s == "1.0" || s == "true" || s == "yes") {
    out = 1.0f;
    return true;
  }
  if (s == "0" || s == "0.0" || s == "false" || s == "no" || s == "-0.0") {
    out = 0.0f;
    return true;
  }
  if (s == "-1" || s == "-1.0") {  // CheXpert "uncertain"
    out = kUnknown;
    return true;
  }
  return false;
}

std::string resolvePath(const stdfs::path& base, const std::string& p) {
  const std::string t = trim(p);
  if (t.empty()) return t;
  stdfs::path q(t);
  return q.is_absolute() ? q.lexically_normal().string() : (base / q).lexically_normal().string();
}

std::vector<std::string> splitImages(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ';' || c == '|') {
      if (!trim(cur).empty()) out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!trim(cur).empty()) out.push_back(trim(cur));
  return out;
}

/// Columns that override a volume's header (see VolumeOverrides in Volume.h).
const std::vector<std::string>& overrideColumns() {
  static const std::vector<std::string> k = {"spacing_x",         "spacing_y",   "spacing_z", "rescale_slope",
                                             "rescale_intercept", "orientation", "origin"};
  return k;
}

const std::set<std::string>& knownColumns() {
  static const std::set<std::string> k = [] {
    std::set<std::string> s = {"id", "image", "report", "findings", "impression", "split", "patient"};
    for (const auto& c : overrideColumns()) s.insert(c);
    return s;
  }();
  return k;
}

}  // namespace

std::vector<double> parseNumberList(const std::string& raw, bool* okOut) {
  bool ok = true;
  std::vector<double> out;
  std::string cur;
  ok = true;
  auto flush = [&] {
    if (cur.empty()) return;
    char* end = nullptr;
    const double d = std::strtod(cur.c_str(), &end);
    if (end == cur.c_str() || *end != '\0') ok = false;
    out.push_back(d);
    cur.clear();
  };
  for (char c : raw) {
    if (c == ' ' || c == ',' || c == ';' || c == '\\' || c == '[' || c == ']' || c == '(' || c == ')' || c == '\t' ||
        c == '"' || c == '\'')
      flush();
    else
      cur += c;
  }
  flush();
  if (okOut) *okOut = ok;
  return out;
}

namespace {

/// Record builder shared by CSV and JSONL: columns arrive as strings.
struct Builder {
  std::string file;
  stdfs::path base;
  ManifestOptions opt;
  std::vector<std::string> labelNames;
  Manifest m;
  std::unordered_map<std::string, int> seen;

  void setColumns(const std::vector<std::string>& cols) {
    for (const char* req : {"id", "image"})
      BIUD_CHECK(std::find(cols.begin(), cols.end(), req) != cols.end(), DataError,
                 "manifest `{}`: required column `{}` missing (columns: {})", file, req, fmt::join(cols, ", "));
    if (!opt.labels.empty()) {
      for (const auto& l : opt.labels)
        BIUD_CHECK(std::find(cols.begin(), cols.end(), l) != cols.end(), DataError,
                   "manifest `{}`: label column `{}` (data.labels) missing (columns: {})", file, l,
                   fmt::join(cols, ", "));
      labelNames = opt.labels;
    } else {
      for (const auto& c : cols)
        if (!knownColumns().count(c) && std::find(opt.ignore.begin(), opt.ignore.end(), c) == opt.ignore.end())
          labelNames.push_back(c);
    }
    m.labelNames = labelNames;
  }

  /// spacing_x/y/z, rescale_slope/intercept, orientation, origin: numbers, all-or-none per group.
  template <class Get>
  void readOverrides(ManifestItem& it, Get& get, int line) {
    auto numbers = [&](const char* col, size_t want) {
      bool ok = true;
      const std::string raw = get(col);
      auto v = parseNumberList(raw, &ok);
      if (raw.empty() || lower(raw) == "nan") return std::vector<double>{};
      BIUD_CHECK(ok && v.size() == want, DataError,
                 "manifest `{}` line {} (id `{}`): column `{}` has `{}`; expected {} number{}", file, line, it.id, col,
                 raw, want, want > 1 ? "s" : "");
      for (double d : v)
        BIUD_CHECK(std::isfinite(d), DataError,
                   "manifest `{}` line {} (id `{}`): column `{}` has a non-finite value `{}`", file, line, it.id, col,
                   raw);
      return v;
    };
    VolumeOverrides& o = it.overrides;
    const char* sp[3] = {"spacing_x", "spacing_y", "spacing_z"};
    int given = 0;
    for (int d = 0; d < 3; ++d) {
      auto v = numbers(sp[d], 1);
      if (!v.empty()) {
        BIUD_CHECK(v[0] > 0, DataError, "manifest `{}` line {} (id `{}`): `{}` = {} mm; spacing must be positive", file,
                   line, it.id, sp[d], v[0]);
        o.spacing[d] = v[0];
        ++given;
      }
    }
    BIUD_CHECK(given == 0 || given == 3, DataError,
               "manifest `{}` line {} (id `{}`): give all of spacing_x, spacing_y, spacing_z or none", file, line,
               it.id);
    auto slope = numbers("rescale_slope", 1), inter = numbers("rescale_intercept", 1);
    BIUD_CHECK(slope.empty() == inter.empty(), DataError,
               "manifest `{}` line {} (id `{}`): give both rescale_slope and rescale_intercept or neither", file, line,
               it.id);
    if (!slope.empty()) {
      BIUD_CHECK(slope[0] != 0, DataError, "manifest `{}` line {} (id `{}`): rescale_slope is 0", file, line, it.id);
      o.slope = slope[0];
      o.intercept = inter[0];
    }
    {
      bool ok = true;
      const std::string raw = get("orientation");
      auto ori = parseNumberList(raw, &ok);
      if (!raw.empty() && lower(raw) != "nan")
        BIUD_CHECK(ok && o.setOrientation(ori.data(), ori.size()), DataError,
                   "manifest `{}` line {} (id `{}`): column `orientation` has `{}`; expected 6 numbers (DICOM "
                   "ImageOrientationPatient) or 9 (the directions of axes i, j, k)",
                   file, line, it.id, raw);
    }
    auto org = numbers("origin", 3);
    for (size_t k = 0; k < org.size(); ++k) o.origin[k] = org[k];
  }

  void add(const std::map<std::string, std::string>& rec, int line, const std::vector<std::string>* imageList) {
    ManifestItem it;
    it.line = line;
    auto get = [&](const char* k) {
      auto f = rec.find(k);
      return f == rec.end() ? std::string() : trim(f->second);
    };
    it.id = get("id");
    BIUD_CHECK(!it.id.empty(), DataError, "manifest `{}` line {}: empty `id`", file, line);
    // Ids go into JSON files (the cache index, failures.jsonl, results), which hold UTF-8 only.
    BIUD_CHECK(text::utf8::valid(it.id), DataError,
               "manifest `{}` line {}: `id` is not valid UTF-8 (a file saved as Latin-1 or another code page?); "
               "convert the manifest to UTF-8, e.g. iconv -f latin1 -t utf-8",
               file, line);
    auto [pos, fresh] = seen.emplace(it.id, line);
    BIUD_CHECK(fresh, DataError, "manifest `{}` line {}: duplicate id `{}` (first on line {})", file, line, it.id,
               pos->second);
    const auto imgs = imageList ? *imageList : splitImages(get("image"));
    BIUD_CHECK(!imgs.empty(), DataError, "manifest `{}` line {} (id `{}`): empty `image`", file, line, it.id);
    for (const auto& p : imgs) {
      it.images.push_back(resolvePath(base, p));
      if (opt.checkFiles) {
        std::error_code ec;
        BIUD_CHECK(stdfs::exists(it.images.back(), ec), IoError,
                   "manifest `{}` line {} (id `{}`): image `{}` not found", file, line, it.id, it.images.back());
      }
    }
    {
      auto f = rec.find("report");
      if (f != rec.end()) it.report = f->second;
    }
    {
      auto f = rec.find("findings");
      if (f != rec.end()) it.findings = f->second;
    }
    {
      auto f = rec.find("impression");
      if (f != rec.end()) it.impression = f->second;
    }
    it.split = get("split");
    it.patient = get("patient");
    readOverrides(it, get, line);
    it.labels.resize(labelNames.size(), kUnknown);
    for (size_t l = 0; l < labelNames.size(); ++l) {
      auto f = rec.find(labelNames[l]);
      if (f == rec.end()) continue;
      BIUD_CHECK(parseLabel(f->second, it.labels[l]), DataError,
                 "manifest `{}` line {} (id `{}`): column `{}` has value `{}`; label columns hold 0/1 or empty "
                 "(unknown). If `{}` is not a label, list it in the ignored columns",
                 file, line, it.id, labelNames[l], f->second, labelNames[l]);
    }
    m.items.push_back(std::move(it));
  }
};

std::string jsonToString(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return "";
    return fmt::format("{}", d);
  }
  return v.dump();
}

}  // namespace

std::string ManifestItem::text(const std::vector<std::string>& sections) const {
  std::string out;
  auto add = [&](const std::string& s) {
    const std::string t = trim(s);
    if (t.empty()) return;
    if (!out.empty()) out += ' ';
    out += t;
  };
  for (const auto& s : sections) {
    if (s == "findings")
      add(findings);
    else if (s == "impression")
      add(impression);
    else if (s == "report")
      add(report);
  }
  if (out.empty()) add(report);
  return out;
}

std::vector<size_t> Manifest::indicesOf(const std::string& split) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < items.size(); ++i)
    if (split.empty() || items[i].split == split) out.push_back(i);
  return out;
}

long Manifest::find(const std::string& id) const {
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].id == id) return static_cast<long>(i);
  return -1;
}

std::vector<std::vector<std::string>> parseCsv(const std::string& text, const std::string& name,
                                               std::vector<int>* lines) {
  auto rec = csv::parseRecords(text, name);
  if (lines)
    for (auto l : rec.lines) lines->push_back(static_cast<int>(l));
  return std::move(rec.rows);
}

Manifest readManifest(const std::string& path, const ManifestOptions& opt) {
  fs::requireFile(path, "manifest");
  const std::string text = fs::readTextFile(path);  // `.csv.gz` / `.jsonl.gz` inflated transparently
  const std::string kind = fs::withoutGz(path);
  Builder b;
  b.file = path;
  b.base = stdfs::absolute(stdfs::path(path)).parent_path();
  b.opt = opt;
  b.m.path = path;
  if (endsWith(kind, ".jsonl") || endsWith(kind, ".ndjson")) {
    std::istringstream in(text);
    std::string lineText;
    int line = 0;
    bool first = true;
    while (std::getline(in, lineText)) {
      ++line;
      if (trim(lineText).empty()) continue;
      // A key given twice in one record is an error (nlohmann::json would keep the last silently).
      const nlohmann::json j = fs::parseJson(lineText, path, "manifest record", {}, static_cast<std::size_t>(line));
      BIUD_CHECK(j.is_object(), DataError, "manifest `{}` line {}: expected a JSON object per line", path, line);
      std::vector<std::string> keys;
      std::map<std::string, std::string> rec;
      std::vector<std::string> images;
      bool imageArray = false;
      for (auto it = j.begin(); it != j.end(); ++it) {
        keys.push_back(it.key());
        if (it.key() == "image" && it.value().is_array()) {
          imageArray = true;
          for (const auto& x : it.value()) images.push_back(jsonToString(x));
        } else {
          rec[it.key()] = jsonToString(it.value());
        }
      }
      if (first) {
        b.setColumns(keys);  // the first record fixes the label columns
        first = false;
      } else {
        for (const char* req : {"id", "image"})
          BIUD_CHECK(j.contains(req), DataError, "manifest `{}` line {}: required key `{}` missing", path, line, req);
        for (const auto& k : keys)
          BIUD_CHECK(knownColumns().count(k) ||
                         std::find(b.labelNames.begin(), b.labelNames.end(), k) != b.labelNames.end() ||
                         std::find(opt.ignore.begin(), opt.ignore.end(), k) != opt.ignore.end() || !opt.labels.empty(),
                     DataError, "manifest `{}` line {}: unknown key `{}` (not on the first line; known: {})", path,
                     line, k, fmt::join(b.labelNames, ", "));
      }
      b.add(rec, line, imageArray ? &images : nullptr);
    }
    BIUD_CHECK(!first, DataError, "manifest `{}` is empty", path);
  } else if (endsWith(kind, ".csv") || endsWith(kind, ".tsv")) {
    csv::ParseOptions po;
    po.separator = endsWith(kind, ".tsv") ? '\t' : ',';  // (a `.tsv` was split at commas before)
    auto rec = csv::parseRecords(text, path, po);
    auto& rows = rec.rows;
    std::vector<int> lines(rec.lines.begin(), rec.lines.end());
    BIUD_CHECK(!rows.empty(), DataError, "manifest `{}` is empty (expected a header line)", path);
    // Column names are trimmed; a name given twice (`a` and ` a` included) or a column without a
    // name is an error: `rec` below keeps one value per name, so a second `label` column would
    // silently replace the first, and a nameless one would become a label called "".
    csv::checkHeader(rows[0], path, static_cast<std::size_t>(lines[0]));
    std::vector<std::string> cols;
    for (const auto& c : rows[0]) cols.push_back(trim(c));
    for (size_t c = 0; c < cols.size(); ++c)
      BIUD_CHECK(!cols[c].empty(), DataError,
                 "manifest `{}` line {}: column {} of the header has no name; name it (or delete the column: a "
                 "pandas index has no name, write the table with to_csv(index=False))",
                 path, lines[0], c + 1);
    b.setColumns(cols);
    for (size_t r = 1; r < rows.size(); ++r) {
      BIUD_CHECK(rows[r].size() == cols.size(), DataError, "manifest `{}` line {}: {} fields, the header has {}", path,
                 lines[r], rows[r].size(), cols.size());
      std::map<std::string, std::string> rec;
      for (size_t c = 0; c < cols.size(); ++c) rec[cols[c]] = rows[r][c];
      b.add(rec, lines[r], nullptr);
    }
  } else {
    BIUD_THROW(DataError,
               "manifest `{}`: unknown extension (use .csv or .jsonl, optionally gzip-compressed as .csv.gz)", path);
  }
  return std::move(b.m);
}

namespace {
std::string csvField(const std::string& s) { return csv::quote(s); }
}  // namespace

void writeManifestCsv(const std::string& path, const Manifest& m) {
  bool spacing = false, rescale = false, orientation = false, origin = false;
  for (const auto& it : m.items) {
    spacing |= it.overrides.hasSpacing();
    rescale |= it.overrides.hasRescale();
    orientation |= it.overrides.hasOrientation();
    origin |= it.overrides.hasOrigin();
  }
  std::string out = "id,image,report,findings,impression,split,patient";
  if (spacing) out += ",spacing_x,spacing_y,spacing_z";
  if (rescale) out += ",rescale_slope,rescale_intercept";
  if (orientation) out += ",orientation";
  if (origin) out += ",origin";
  for (const auto& l : m.labelNames) out += "," + csvField(l);
  out += "\n";
  // Shortest text that reads back to the same double.
  auto num = [](double d) { return std::isnan(d) ? std::string() : fmt::format("{}", d); };
  auto nums = [&](const double* d, size_t n) {
    if (std::isnan(d[0])) return std::string();
    std::string s;
    for (size_t i = 0; i < n; ++i) s += (i ? " " : "") + num(d[i]);
    return s;
  };
  for (const auto& it : m.items) {
    std::string imgs;
    for (size_t i = 0; i < it.images.size(); ++i) imgs += (i ? ";" : "") + it.images[i];
    out += fmt::format("{},{},{},{},{},{},{}", csvField(it.id), csvField(imgs), csvField(it.report),
                       csvField(it.findings), csvField(it.impression), csvField(it.split), csvField(it.patient));
    const auto& o = it.overrides;
    if (spacing) out += fmt::format(",{},{},{}", num(o.spacing[0]), num(o.spacing[1]), num(o.spacing[2]));
    if (rescale) out += fmt::format(",{},{}", num(o.slope), num(o.intercept));
    if (orientation) out += "," + csvField(nums(o.orientation.data(), 9));
    if (origin) out += "," + csvField(nums(o.origin.data(), 3));
    for (float v : it.labels) out += std::isnan(v) ? std::string(",") : fmt::format(",{}", static_cast<int>(v));
    out += "\n";
  }
  fs::atomicWrite(path, out);
}

void splitReportSections(const std::string& report, std::string& findings, std::string& impression) {
  findings.clear();
  impression.clear();
  const std::string up = [&] {
    std::string u = report;
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
  }();
  const size_t f = up.find("FINDINGS:");
  const size_t i = up.find("IMPRESSION:");
  if (f != std::string::npos) {
    const size_t end = (i != std::string::npos && i > f) ? i : report.size();
    findings = trim(report.substr(f + 9, end - f - 9));
  }
  if (i != std::string::npos) {
    const size_t end = (f != std::string::npos && f > i) ? f : report.size();
    impression = trim(report.substr(i + 11, end - i - 11));
  }
  // Collapse the line breaks of the free text.
  for (std::string* s : {&findings, &impression}) {
    std::string out;
    bool space = false;
    for (char c : *s) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        space = true;
      } else {
        if (space && !out.empty()) out += ' ';
        out += c;
        space = false;
      }
    }
    *s = out;
  }
}

}  // namespace biud::image
