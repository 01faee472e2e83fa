#include "biud/data/TeacherFeatures.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Rng.h"
#include "biud/image/CtCache.h"
#include "biud/image/Manifest.h"
#include "biud/tensor/Safetensors.h"

namespace biud::data {

namespace {
constexpr const char* kFormat = "biud-teacher-features-2";
constexpr const char* kFormatV1 = "biud-teacher-features-1";

namespace stdfs = std::filesystem;

/// FNV-1a over a sequence of length-prefixed fields (so that "ab","c" and "a","bc" differ).
class FieldHash {
 public:
  FieldHash& add(std::string_view s) {
    const auto n = static_cast<std::uint64_t>(s.size());
    mix(&n, sizeof n);
    mix(s.data(), s.size());
    return *this;
  }
  std::string hex() const { return fmt::format("{:016x}", h_); }

 private:
  void mix(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ULL;
  }
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

std::string readBytes(const stdfs::path& p) {
  std::ifstream f(p, std::ios::binary);
  BIUD_CHECK(f.good(), IoError, "cannot read `{}`", p.string());
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// Size and content digest of a file, streamed in 4 MiB blocks (a checkpoint may be GBs): the
/// crc32 (libdeflate/zlib, fast) of each block, chained through FNV-1a.
std::string fileDigest(const stdfs::path& p) {
  std::ifstream f(p, std::ios::binary);
  BIUD_CHECK(f.good(), IoError, "cannot read `{}`", p.string());
  std::vector<char> buf(std::size_t{1} << 22);
  std::uint64_t n = 0;
  FieldHash blocks;
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<std::uint64_t>(f.gcount());
    if (got == 0) break;
    blocks.add(fmt::format("{:08x}", image::crc32Of(buf.data(), got)));
    n += got;
  }
  return fmt::format("{}:{}", n, blocks.hex());
}

}  // namespace

std::string checkpointFingerprint(const std::string& checkpointDir, const std::string& runDir) {
  const stdfs::path ckpt(checkpointDir), root(runDir);
  FieldHash h;
  h.add("model").add(fileDigest(ckpt / "model.safetensors"));
  if (stdfs::exists(ckpt / "ema.safetensors")) h.add("ema").add(fileDigest(ckpt / "ema.safetensors"));
  if (stdfs::exists(root / "config.resolved.yaml")) h.add("config").add(readBytes(root / "config.resolved.yaml"));
  return h.hex();
}

std::string manifestFingerprint(const image::Manifest& m, const std::vector<std::string>& sections) {
  FieldHash h;
  for (const auto& it : m.items) {
    h.add(it.id).add(it.text(sections)).add(std::to_string(it.images.size()));
    for (const auto& p : it.images) h.add(p);
  }
  return h.hex();
}

void TeacherFeatures::save(const std::string& path) const {
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) joined += (i ? "\n" : "") + ids[i];
  const auto n = static_cast<std::int64_t>(ids.size());
  torch::Tensor cand = candidates.defined() ? candidates : h_star.unsqueeze(1);
  torch::Tensor sc = scores.defined() ? scores : torch::zeros({n, cand.size(1)}, torch::kFloat32);
  BIUD_CHECK(cand.dim() == 3 && cand.size(0) == n && sc.dim() == 2 && sc.size(0) == n && sc.size(1) == cand.size(1),
             ValueError, "teacher features for `{}`: {} ids, h* {}, scores {} do not fit [N, K, d] / [N, K]", path, n,
             c10::str(cand.sizes()), c10::str(sc.sizes()));
  tensor::writeSafetensors(path,
                           {{"h_star", cand.contiguous().cpu()},
                            {"scores", sc.to(torch::kFloat32).contiguous().cpu()},
                            {"report_embedding", report_embedding.contiguous().cpu()}},
                           {{"ct_ids", joined},
                            {"format", kFormat},
                            {"expert_fingerprint", fingerprint.expert},
                            {"ct_manifest_fingerprint", fingerprint.ct_manifest},
                            {"xray_manifest_fingerprint", fingerprint.xray_manifest}});
}

TeacherFeatures TeacherFeatures::load(const std::string& path) {
  std::map<std::string, std::string> meta;
  auto t = tensor::readSafetensors(path, &meta);
  BIUD_CHECK(t.count("h_star") && t.count("report_embedding") && meta.count("ct_ids"), DataError,
             "`{}` is not a teacher-features file written by biud-retrieve (needs h_star, report_embedding, ct_ids)",
             path);
  const std::string format = meta.count("format") ? meta.at("format") : kFormatV1;
  BIUD_CHECK(format == kFormat || format == kFormatV1, DataError,
             "`{}` has teacher-features format `{}`; this build reads `{}` and `{}`: re-run biud-retrieve", path,
             format, kFormatV1, kFormat);
  TeacherFeatures f;
  auto h = t.at("h_star");
  BIUD_CHECK(h.dim() == 2 || h.dim() == 3, DataError, "`{}`: h_star has shape {}, expected [N, d_X] or [N, K, d_X]",
             path, c10::str(h.sizes()));
  f.candidates = h.dim() == 2 ? h.unsqueeze(1) : h;  // format 1: top-1 only
  f.h_star = f.candidates.select(1, 0);
  const auto n = f.candidates.size(0), k = f.candidates.size(1);
  BIUD_CHECK(k >= 1, DataError, "`{}`: h_star holds no X-ray per CT (shape {})", path, c10::str(h.sizes()));
  if (t.count("scores")) {
    f.scores = t.at("scores").to(torch::kFloat32);
    BIUD_CHECK(f.scores.dim() == 2 && f.scores.size(0) == n && f.scores.size(1) == k, DataError,
               "`{}`: scores have shape {}, expected [{}, {}] like h_star", path, c10::str(f.scores.sizes()), n, k);
  } else {
    BIUD_CHECK(k == 1, DataError, "`{}`: h_star holds {} X-rays per CT but the file has no scores", path, k);
    f.scores = torch::zeros({n, 1}, torch::kFloat32);
  }
  f.report_embedding = t.at("report_embedding");
  auto metaOr = [&](const char* k) { return meta.count(k) ? meta.at(k) : std::string(); };
  f.fingerprint = {metaOr("expert_fingerprint"), metaOr("ct_manifest_fingerprint"),
                   metaOr("xray_manifest_fingerprint")};
  std::string cur;
  for (char c : meta.at("ct_ids") + "\n") {
    if (c == '\n') {
      if (!cur.empty()) f.ids.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  BIUD_CHECK(static_cast<std::int64_t>(f.ids.size()) == n, DataError, "`{}`: {} ids but {} feature rows", path,
             f.ids.size(), n);
  for (size_t i = 0; i < f.ids.size(); ++i) f.row[f.ids[i]] = static_cast<std::int64_t>(i);
  return f;
}

torch::Tensor TeacherFeatures::rowsOf(const std::vector<std::string>& want, const std::string& source) const {
  std::vector<std::int64_t> r;
  r.reserve(want.size());
  for (const auto& id : want) {
    auto it = row.find(id);
    BIUD_CHECK(it != row.end(), DataError,
               "CT `{}` has no teacher features in `{}`: re-run biud-retrieve on the same manifest", id, source);
    r.push_back(it->second);
  }
  return torch::tensor(r);
}

void TeacherFeatures::requireTopK(int k, const std::string& source) const {
  BIUD_CHECK(k >= 1, ConfigError, "data.pairing_top_k must be >= 1, got {}", k);
  BIUD_CHECK(k <= topK(), ConfigError,
             "data.pairing_top_k = {} but `{}` holds the teacher features of only {} X-ray(s) per CT: "
             "re-run biud-retrieve --top-k {} (or lower data.pairing_top_k)",
             k, source, topK(), k);
}

std::vector<std::string> TeacherFeatures::checkFingerprint(const TeacherFingerprint& now,
                                                           const std::string& source) const {
  struct Part {
    const char* name;
    const std::string &file, &now;
    const char* what;
  };
  const Part parts[] = {
      {"expert", fingerprint.expert, now.expert, "the expert checkpoint (model.teacher)"},
      {"ct_manifest", fingerprint.ct_manifest, now.ct_manifest, "the CT manifest (data.manifest)"},
      {"xray_manifest", fingerprint.xray_manifest, now.xray_manifest, "the X-ray corpus (data.xray_manifest)"},
  };
  std::vector<std::string> compared, differ;
  for (const auto& p : parts) {
    if (p.file.empty() || p.now.empty()) continue;
    compared.push_back(p.name);
    if (p.file != p.now)
      differ.push_back(fmt::format("{}: the file was made from {} with fingerprint {}, this run reads fingerprint {}",
                                   p.name, p.what, p.file, p.now));
  }
  if (!differ.empty()) {
    std::string msg;
    for (const auto& d : differ) msg += (msg.empty() ? "" : "; ") + d;
    BIUD_THROW(DataError,
               "teacher features `{}` do not belong to this run's data and expert ({}). Its h* would be matched to the "
               "wrong CTs or come from another expert: re-run biud-retrieve with this config (same model.teacher, "
               "data.manifest and data.xray_manifest) before training",
               source, msg);
  }
  return compared;
}

std::vector<std::int64_t> TeacherFeatures::shuffleRows(std::uint64_t seed) {
  const auto n = static_cast<std::int64_t>(ids.size());
  std::vector<std::int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 eng(seed);
  std::shuffle(perm.begin(), perm.end(), eng);
  const auto idx = torch::tensor(perm);
  candidates = candidates.index_select(0, idx);
  h_star = candidates.select(1, 0);
  if (scores.defined()) scores = scores.index_select(0, idx);
  return perm;
}

std::uint64_t pairingSeed(std::uint64_t seed, std::int64_t epoch, std::int64_t datasetIndex) {
  const auto base = deriveSeed(deriveSeed(seed, "pairing"), static_cast<std::uint64_t>(epoch));
  return deriveSeed(base, static_cast<std::uint64_t>(datasetIndex));
}

std::int64_t drawRank(const float* scores, std::int64_t k, double tau, std::uint64_t seed) {
  BIUD_CHECK(tau > 0 && std::isfinite(tau), ValueError, "data.pairing_tau must be > 0, got {}", tau);
  if (k <= 1) return 0;
  double top = scores[0];
  for (std::int64_t j = 1; j < k; ++j) top = std::max(top, static_cast<double>(scores[j]));
  std::vector<double> w(static_cast<size_t>(k));
  double sum = 0;
  for (std::int64_t j = 0; j < k; ++j) sum += w[static_cast<size_t>(j)] = std::exp((scores[j] - top) / tau);
  const double u = static_cast<double>(splitmix64(seed) >> 11) * 0x1.0p-53;  // [0, 1)
  double acc = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    acc += w[static_cast<size_t>(j)] / sum;
    if (u < acc) return j;
  }
  return k - 1;  // rounding: acc ended a hair below 1
}

TeacherFeatures::Draw TeacherFeatures::draw(const torch::Tensor& rows, const std::vector<std::int64_t>& datasetIndices,
                                            int k, double tau, std::uint64_t seed, std::int64_t epoch) const {
  const auto r = rows.to(torch::kInt64).contiguous();
  const std::int64_t n = r.size(0);
  BIUD_CHECK(static_cast<std::int64_t>(datasetIndices.size()) == n, ValueError,
             "teacher feature draw: {} rows but {} dataset indices", n, datasetIndices.size());
  Draw d;
  d.ranks.assign(static_cast<size_t>(n), 0);
  if (k <= 1) {  // today's behaviour: rank 1, no randomness
    d.h_star = h_star.index_select(0, r);
    return d;
  }
  requireTopK(k, "the teacher features");
  BIUD_CHECK(scores.defined() && scores.dim() == 2 && scores.size(1) == topK(), ValueError,
             "teacher features hold {} X-rays per CT but no matching [N, {}] scores", topK(), topK());
  const auto sc = scores.contiguous();
  const auto* sp = sc.data_ptr<float>();
  const auto* rp = r.data_ptr<std::int64_t>();
  const std::int64_t K = scores.size(1);
  std::vector<std::int64_t> flat(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto j = drawRank(sp + rp[i] * K, k, tau, pairingSeed(seed, epoch, datasetIndices[static_cast<size_t>(i)]));
    d.ranks[static_cast<size_t>(i)] = j;
    flat[static_cast<size_t>(i)] = rp[i] * K + j;
  }
  d.h_star = candidates.reshape({-1, candidates.size(2)}).index_select(0, torch::tensor(flat));
  return d;
}

std::string teacherFeaturesPath(const std::string& pairingCsv) {
  return (std::filesystem::path(pairingCsv).parent_path() / "teacher_features.safetensors").string();
}

}  // namespace biud::data
