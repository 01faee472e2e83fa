#include "biud/tensor/Safetensors.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "biud/core/Config.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::tensor {

namespace {

static_assert(sizeof(void*) == 8, "biud assumes a 64-bit little-endian host");

// Header lengths above this are certainly not safetensors (the reference implementation caps
// the header at 100 MB as well).
constexpr std::uint64_t kMaxHeader = 100ull << 20;

struct DtypeInfo {
  const char* code;
  torch::Dtype dtype;
};
const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

std::string joinKeys(const std::vector<std::string>& keys, std::size_t max = 12) {
  std::string s;
  for (std::size_t i = 0; i < keys.size() && i < max; ++i) s += (i ? ", " : "") + keys[i];
  if (keys.size() > max) s += fmt::format(", ... ({} more)", keys.size() - max);
  return s;
}

}  // namespace

std::string shapeStr(at::IntArrayRef s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

std::string dtypeCode(torch::Dtype dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d.code;
  BIUD_THROW(ValueError, "safetensors: dtype {} has no safetensors code (convert it to float32 first)",
             c10::toString(dtype));
}

torch::Dtype dtypeFromCode(const std::string& code, const std::string& file) {
  for (const auto& d : kDtypes)
    if (code == d.code) return d.dtype;
  BIUD_THROW(IoError, "{}: unsupported safetensors dtype `{}` (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
             file, code);
}

TensorMap parseSafetensors(const std::string& bytes, const std::string& name,
                           std::map<std::string, std::string>* metadata) {
  BIUD_CHECK(bytes.size() >= 8, IoError,
             "{}: {} bytes is too short for a safetensors file (needs an 8-byte header length)", name, bytes.size());
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  BIUD_CHECK(n <= kMaxHeader && 8 + n <= bytes.size(), IoError,
             "{}: header length {} does not fit in the file ({} bytes): not a safetensors file, or truncated", name, n,
             bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception& e) {
    BIUD_THROW(IoError, "{}: the safetensors JSON header does not parse: {}", name, e.what());
  }
  BIUD_CHECK(header.is_object(), IoError, "{}: the safetensors header is not a JSON object", name);
  const std::uint64_t dataStart = 8 + n, dataSize = bytes.size() - dataStart;
  TensorMap out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (metadata && it.value().is_object())
        for (auto m = it.value().begin(); m != it.value().end(); ++m)
          if (m.value().is_string()) (*metadata)[m.key()] = m.value().get<std::string>();
      continue;
    }
    const auto& e = it.value();
    try {
      const auto dtype = dtypeFromCode(e.at("dtype").get<std::string>(), name);
      const auto shape = e.at("shape").get<std::vector<std::int64_t>>();
      const auto offs = e.at("data_offsets").get<std::vector<std::uint64_t>>();
      BIUD_CHECK(offs.size() == 2 && offs[0] <= offs[1] && offs[1] <= dataSize, IoError,
                 "{}: tensor `{}`: data_offsets [{}] outside the data block ({} bytes): truncated file?", name,
                 it.key(), fmt::join(offs, ","), dataSize);
      std::int64_t numel = 1;
      for (auto s : shape) {
        BIUD_CHECK(s >= 0, IoError, "{}: tensor `{}` has a negative dimension", name, it.key());
        numel *= s;
      }
      const auto elem = static_cast<std::uint64_t>(c10::elementSize(dtype));
      BIUD_CHECK(offs[1] - offs[0] == static_cast<std::uint64_t>(numel) * elem, IoError,
                 "{}: tensor `{}`: shape {} of {} needs {} bytes but data_offsets span {}", name, it.key(),
                 shapeStr(shape), e.at("dtype").get<std::string>(), static_cast<std::uint64_t>(numel) * elem,
                 offs[1] - offs[0]);
      auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
      if (numel > 0) std::memcpy(t.data_ptr(), bytes.data() + dataStart + offs[0], offs[1] - offs[0]);
      out.emplace(it.key(), std::move(t));
    } catch (const nlohmann::json::exception& ex) {
      BIUD_THROW(IoError, "{}: tensor `{}`: bad header entry ({}); expected dtype, shape, data_offsets", name, it.key(),
                 ex.what());
    }
  }
  return out;
}

TensorMap readSafetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  fs::requireFile(path, "safetensors file");
  return parseSafetensors(fs::readFile(path), path, metadata);
}

