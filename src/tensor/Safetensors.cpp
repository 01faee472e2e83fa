#include "biud/tensor/Safetensors.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Join.h"
#include "biud/core/Process.h"
#include "biud/core/Schema.h"

namespace biud::tensor {

namespace {

static_assert(sizeof(void*) == 8, "biud assumes a 64-bit little-endian host");

// The reference implementation's cap on the JSON header (MAX_HEADER_SIZE in safetensors/src/tensor.rs).
constexpr std::uint64_t kMaxHeader = 100'000'000;

struct DtypeInfo {
  const char* code;
  torch::Dtype dtype;
};
const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};
// Codes the format defines (safetensors 0.8 Dtype) that biud does not read.
const char* const kOtherCodes[] = {"F4",          "F6_E2M3",     "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                   "F8_E4M3FNUZ", "F8_E5M2FNUZ", "U16",     "U32",     "U64",     "C64"};

std::atomic<bool> gAllowNonFinite{false};

std::string joinKeys(const std::vector<std::string>& keys) { return joinFirst(keys, 12); }

// A name or value from the file, safe to put in a one-line message: control and non-ASCII bytes
// escaped, long strings cut.
std::string printable(std::string_view s, std::size_t max = 120) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (r.size() >= max) return r + "...";
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f)
      r.push_back(static_cast<char>(c));
    else
      r += fmt::format("\\x{:02x}", c);
  }
  return r;
}

// One header entry after its types are checked.
struct Entry {
  std::string name;
  std::string code;
  torch::Dtype dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

// The JSON header as one object, refusing duplicate keys at any level (nlohmann, like serde,
// would otherwise keep the last one silently).
nlohmann::json parseHeader(const char* begin, const char* end, const std::string& file) {
  BIUD_CHECK(!(end - begin >= 3 && static_cast<unsigned char>(begin[0]) == 0xEF &&
               static_cast<unsigned char>(begin[1]) == 0xBB && static_cast<unsigned char>(begin[2]) == 0xBF),
             IoError, "{}: the safetensors header starts with a UTF-8 byte-order mark (not valid JSON here)", file);
  // nlohmann stops at a NUL byte as if the input ended there; JSON never holds a raw NUL.
  if (const void* nul = std::memchr(begin, '\0', static_cast<std::size_t>(end - begin)))
    BIUD_THROW(IoError, "{}: the safetensors JSON header does not parse: a NUL byte at header offset {}", file,
               static_cast<const char*>(nul) - begin);
  std::vector<std::set<std::string>> keys;  // keys seen in each open object
  std::string top, dup;                     // current top-level key; first duplicate found
  auto cb = [&](int /*depth*/, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) {
      keys.emplace_back();
    } else if (ev == E::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == E::key && !keys.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (keys.size() == 1) top = k;
      if (!keys.back().insert(k).second && dup.empty())
        dup = keys.size() == 1 ? fmt::format("`{}` appears twice in the header", printable(k))
              : top == "__metadata__"
                  ? fmt::format("`__metadata__`: key `{}` appears twice", printable(k))
                  : fmt::format("tensor `{}`: key `{}` appears twice", printable(top), printable(k));
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(begin, end, cb);
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(IoError, "{}: the safetensors JSON header does not parse: {}", file, printable(e.what(), 240));
  }
  BIUD_CHECK(header.is_object(), IoError, "{}: the safetensors header is a JSON {}, not an object", file,
             header.type_name());
  BIUD_CHECK(dup.empty(), IoError, "{}: {} (a header written by hand or damaged)", file, dup);
  return header;
}

Entry parseEntry(const std::string& name, const nlohmann::json& e, const std::string& file) {
  const auto tn = printable(name);
  BIUD_CHECK(e.is_object(), IoError,
             "{}: tensor `{}`: the header entry is a JSON {}, expected an object with dtype, "
             "shape and data_offsets",
             file, tn, e.type_name());
  for (const char* k : {"dtype", "shape", "data_offsets"})
    BIUD_CHECK(e.contains(k), IoError, "{}: tensor `{}`: the header entry has no `{}`", file, tn, k);
  Entry out;
  out.name = name;
  const auto& dt = e.at("dtype");
  BIUD_CHECK(dt.is_string(), IoError, "{}: tensor `{}`: dtype is a JSON {}, expected a string such as \"F32\"", file,
             tn, dt.type_name());
  out.code = dt.get<std::string>();
  out.dtype = dtypeFromCode(out.code, fmt::format("{}: tensor `{}`", file, tn));

  const auto& sh = e.at("shape");
  BIUD_CHECK(sh.is_array(), IoError, "{}: tensor `{}`: shape is a JSON {}, expected a list of integers", file, tn,
             sh.type_name());
  // numel x element size in 64 bits, refusing overflow at the first dimension that causes it
  // (the reference folds with checked_mul in the same order).
  std::uint64_t numel = 1;
  for (const auto& d : sh) {
    BIUD_CHECK(d.is_number_unsigned(), IoError, "{}: tensor `{}`: shape {} has {}, expected non-negative integers",
               file, tn, printable(sh.dump()), d.is_number_integer() ? "a negative dimension" : "a non-integer");
    const auto v = d.get<std::uint64_t>();
    BIUD_CHECK(!__builtin_mul_overflow(numel, v, &numel), IoError,
               "{}: tensor `{}`: shape {} has more elements than 64 bits can count (damaged header)", file, tn,
               printable(sh.dump()));
    BIUD_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), IoError,
               "{}: tensor `{}`: shape {} has a dimension above 2^63-1 (damaged header)", file, tn,
               printable(sh.dump()));
    out.shape.push_back(static_cast<std::int64_t>(v));
  }
  std::uint64_t nbytes = 0;
  BIUD_CHECK(!__builtin_mul_overflow(numel, static_cast<std::uint64_t>(c10::elementSize(out.dtype)), &nbytes), IoError,
             "{}: tensor `{}`: shape {} of {} needs more bytes than 64 bits can count (damaged header)", file, tn,
             printable(sh.dump()), out.code);

  const auto& off = e.at("data_offsets");
  BIUD_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(), IoError,
             "{}: tensor `{}`: data_offsets {} is not two non-negative integers [begin, end]", file, tn,
             printable(off.dump()));
  out.begin = off[0].get<std::uint64_t>();
  out.end = off[1].get<std::uint64_t>();
  BIUD_CHECK(out.begin <= out.end, IoError, "{}: tensor `{}`: data_offsets [{}, {}] end before they begin", file, tn,
             out.begin, out.end);
  BIUD_CHECK(out.end - out.begin == nbytes, IoError,
             "{}: tensor `{}`: shape {} of {} needs {} bytes but data_offsets [{}, {}] span {} (the dtype or shape "
             "disagrees with the data)",
             file, tn, shapeStr(out.shape), out.code, nbytes, out.begin, out.end, out.end - out.begin);
  return out;
}

