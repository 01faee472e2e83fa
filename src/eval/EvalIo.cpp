#include "biud/eval/EvalIo.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"

namespace biud::eval {

namespace {

bool endsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

/// Same ids in both tables, or a DataError naming the first id missing from one side.
void checkSameIds(const NumericTable& a, const NumericTable& b) {
  for (const auto& id : a.ids)
    BIUD_CHECK(b.rowOf.count(id), DataError, "id `{}` is in {} but not in {} (both files must list the same cases)", id,
               a.source, b.source);
  for (const auto& id : b.ids)
    BIUD_CHECK(a.rowOf.count(id), DataError, "id `{}` is in {} but not in {} (both files must list the same cases)", id,
               b.source, a.source);
}

std::vector<std::vector<double>> alignedPredictions(const NumericTable& pred, const std::vector<std::string>& ids,
                                                    const std::vector<std::string>& findings) {
  std::vector<int> col;
  for (const auto& f : findings) {
    int c = -1;
    for (std::size_t k = 0; k < pred.columns.size(); ++k)
      if (pred.columns[k] == f) c = static_cast<int>(k);
    BIUD_CHECK(c >= 0, DataError,
               "{}: column `{}` missing (the labels have it; every finding needs a prediction column)", pred.source, f);
    col.push_back(c);
  }
  std::vector<std::vector<double>> out;
  for (const auto& id : ids) {
    const auto& row = pred.values[pred.rowOf.at(id)];
    std::vector<double> v;
    for (std::size_t k = 0; k < findings.size(); ++k) {
      const double p = row[col[k]];
      BIUD_CHECK(std::isfinite(p), DataError,
                 "{}: id `{}`, column `{}`: probability is {} (every prediction must be a finite number)", pred.source,
                 id, findings[k], std::isnan(p) ? "empty or NaN" : "infinite");
      v.push_back(p);
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

LabeledPredictions loadLabeledPredictions(const std::string& predPath, const std::string& labelsPath) {
  const NumericTable lab = readNumericTable(labelsPath), pred = readNumericTable(predPath);
  BIUD_CHECK(!lab.columns.empty(), DataError, "{}: no finding columns besides `id`", labelsPath);
  BIUD_CHECK(!lab.ids.empty(), DataError, "{}: no rows", labelsPath);
  checkSameIds(pred, lab);
  LabeledPredictions out;
  out.ids = lab.ids;
  out.findings = lab.columns;
  for (const auto& c : pred.columns)
    if (std::find(lab.columns.begin(), lab.columns.end(), c) == lab.columns.end())
      log::info("eval", "{}: column `{}` has no labels in {}; ignored", predPath, c, labelsPath);
  for (std::size_t r = 0; r < lab.ids.size(); ++r)
    for (std::size_t k = 0; k < lab.columns.size(); ++k) {
      const double y = lab.values[r][k];
      BIUD_CHECK(std::isnan(y) || y == 0 || y == 1, DataError,
                 "{}: id `{}`, column `{}`: label {} must be 0, 1 or empty (unknown)", labelsPath, lab.ids[r],
                 lab.columns[k], y);
    }
  out.labels = lab.values;
  out.probs = alignedPredictions(pred, out.ids, out.findings);
  return out;
}

std::vector<std::vector<double>> loadPredictionsLike(const std::string& predPath, const LabeledPredictions& like) {
  const NumericTable pred = readNumericTable(predPath);
  for (const auto& id : like.ids)
    BIUD_CHECK(pred.rowOf.count(id), DataError,
               "id `{}` is in the labels but not in {} (both files must list the same cases)", id, predPath);
  return alignedPredictions(pred, like.ids, like.findings);
}

Texts readTexts(const std::string& path) {
  Texts t;
  if (endsWith(path, ".csv")) {
    const CsvTable c = readCsv(path);
    const int idc = c.require("id"), tc = c.require("text");
    std::map<std::string, std::size_t> at;
    for (const auto& row : c.rows) {
      BIUD_CHECK(!row[idc].empty(), DataError, "{}: a row has an empty `id`", path);
      auto [it, fresh] = at.emplace(row[idc], t.ids.size());
      if (fresh) {
        t.ids.push_back(row[idc]);
        t.texts.emplace_back();
      }
      t.texts[it->second].push_back(row[tc]);
    }
    return t;
  }
  fs::requireFile(path, "text file (one report per line)");
  const std::string s = fs::readFile(path);
  std::size_t start = 0, line = 1;
  while (start <= s.size()) {
    std::size_t e = s.find('\n', start);
    if (e == std::string::npos) e = s.size();
    std::string l = s.substr(start, e - start);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!(e == s.size() && l.empty())) {
      t.ids.push_back(std::to_string(line));
      t.texts.push_back({l});
    }
    start = e + 1;
    ++line;
  }
  return t;
}

namespace {

Matrix readNpy(const std::string& path, std::vector<std::string>* ids) {
  const auto bytes = fs::readBytes(path);
  BIUD_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, DataError,
             "{}: not a .npy file (bad magic)", path);
  const int major = bytes[6];
  std::size_t hlen, off;
  if (major == 1) {
    hlen = bytes[8] | (bytes[9] << 8);
    off = 10;
  } else {
    BIUD_CHECK(bytes.size() >= 12, DataError, "{}: truncated .npy header", path);
    hlen = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (static_cast<std::size_t>(bytes[11]) << 24);
    off = 12;
  }
  BIUD_CHECK(off + hlen <= bytes.size(), DataError, "{}: truncated .npy header", path);
  const std::string h(reinterpret_cast<const char*>(bytes.data() + off), hlen);
  auto field = [&](const std::string& key) {
    const auto p = h.find("'" + key + "'");
    BIUD_CHECK(p != std::string::npos, DataError, "{}: .npy header lacks `{}`", path, key);
    return h.substr(h.find(':', p) + 1);
  };
  const std::string descr = field("descr");
  const auto q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  const std::string type = descr.substr(q1 + 1, q2 - q1 - 1);
  BIUD_CHECK(field("fortran_order").find("False") < 3, DataError,
             "{}: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
  const std::string shp = field("shape");
  const auto a = shp.find('('), b = shp.find(')');
  std::vector<std::size_t> dims;
  std::string cur;
  for (char ch : shp.substr(a + 1, b - a - 1)) {
    if (std::isdigit(static_cast<unsigned char>(ch)))
      cur += ch;
    else if (!cur.empty()) {
      dims.push_back(std::stoull(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) dims.push_back(std::stoull(cur));
  BIUD_CHECK(dims.size() == 2, DataError, "{}: expected a 2-D array (rows x dims), got {} dimensions", path,
             dims.size());
  std::size_t es;
  if (type == "<f8" || type == "<i8")
    es = 8;
  else if (type == "<f4" || type == "<i4")
    es = 4;
  else
    BIUD_THROW(DataError, "{}: dtype `{}` not supported (use float32, float64, int32 or int64, little-endian)", path,
               type);
  const std::size_t data = off + hlen;
  BIUD_CHECK(bytes.size() >= data + dims[0] * dims[1] * es, DataError, "{}: file shorter than its shape ({} x {})",
             path, dims[0], dims[1]);
  Matrix m(dims[0], std::vector<double>(dims[1]));
  for (std::size_t i = 0; i < dims[0]; ++i)
    for (std::size_t j = 0; j < dims[1]; ++j) {
      const std::uint8_t* p = bytes.data() + data + (i * dims[1] + j) * es;
      double v;
      if (type == "<f8") {
        std::memcpy(&v, p, 8);
      } else if (type == "<f4") {
        float f;
        std::memcpy(&f, p, 4);
        v = f;
      } else if (type == "<i8") {
        std::int64_t x;
        std::memcpy(&x, p, 8);
        v = static_cast<double>(x);
      } else {
        std::int32_t x;
        std::memcpy(&x, p, 4);
        v = x;
      }
      m[i][j] = v;
    }
  if (ids) {
    ids->clear();
    for (std::size_t i = 0; i < dims[0]; ++i) ids->push_back(std::to_string(i));
  }
  return m;
}

}  // namespace

Matrix readMatrix(const std::string& path, std::vector<std::string>* ids, std::vector<std::string>* header) {
  if (endsWith(path, ".npy")) {
    fs::requireFile(path, ".npy array");
    if (header) header->clear();
    return readNpy(path, ids);
  }
  const CsvTable c = readCsv(path);
  const int idc = c.find("id");
  Matrix m;
  if (ids) ids->clear();
  if (header) {
    header->clear();
    for (std::size_t k = 0; k < c.header.size(); ++k)
      if (static_cast<int>(k) != idc) header->push_back(c.header[k]);
  }
  for (std::size_t r = 0; r < c.rows.size(); ++r) {
    std::vector<double> v;
    for (std::size_t k = 0; k < c.header.size(); ++k) {
      if (static_cast<int>(k) == idc) continue;
      double x;
      BIUD_CHECK(parseDouble(c.rows[r][k], x) && std::isfinite(x), DataError,
                 "{}: row {}, column `{}`: `{}` is not a finite number", path,
                 idc >= 0 ? c.rows[r][idc] : std::to_string(r + 1), c.header[k], c.rows[r][k]);
      v.push_back(x);
    }
    if (ids) ids->push_back(idc >= 0 ? c.rows[r][idc] : std::to_string(r));
    m.push_back(std::move(v));
  }
  BIUD_CHECK(!m.empty(), DataError, "{}: no rows", path);
  return m;
}

std::vector<ReaderRow> readReaders(const std::string& path) {
  const CsvTable c = readCsv(path);
  const int rc = c.require("reader"), sc = c.require("sensitivity"), pc = c.require("specificity"),
            fc = c.find("finding");
  std::vector<ReaderRow> out;
  for (const auto& row : c.rows) {
    ReaderRow r;
    r.reader = row[rc];
    r.finding = fc >= 0 ? row[fc] : "";
    BIUD_CHECK(parseDouble(row[sc], r.sensitivity) && r.sensitivity >= 0 && r.sensitivity <= 1, DataError,
               "{}: reader `{}`: sensitivity `{}` must be a number in [0, 1]", path, r.reader, row[sc]);
    BIUD_CHECK(parseDouble(row[pc], r.specificity) && r.specificity >= 0 && r.specificity <= 1, DataError,
               "{}: reader `{}`: specificity `{}` must be a number in [0, 1]", path, r.reader, row[pc]);
    out.push_back(r);
  }
  BIUD_CHECK(!out.empty(), DataError, "{}: no readers", path);
  return out;
}

}  // namespace biud::eval