std::string serializeSafetensors(const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::uint64_t off = 0;
  for (const auto& [name, t0] : tensors) {
    BIUD_CHECK(t0.defined(), ValueError, "safetensors: tensor `{}` is undefined", name);
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const std::uint64_t nb = static_cast<std::uint64_t>(t.numel()) * static_cast<std::uint64_t>(t.element_size());
    header[name] = {{"dtype", dtypeCode(t.scalar_type())},
                    {"shape", std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end())},
                    {"data_offsets", {off, off + nb}}};
    off += nb;
    cpu.push_back(std::move(t));
  }
  std::string h = header.dump();
  // Pad the header with spaces so the data block starts 8-byte aligned (as the reference writer).
  while ((8 + h.size()) % 8) h.push_back(' ');
  std::string out;
  out.reserve(8 + h.size() + off);
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& t : cpu) out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

void writeSafetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  fs::atomicWrite(path, serializeSafetensors(tensors, metadata));
}

TensorMap stateDict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value().detach();
  return out;
}

std::string LoadReport::summary() const {
  std::string s = fmt::format("{} tensors loaded", loaded.size());
  if (!missing.empty()) s += fmt::format("; missing (left as initialised): {}", joinKeys(missing));
  if (!unexpected.empty()) s += fmt::format("; unexpected (ignored): {}", joinKeys(unexpected));
  return s;
}

LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors0, const LoadOptions& opt,
                         const std::string& source) {
  TensorMap tensors;
  for (const auto& [k0, t] : tensors0) {
    std::string k = k0;
    if (!opt.selectPrefix.empty()) {
      if (k.rfind(opt.selectPrefix, 0) != 0) continue;
      k = k.substr(opt.selectPrefix.size());
    }
    if (!opt.stripPrefix.empty() && k.rfind(opt.stripPrefix, 0) == 0) k = k.substr(opt.stripPrefix.size());
    if (std::any_of(opt.ignore.begin(), opt.ignore.end(), [&](const std::string& p) { return k.rfind(p, 0) == 0; }))
      continue;
    tensors[k] = t;
  }
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : module.named_parameters(true)) targets[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) targets[b.key()] = b.value();

  LoadReport rep;
  std::vector<std::string> targetNames, fileNames;
  for (const auto& kv : targets) targetNames.push_back(kv.first);
  for (const auto& kv : tensors) fileNames.push_back(kv.first);
  for (const auto& [k, t] : targets) {
    auto it = tensors.find(k);
    if (it == tensors.end()) {
      rep.missing.push_back(k);
    } else if (it->second.sizes() != t.sizes()) {
      rep.mismatched.push_back(
          fmt::format("{} (file {}, model {})", k, shapeStr(it->second.sizes()), shapeStr(t.sizes())));
    }
  }
  for (const auto& kv : tensors)
    if (!targets.count(kv.first)) rep.unexpected.push_back(kv.first);

  const bool badMissing = opt.strict && !opt.allowMissing && !rep.missing.empty();
  const bool badUnexpected = opt.strict && !rep.unexpected.empty();
  if (badMissing || badUnexpected || !rep.mismatched.empty()) {
    std::string msg = fmt::format("{}: weights do not fit the model ({} tensors in file, {} in model)", source,
                                  tensors.size(), targets.size());
    if (!rep.mismatched.empty()) msg += fmt::format("; shape mismatch: {}", joinKeys(rep.mismatched));
    if (badMissing) {
      msg += fmt::format("; missing in file: {}", joinKeys(rep.missing));
      const auto guess = config::closest(rep.missing.front(), fileNames);
      if (!guess.empty()) msg += fmt::format(" (did you mean `{}` for `{}`?)", guess, rep.missing.front());
    }
    if (badUnexpected) {
      msg += fmt::format("; unexpected in file: {}", joinKeys(rep.unexpected));
      const auto guess = config::closest(rep.unexpected.front(), targetNames);
      if (!guess.empty()) msg += fmt::format(" (did you mean `{}` for `{}`?)", guess, rep.unexpected.front());
    }
    msg += ". Check the architecture/preset matches the weights, or load non-strictly (ignore prefixes).";
    throw ValueError(msg, __FILE__, __LINE__);
  }
  torch::NoGradGuard ng;
  for (auto& [k, t] : targets) {
    auto it = tensors.find(k);
    if (it == tensors.end()) continue;
    t.copy_(it->second.to(t.device(), t.scalar_type()));
    rep.loaded.push_back(k);
  }
  return rep;
}

void saveModule(const torch::nn::Module& module, const std::string& path,
                const std::map<std::string, std::string>& metadata) {
  writeSafetensors(path, stateDict(module), metadata);
}

LoadReport loadModule(torch::nn::Module& module, const std::string& path, const LoadOptions& options) {
  return loadStateDict(module, readSafetensors(path), options, path);
}

}  // namespace biud::tensor