// Elements of raw little-endian floats whose exponent bits are all ones (NaN or +-Inf).
template <typename U>
std::uint64_t countNonFinite(const char* p, std::uint64_t n, U expMask) {
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    U x;
    std::memcpy(&x, p + i * sizeof(U), sizeof(U));
    bad += (x & expMask) == expMask;
  }
  return bad;
}

// Copy a floating tensor's bytes into `dst`, counting non-finite values on the way: in chunks
// that stay in cache, so the check costs no second pass over memory. On a hit, the first one is
// located and the error names the tensor.
template <typename U>
void copyFinite(char* dst, const char* src, std::uint64_t bytes, U expMask, U mantMask, const Entry& e,
                const std::string& file) {
  constexpr std::uint64_t kChunk = 1u << 16;  // a multiple of every element size
  std::uint64_t bad = 0;
  for (std::uint64_t off = 0; off < bytes; off += kChunk) {
    const auto n = std::min(kChunk, bytes - off);
    std::memcpy(dst + off, src + off, n);
    bad += countNonFinite<U>(dst + off, n / sizeof(U), expMask);
  }
  if (bad == 0) return;
  std::uint64_t first = 0;
  U x = 0;
  for (; first < bytes / sizeof(U); ++first) {
    std::memcpy(&x, src + first * sizeof(U), sizeof(U));
    if ((x & expMask) == expMask) break;
  }
  const bool nan = (x & mantMask) != 0;
  const bool neg = (x >> (8 * sizeof(U) - 1)) & 1;
  BIUD_THROW(DataError,
             "{}: tensor `{}` ({} {}) holds {} non-finite value{} (first: {} at flat index {}); the weights are broken "
             "(a diverged run?): use an earlier checkpoint, or allow non-finite values if they are intended "
             "(apps: --allow-nonfinite-weights)",
             file, printable(e.name), e.code, shapeStr(e.shape), bad, bad == 1 ? "" : "s",
             nan ? "NaN" : (neg ? "-Inf" : "Inf"), first);
}

// The tensor of one entry, its bytes checked: BOOL bytes 0/1, floats finite unless allowed.
torch::Tensor makeTensor(const char* src, const Entry& e, const std::string& file, bool allowNonFinite) {
  const auto bytes = e.end - e.begin;
  if (e.dtype == torch::kBool)
    for (std::uint64_t i = 0; i < bytes; ++i)
      BIUD_CHECK(static_cast<unsigned char>(src[i]) <= 1, IoError,
                 "{}: tensor `{}` (BOOL) has byte {} at flat index {}; BOOL bytes must be 0 or 1 (damaged data or a "
                 "wrong dtype)",
                 file, printable(e.name), static_cast<unsigned>(static_cast<unsigned char>(src[i])), i);
  auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
  if (bytes == 0) return t;
  auto* dst = static_cast<char*>(t.data_ptr());
  if (!allowNonFinite) {
    switch (e.dtype) {
      case torch::kFloat16:
        copyFinite<std::uint16_t>(dst, src, bytes, 0x7C00u, 0x03FFu, e, file);
        return t;
      case torch::kBFloat16:
        copyFinite<std::uint16_t>(dst, src, bytes, 0x7F80u, 0x007Fu, e, file);
        return t;
      case torch::kFloat32:
        copyFinite<std::uint32_t>(dst, src, bytes, 0x7F800000u, 0x007FFFFFu, e, file);
        return t;
      case torch::kFloat64:
        copyFinite<std::uint64_t>(dst, src, bytes, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull, e, file);
        return t;
      default:
        break;
    }
  }
  std::memcpy(dst, src, bytes);
  return t;
}

}  // namespace

