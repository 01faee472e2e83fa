#include "biud/retrieval/Features.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/retrieval/Chunked.h"
#include "biud/tensor/Npy.h"
#include "biud/tensor/Safetensors.h"

namespace biud::retrieval {

namespace {

/// Rows per slice of the whole-array checks (bounded temporary memory).
constexpr std::int64_t kSlice = 65536;

bool endsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> splitIds(const std::string& text, const std::string& source) {
  std::vector<std::string> ids;
  std::map<std::string, std::size_t> seen;
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    std::string id = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line;
    if (!id.empty() && id.back() == '\r') id.pop_back();
    BIUD_CHECK(!id.empty(), DataError, "{}: line {} is empty; ids are one per line, none empty", source, line);
    auto [it, fresh] = seen.emplace(id, line);
    BIUD_CHECK(fresh, DataError, "{}: id `{}` on line {} repeats line {}; ids must be unique", source, id, line,
               it->second);
    ids.push_back(std::move(id));
  }
  return ids;
}

}  // namespace

std::int64_t FeatureFile::rowOf(const std::string& id, const std::string& what) const {
  auto it = index.find(id);
  BIUD_CHECK(it != index.end(), DataError, "{} `{}` have no row for id `{}` (the file has {} ids)", what, path, id,
             ids.size());
  return it->second;
}

std::vector<std::string> readIdList(const std::string& path) {
  fs::requireFile(path, "id list (one id per line)");
  return splitIds(fs::readTextFile(path), path);
}

FeatureFile readFeatureFile(const std::string& path, const std::string& idsPath, const std::string& what,
                            const std::string& idsFlag) {
  FeatureFile f;
  f.path = path;
  fs::requireFile(path, what);
  std::map<std::string, std::string> meta;
  if (endsWith(path, ".npy")) {
    f.features = tensor::readNpy(path);
    BIUD_CHECK(!idsPath.empty(), ConfigError, "{} `{}`: a .npy file has no ids; pass {} FILE (one id per line)", what,
               path, idsFlag);
  } else if (endsWith(path, ".safetensors")) {
    auto m = tensor::readSafetensors(path, &meta);
    auto it = m.find("features");
    if (it == m.end()) {
      BIUD_CHECK(m.size() == 1, DataError,
                 "{} `{}`: no tensor `features` and {} tensors in the file; name the one "
                 "to use `features`",
                 what, path, m.size());
      it = m.begin();
    }
    f.features = it->second;
  } else {
    BIUD_THROW(ConfigError, "{} `{}`: expected a .npy or .safetensors file", what, path);
  }
  BIUD_CHECK(f.features.dim() == 2 && f.features.size(0) > 0 && f.features.size(1) > 0, DataError,
             "{} `{}`: expected a [rows, dims] array, got shape {}", what, path, c10::str(f.features.sizes()));
  BIUD_CHECK(f.features.is_floating_point(), DataError, "{} `{}`: features must be floating point, got {}", what, path,
             c10::toString(f.features.scalar_type()));
  // fp16/bf16 stay as they are (the caller rounds to its precision: a half-precision database
  // file with the matching --precision is never held in fp32); fp64 becomes fp32.
  if (f.features.scalar_type() == torch::kFloat64) f.features = f.features.to(torch::kFloat32);
  f.features = f.features.contiguous();
  // A fresh 64-byte-aligned copy when the reader left the rows elsewhere: BLAS kernels may round
  // differently for other alignments, and scores are defined as torch.mm on aligned tensors.
  if (reinterpret_cast<std::uintptr_t>(f.features.data_ptr()) % 64 != 0) f.features = f.features.clone();
  if (!idsPath.empty()) {
    f.ids = readIdList(idsPath);
  } else {
    auto it = meta.find("ids");
    BIUD_CHECK(it != meta.end(), ConfigError, "{} `{}`: no `ids` metadata in the file; pass {} FILE (one id per line)",
               what, path, idsFlag);
    f.ids = splitIds(it->second, path + " (metadata `ids`)");
  }
  BIUD_CHECK(static_cast<std::int64_t>(f.ids.size()) == f.features.size(0), DataError,
             "{} `{}` has {} rows but {} ids ({}); there must be one id per row, in row order", what, path,
             f.features.size(0), f.ids.size(), idsPath.empty() ? "metadata `ids`" : idsPath);
  // In slices: isfinite() makes |x| and two bool tensors, 1.75x a float32 array's size at once.
  for (std::int64_t r = 0; r < f.features.size(0); r += kSlice) {
    const auto part = f.features.narrow(0, r, std::min(kSlice, f.features.size(0) - r));
    if (torch::isfinite(part).all().item<bool>()) continue;
    const auto bad = r + torch::nonzero(~torch::isfinite(part).all(1)).flatten()[0].item<std::int64_t>();
    BIUD_THROW(DataError, "{} `{}`: row {} (id `{}`) has a NaN or infinite value; features must be finite", what, path,
               bad, f.ids[static_cast<size_t>(bad)]);
  }
  for (size_t i = 0; i < f.ids.size(); ++i) f.index.emplace(f.ids[i], static_cast<std::int64_t>(i));
  return f;
}

// Both in slices of rows, in fp32: bounded extra memory whatever the dtype.
double maxNormDeviation(const torch::Tensor& x) {
  torch::NoGradGuard ng;
  double worst = 0;
  for (std::int64_t r = 0; r < x.size(0); r += kSlice) {
    const auto part = x.narrow(0, r, std::min(kSlice, x.size(0) - r)).to(torch::kFloat32);
    worst = std::max(worst, (part.norm(2, 1) - 1.0).abs().max().item<double>());
  }
  return worst;
}

void normalizeRowsInPlace(torch::Tensor& x) {
  torch::NoGradGuard ng;
  for (std::int64_t r = 0; r < x.size(0); r += kSlice) {
    auto part = x.narrow(0, r, std::min(kSlice, x.size(0) - r));
    auto p32 = part.to(torch::kFloat32);
    auto n = p32.norm(2, 1, /*keepdim=*/true);
    if (part.scalar_type() == torch::kFloat32)
      part.div_(torch::where(n > 0, n, torch::ones_like(n)));
    else
      part.copy_(p32 / torch::where(n > 0, n, torch::ones_like(n)));
  }
}

std::string fileIdentity(const std::string& path) {
  namespace stdfs = std::filesystem;
  std::error_code ec;
  ContentHash h;
  h.add(stdfs::absolute(path, ec).lexically_normal().string());
  h.add(static_cast<std::int64_t>(stdfs::file_size(path, ec)));
  h.add(static_cast<std::int64_t>(stdfs::last_write_time(path, ec).time_since_epoch().count()));
  return h.hex();
}

}  // namespace biud::retrieval