void setAllowNonFiniteDefault(bool allow) { gAllowNonFinite.store(allow); }
bool allowNonFiniteDefault() { return gAllowNonFinite.load() || app::allowNonFiniteWeights(); }

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
  for (const char* c : kOtherCodes)
    BIUD_CHECK(code != c, IoError,
               "{}: safetensors dtype `{}` is not read by biud (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL); "
               "convert the tensor before saving",
               file, code);
  BIUD_THROW(IoError, "{}: unknown safetensors dtype `{}` (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", file,
             printable(code));
}

TensorMap parseSafetensors(const std::string& bytes, const std::string& name,
                           std::map<std::string, std::string>* metadata, const SafetensorsReadOptions& options) {
  BIUD_CHECK(bytes.size() >= 8, IoError,
             "{}: {} bytes is too short for a safetensors file (needs an 8-byte header length)", name, bytes.size());
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  BIUD_CHECK(n <= kMaxHeader, IoError,
             "{}: header length {} is above the format's limit of {} bytes: not a safetensors file, or damaged", name,
             n, kMaxHeader);
  BIUD_CHECK(n <= bytes.size() - 8, IoError,
             "{}: header length {} does not fit in the file ({} bytes): not a safetensors file, or truncated", name, n,
             bytes.size());
  const auto header = parseHeader(bytes.data() + 8, bytes.data() + 8 + n, name);
  const std::uint64_t dataStart = 8 + n, dataSize = bytes.size() - dataStart;

  std::vector<Entry> entries;
  entries.reserve(header.size());
  const nlohmann::json* meta = nullptr;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      const auto& m = it.value();
      BIUD_CHECK(m.is_null() || m.is_object(), IoError,
                 "{}: `__metadata__` is a JSON {}, expected an object of strings", name, m.type_name());
      if (m.is_null()) continue;
      for (auto kv = m.begin(); kv != m.end(); ++kv)
        BIUD_CHECK(kv.value().is_string(), IoError, "{}: `__metadata__` entry `{}` is a JSON {}, expected a string",
                   name, printable(kv.key()), kv.value().type_name());
      meta = &m;
      continue;
    }
    entries.push_back(parseEntry(it.key(), it.value(), name));
  }

  // Sorted by offset, the tensors tile the data block: start at 0, no overlap, no gap, no tail.
  std::vector<const Entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const auto* e : order) {
    if (e->begin < pos)
      BIUD_THROW(IoError, "{}: tensors `{}` (bytes [{}, {})) and `{}` (bytes [{}, {})) overlap", name,
                 printable(prev->name), prev->begin, prev->end, printable(e->name), e->begin, e->end);
    if (e->begin > pos) {
      if (prev)
        BIUD_THROW(IoError,
                   "{}: {} bytes between tensors `{}` (ends at {}) and `{}` (starts at {}) belong to no tensor", name,
                   e->begin - pos, printable(prev->name), pos, printable(e->name), e->begin);
      BIUD_THROW(IoError, "{}: tensor `{}` is the first in the data block but starts at byte {}, not 0", name,
                 printable(e->name), e->begin);
    }
    pos = e->end;
    prev = e;
  }
  if (pos > dataSize)
    BIUD_THROW(IoError, "{}: tensor `{}`: data_offsets end at byte {} but the data block has {} bytes: truncated file",
               name, printable(prev->name), pos, dataSize);
  if (pos < dataSize) {
    if (prev)
      BIUD_THROW(IoError,
                 "{}: {} bytes after the last tensor `{}` (ends at {}) belong to no tensor ({} in the data block)",
                 name, dataSize - pos, printable(prev->name), pos, dataSize);
    BIUD_THROW(IoError, "{}: the header names no tensor but {} data bytes follow it", name, dataSize);
  }

  TensorMap out;
  for (const auto& e : entries) {
    out.emplace(e.name, makeTensor(bytes.data() + dataStart + e.begin, e, name, options.allowNonFinite));
  }
  // Only a file that read completely hands out its metadata.
  if (metadata && meta)
    for (auto kv = meta->begin(); kv != meta->end(); ++kv) (*metadata)[kv.key()] = kv.value().get<std::string>();
  return out;
}

TensorMap readSafetensors(const std::string& path, std::map<std::string, std::string>* metadata,
                          const SafetensorsReadOptions& options) {
  fs::requireFile(path, "safetensors file");
  return parseSafetensors(fs::readFile(path), path, metadata, options);
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
  SafetensorsReadOptions ro;
  ro.allowNonFinite = options.allowNonFinite;
  return loadStateDict(module, readSafetensors(path, nullptr, ro), options, path);
}

}  // namespace biud::tensor
