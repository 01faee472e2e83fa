#include "biud/image/CtCache.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"
#include "biud/text/Utf8.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'B', 'I', 'U', 'D', 'C', 'T', '\0', '\1'};
constexpr std::uint64_t kAlign = 64;

std::uint64_t alignUp(std::uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

constexpr std::uint32_t kMaxIdBytes = 4096;

/// Why a record header (with the right magic) cannot be a record this writer wrote: "" when it is
/// consistent. Every size is checked before it is used, without overflow.
std::string recordHeaderProblem(const RecordHeader& h) {
  if (h.dtype != static_cast<std::uint8_t>(CacheDtype::Int16) &&
      h.dtype != static_cast<std::uint8_t>(CacheDtype::Float16))
    return fmt::format("unknown voxel type {}", h.dtype);
  std::uint64_t numel = 1;
  for (int d = 0; d < 3; ++d) {
    if (h.shape[d] <= 0) return fmt::format("shape[{}] = {}", d, h.shape[d]);
    numel *= static_cast<std::uint64_t>(h.shape[d]);  // < 2^93 cannot happen: each factor < 2^31, checked below
    if (numel > (std::uint64_t{1} << 40)) return "shape too large";
  }
  if (h.dataBytes != numel * 2)
    return fmt::format("{} voxel bytes for shape {}x{}x{}", h.dataBytes, h.shape[0], h.shape[1], h.shape[2]);
  if (h.idBytes == 0 || h.idBytes > kMaxIdBytes) return fmt::format("id of {} bytes", h.idBytes);
  if (h.dataOffset != alignUp(sizeof(RecordHeader) + h.idBytes)) return fmt::format("voxel offset {}", h.dataOffset);
  if (!(h.quant > 0) || !std::isfinite(h.quant)) return fmt::format("quantisation factor {}", h.quant);
  return "";
}

void writeAll(int fd, const void* p, size_t n, const std::string& file) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    BIUD_SYSCHECK(w < 0 ? -1 : 0, "cache: cannot write `{}`", file);
    c += w;
    n -= static_cast<size_t>(w);
  }
}

const char* dtypeName(CacheDtype d) { return d == CacheDtype::Int16 ? "int16" : "float16"; }

}  // namespace

namespace {
/// libdeflate's crc32 (same polynomial and chaining as zlib's, PCLMUL-accelerated: ~5-10x
/// faster), loaded at run time when present; zlib otherwise. Verifying every record costs a
/// crc32 per read, so its speed is the loader's.
using DeflateCrc = std::uint32_t (*)(std::uint32_t, const void*, size_t);
DeflateCrc deflateCrc() {
  static const DeflateCrc f = [] {
    void* h = ::dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = ::dlopen("libdeflate.so", RTLD_NOW | RTLD_LOCAL);
    return h ? reinterpret_cast<DeflateCrc>(::dlsym(h, "libdeflate_crc32")) : nullptr;
  }();
  return f;
}

std::uint32_t crcUpdate(std::uint32_t c, const void* p, std::uint64_t n) {
  if (DeflateCrc f = deflateCrc()) return f(c, p, static_cast<size_t>(n));
  const auto* b = static_cast<const Bytef*>(p);
  uLong z = c;
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<std::uint64_t>(n, 1u << 30));
    z = ::crc32(z, b, chunk);
    b += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(z);
}
}  // namespace

std::uint32_t crc32Of(const void* p, std::uint64_t n) { return crcUpdate(0, p, n); }

std::uint16_t floatToHalf(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t mant = x & 0x7fffffu;
  const int exp = static_cast<int>((x >> 23) & 0xff);
  if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));  // Inf/NaN
  int e = exp - 127 + 15;
  if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> Inf
  if (e <= 0) {                                                    // subnormal or zero
    if (e < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // round to nearest even (may carry into exp)
  return static_cast<std::uint16_t>(sign | h);
}

float halfToFloat(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400u));
      x = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

float int16Quant(const CtPreprocessConfig& c) {
  double m;
  if (c.window == "lung") {
    m = 1.0;
  } else {
    m = std::max(std::fabs(c.hu_min), std::fabs(c.hu_max)) / c.scale;
  }
  m = std::max(m, std::fabs(c.pad_value));
  if (m <= 0) m = 1.0;
  return static_cast<float>(std::floor(32767.0 / m));
}

// --- writer --------------------------------------------------------------------------------

CacheWriter::CacheWriter(std::string dir, std::string hash, CacheDtype dtype, float quant, std::uint64_t shardBytes,
                         std::string shardPrefix)
    : dir_(std::move(dir)),
      hash_(std::move(hash)),
      prefix_(std::move(shardPrefix)),
      dtype_(dtype),
      quant_(quant),
      shardBytes_(shardBytes) {
  BIUD_CHECK(hash_.size() == 16, ValueError, "cache: preprocessing hash must be 16 characters, got `{}`", hash_);
  fs::makeDirs(dir_);
}

CacheWriter::~CacheWriter() {
  try {
    close();
  } catch (...) {
  }
}

void CacheWriter::openNext() {
  close();
  shard_ = fmt::format("{}-{:03d}.bin", prefix_, seq_++);
  const std::string path = (stdfs::path(dir_) / shard_).string();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  BIUD_SYSCHECK(fd_, "cache: cannot create shard `{}`", path);
  pos_ = 0;
}

void CacheWriter::close() {
  if (fd_ >= 0) {
    ::fsync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
}

CacheEntry CacheWriter::write(const std::string& id, const Volume& v) {
  BIUD_CHECK(static_cast<std::int64_t>(v.data.size()) == v.numel() && v.numel() > 0, ValueError,
             "cache: item `{}` of size {}x{}x{} holds {} values", id, v.size[0], v.size[1], v.size[2], v.data.size());
  const std::uint64_t n = static_cast<std::uint64_t>(v.numel());
  std::vector<std::uint16_t> buf(n);
  if (dtype_ == CacheDtype::Int16) {
    for (std::uint64_t i = 0; i < n; ++i) {
      const float q = std::nearbyint(v.data[i] * quant_);
      buf[i] = static_cast<std::uint16_t>(static_cast<std::int16_t>(std::min(32767.0f, std::max(-32768.0f, q))));
    }
  } else {
    for (std::uint64_t i = 0; i < n; ++i) buf[i] = floatToHalf(v.data[i]);
  }
  RecordHeader h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kCacheVersion;
  h.headerBytes = sizeof(RecordHeader);
  h.dtype = static_cast<std::uint8_t>(dtype_);
  std::memcpy(h.orientation, "LPS", 3);
  for (int d = 0; d < 3; ++d) {
    h.shape[d] = v.size[d];
    h.spacing[d] = v.spacing[d];
    h.origin[d] = v.origin[d];
  }
  for (int i = 0; i < 9; ++i) h.direction[i] = v.direction[i];
  h.quant = dtype_ == CacheDtype::Int16 ? quant_ : 1.0f;
  h.dataBytes = n * 2;
  h.crc32 = crc32Of(buf.data(), h.dataBytes);
  std::memcpy(h.hash, hash_.data(), 16);
  h.idBytes = static_cast<std::uint32_t>(id.size());
  h.dataOffset = alignUp(sizeof(RecordHeader) + id.size());
  if (fd_ < 0 || (pos_ > 0 && pos_ + h.dataOffset + h.dataBytes > shardBytes_)) openNext();
  const std::string file = (stdfs::path(dir_) / shard_).string();
  std::string head(reinterpret_cast<const char*>(&h), sizeof h);
  head += id;
  head.resize(h.dataOffset, '\0');
  try {
    writeAll(fd_, head.data(), head.size(), file);
    writeAll(fd_, buf.data(), h.dataBytes, file);
    BIUD_SYSCHECK(::fdatasync(fd_), "cache: cannot sync `{}`", file);
  } catch (...) {
    // Leave no partial record behind (later records would be unreachable after it).
    if (::ftruncate(fd_, static_cast<off_t>(pos_)) == 0) ::lseek(fd_, static_cast<off_t>(pos_), SEEK_SET);
    throw;
  }
  CacheEntry e;
  e.id = id;
  e.shard = shard_;
  e.offset = pos_ + h.dataOffset;
  e.bytes = h.dataBytes;
  e.shape = v.size;
  e.spacing = v.spacing;
  e.origin = v.origin;
  e.dtype = dtype_;
  e.quant = h.quant;
  e.crc = h.crc32;
  pos_ += h.dataOffset + h.dataBytes;
  return e;
}

std::vector<CacheEntry> scanShard(const std::string& dir, const std::string& shard, const std::string& hash,
                                  bool repair, std::uint64_t* cutBytes, bool verify,
                                  std::vector<std::string>* damaged) {
  const std::string path = (stdfs::path(dir) / shard).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BIUD_SYSCHECK(fd, "cache: cannot open shard `{}`", path);
  struct stat st {};
  ::fstat(fd, &st);
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::vector<CacheEntry> out;
  std::uint64_t pos = 0;
  while (pos + sizeof(RecordHeader) <= size) {
    RecordHeader h{};
    if (::pread(fd, &h, sizeof h, static_cast<off_t>(pos)) != static_cast<ssize_t>(sizeof h)) break;
    if (std::memcmp(h.magic, kMagic, 8) != 0 || h.headerBytes != sizeof(RecordHeader)) break;  // garbage tail
    if (h.version != kCacheVersion) {
      ::close(fd);
      BIUD_THROW(DataError, "cache shard `{}`: format version {} (this build reads {}); rebuild the cache", path,
                 h.version, kCacheVersion);
    }
    if (std::string(h.hash, 16) != hash) {
      ::close(fd);
      BIUD_THROW(ConfigError,
                 "cache shard `{}` was written with preprocessing hash {} but the current parameters hash to {}; "
                 "use another --out folder or delete the cache",
                 path, std::string(h.hash, 16), hash);
    }
    // A header that is not one the writer could have written (damage, or a foreign file named
    // like a shard) ends the scan like a partial record: what follows is cut off and redone.
    if (!recordHeaderProblem(h).empty()) break;
    if (h.dataOffset > size - pos || h.dataBytes > size - pos - h.dataOffset) break;  // partial record
    std::string id(h.idBytes, '\0');
    if (::pread(fd, id.data(), h.idBytes, static_cast<off_t>(pos + sizeof h)) != static_cast<ssize_t>(h.idBytes)) break;
    if (verify) {
      // Chunked: no allocation of the record's size, whatever its header says.
      std::vector<char> buf(std::min<std::uint64_t>(h.dataBytes, 8u << 20));
      std::uint32_t c = 0;
      std::uint64_t at = 0;
      bool readOk = true;
      while (at < h.dataBytes) {
        const size_t n = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), h.dataBytes - at));
        if (::pread(fd, buf.data(), n, static_cast<off_t>(pos + h.dataOffset + at)) != static_cast<ssize_t>(n)) {
          readOk = false;
          break;
        }
        c = crcUpdate(c, buf.data(), n);
        at += n;
      }
      if (!readOk) break;
      if (c != h.crc32) {
        if (damaged) damaged->push_back(id);
        pos += h.dataOffset + h.dataBytes;
        continue;
      }
    }
    CacheEntry e;
    e.id = id;
    e.shard = shard;
    e.offset = pos + h.dataOffset;
    e.bytes = h.dataBytes;
    for (int d = 0; d < 3; ++d) {
      e.shape[d] = h.shape[d];
      e.spacing[d] = h.spacing[d];
      e.origin[d] = h.origin[d];
    }
    e.dtype = static_cast<CacheDtype>(h.dtype);
    e.quant = h.quant;
    e.crc = h.crc32;
    out.push_back(std::move(e));
    pos += h.dataOffset + h.dataBytes;
  }
  ::close(fd);
  if (cutBytes) *cutBytes = size - pos;
  if (repair && pos < size)
    BIUD_SYSCHECK(::truncate(path.c_str(), static_cast<off_t>(pos)), "cache: cannot truncate `{}`", path);
  return out;
}

void writeCacheIndex(const std::string& dir, const std::string& hash, const std::string& description,
                     const std::vector<CacheEntry>& entries) {
  nlohmann::json j;
  j["format"] = "biud-ct-cache";
  j["version"] = kCacheVersion;
  j["hash"] = hash;
  j["preprocess"] = description;
  j["orientation"] = "LPS";
  auto& items = j["items"] = nlohmann::json::array();
  for (const auto& e : entries) {
    items.push_back({{"id", e.id},
                     {"shard", e.shard},
                     {"offset", e.offset},
                     {"bytes", e.bytes},
                     {"shape", e.shape},
                     {"spacing", e.spacing},
                     {"origin", e.origin},
                     {"dtype", dtypeName(e.dtype)},
                     {"quant", e.quant},
                     {"crc32", e.crc}});
  }
  for (const auto& e : entries)
    BIUD_CHECK(text::utf8::valid(e.id), DataError,
               "cache `{}`: item id of {} bytes is not valid UTF-8 and cannot go into index.json; ids come from the "
               "manifest, which must be UTF-8",
               dir, e.id.size());
  std::string text;
  try {
    text = j.dump(1);
  } catch (const nlohmann::json::exception& e) {  // a hash or description that is not UTF-8
    BIUD_THROW(DataError, "cache `{}`: index.json cannot be written: {}", dir, e.what());
  }
  fs::atomicWrite(stdfs::path(dir) / "index.json", text);
}

std::pair<std::string, std::string> cacheHashOf(const std::string& dir) {
  const stdfs::path p = stdfs::path(dir) / "index.json";
  std::error_code ec;
  if (!stdfs::exists(p, ec)) return {};
  try {
    auto j = fs::readJsonFile(p, "cache index", "Rebuild the cache with biud-preprocess into a new --out folder");
    return {j.at("hash").get<std::string>(), j.value("preprocess", std::string())};
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "cache index `{}` is corrupt: {}", p.string(), e.what());
  }
}

// --- reader --------------------------------------------------------------------------------

CacheReader::CacheReader(const std::string& dir, const std::string& expectedHash,
                         const std::string& expectedDescription)
    : dir_(dir) {
  const stdfs::path p = stdfs::path(dir) / "index.json";
  std::error_code ec;
  BIUD_CHECK(stdfs::exists(p, ec), IoError, "cache `{}`: no index.json (build it with biud-preprocess --out {})", dir,
             dir);
  nlohmann::json j;
  try {
    j = fs::readJsonFile(p, "cache index", "Rebuild the cache with biud-preprocess into a new --out folder");
    BIUD_CHECK(j.at("format") == "biud-ct-cache", DataError, "cache index `{}`: not a biud CT cache", p.string());
    BIUD_CHECK(j.at("version").get<std::uint32_t>() == kCacheVersion, DataError,
               "cache `{}`: format version {} (this build reads {}); rebuild it with biud-preprocess", dir,
               j.at("version").get<std::uint32_t>(), kCacheVersion);
    hash_ = j.at("hash").get<std::string>();
    description_ = j.value("preprocess", std::string());
    for (const auto& it : j.at("items")) {
      CacheEntry e;
      e.id = it.at("id").get<std::string>();
      e.shard = it.at("shard").get<std::string>();
      e.offset = it.at("offset").get<std::uint64_t>();
      e.bytes = it.at("bytes").get<std::uint64_t>();
      e.shape = it.at("shape").get<std::array<int, 3>>();
      e.spacing = it.at("spacing").get<std::array<double, 3>>();
      e.origin = it.at("origin").get<std::array<double, 3>>();
      const std::string dt = it.at("dtype").get<std::string>();
      BIUD_CHECK(dt == "int16" || dt == "float16", DataError, "cache index `{}`: item `{}` has unknown dtype `{}`",
                 p.string(), e.id, dt);
      e.dtype = dt == "int16" ? CacheDtype::Int16 : CacheDtype::Float16;
      e.quant = it.at("quant").get<float>();
      e.crc = it.at("crc32").get<std::uint32_t>();
      BIUD_CHECK(e.shape[0] > 0 && e.shape[1] > 0 && e.shape[2] > 0 && e.quant > 0 && std::isfinite(e.quant), DataError,
                 "cache index `{}`: item `{}` has shape {}x{}x{} and quantisation {} (corrupt index; rerun "
                 "biud-preprocess)",
                 p.string(), e.id, e.shape[0], e.shape[1], e.shape[2], e.quant);
      BIUD_CHECK(e.bytes == static_cast<std::uint64_t>(e.numel()) * 2, DataError,
                 "cache index `{}`: item `{}` has {} bytes for shape {}x{}x{}", p.string(), e.id, e.bytes, e.shape[0],
                 e.shape[1], e.shape[2]);
      BIUD_CHECK(byId_.emplace(e.id, entries_.size()).second, DataError,
                 "cache index `{}` lists item `{}` twice (corrupt index; rerun biud-preprocess)", p.string(), e.id);
      entries_.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "cache index `{}` is corrupt: {}", p.string(), e.what());
  }
  verified_ = std::make_unique<std::atomic<std::uint8_t>[]>(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) verified_[i].store(0, std::memory_order_relaxed);
  BIUD_CHECK(expectedHash.empty() || expectedHash == hash_, ConfigError,
             "cache `{}` was built with other preprocessing parameters ({}; hash {}) than the config asks for ({}; "
             "hash {}). Rebuild it: biud-preprocess --manifest ... --out <new folder> with this config, or set "
             "data.cache_dir to a matching cache",
             dir, description_, hash_, expectedDescription, expectedHash);
}

CacheReader::~CacheReader() {
  for (auto& [k, m] : maps_)
    if (m.addr) ::munmap(m.addr, m.len);
}

const CacheEntry* CacheReader::find(const std::string& id) const {
  auto f = byId_.find(id);
  return f == byId_.end() ? nullptr : &entries_[f->second];
}

const CacheReader::Map& CacheReader::mapShard(const std::string& shard) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto f = maps_.find(shard);
  if (f != maps_.end()) return f->second;
  const std::string path = (stdfs::path(dir_) / shard).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BIUD_SYSCHECK(fd, "cache: cannot open shard `{}`", path);
  struct stat st {};
  ::fstat(fd, &st);
  Map m;
  m.len = static_cast<size_t>(st.st_size);
  if (m.len > 0) {
    m.addr = ::mmap(nullptr, m.len, PROT_READ, MAP_SHARED, fd, 0);
    if (m.addr == MAP_FAILED) {
      ::close(fd);
      BIUD_SYSCHECK(-1, "cache: cannot map shard `{}`", path);
    }
  }
  ::close(fd);
  return maps_.emplace(shard, m).first->second;
}

const void* CacheReader::data(const CacheEntry& e) const {
  const Map& m = mapShard(e.shard);
  BIUD_CHECK(
      e.bytes <= m.len && e.offset <= m.len - e.bytes, DataError,
      "cache `{}`: item `{}` ends at byte {} but shard `{}` has {} bytes (truncated cache? rerun biud-preprocess)",
      dir_, e.id, e.offset + e.bytes, e.shard, m.len);
  return static_cast<const char*>(m.addr) + e.offset;
}

namespace {
std::atomic<int> g_verify{-1};  // -1 = not decided yet
}  // namespace

Verify defaultVerify() {
  int v = g_verify.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<Verify>(v);
  Verify d = Verify::Once;
  if (const char* env = std::getenv("BIUD_CACHE_VERIFY"); env && *env) {
    const std::string s = env;
    if (s == "off")
      d = Verify::Off;
    else if (s == "always")
      d = Verify::Always;
    else
      BIUD_CHECK(s == "once", ConfigError, "BIUD_CACHE_VERIFY=`{}`: expected off, once or always", s);
  }
  g_verify.store(static_cast<int>(d));
  return d;
}

void setDefaultVerify(Verify v) { g_verify.store(static_cast<int>(v)); }

void CacheReader::verify(const CacheEntry& e) const {
  const void* p = data(e);
  BIUD_CHECK(crc32Of(p, e.bytes) == e.crc, DataError,
             "cache `{}`: item `{}` (shard `{}`) fails its checksum: its voxels changed after biud-preprocess wrote "
             "them (disk or copy damage?). Rerun biud-preprocess with --out {}: it re-checks every record and redoes "
             "the damaged ones",
             dir_, e.id, e.shard, dir_);
}

size_t CacheReader::verifiedCount() const {
  size_t n = 0;
  for (size_t i = 0; i < entries_.size(); ++i) n += verified_[i].load(std::memory_order_relaxed);
  return n;
}

void CacheReader::decode(const CacheEntry& e, float* out, Verify v) const {
  const void* p = data(e);
  if (v == Verify::Always) {
    verify(e);
  } else if (v == Verify::Once) {
    // The entry's slot: entries handed out by this reader point into entries_.
    size_t k = entries_.size();
    if (!entries_.empty() && &e >= entries_.data() && &e < entries_.data() + entries_.size()) {
      k = static_cast<size_t>(&e - entries_.data());
    } else if (auto f = byId_.find(e.id); f != byId_.end()) {
      k = f->second;
    }
    if (k == entries_.size()) {
      verify(e);
    } else if (verified_[k].load(std::memory_order_acquire) == 0) {
      verify(e);
      verified_[k].store(1, std::memory_order_release);
    }
  }
  const std::int64_t n = e.numel();
  if (e.dtype == CacheDtype::Int16) {
    const auto* s = static_cast<const std::int16_t*>(p);
    const float inv = 1.0f / e.quant;
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i]) * inv;
  } else {
    const auto* s = static_cast<const std::uint16_t*>(p);
    for (std::int64_t i = 0; i < n; ++i) out[i] = halfToFloat(s[i]);
  }
}

Volume CacheReader::read(const std::string& id, Verify verify) const {
  const CacheEntry* e = find(id);
  BIUD_CHECK(e != nullptr, DataError, "cache `{}` has no item `{}` (was it preprocessed? see failures.jsonl)", dir_,
             id);
  Volume v;
  v.size = e->shape;
  v.spacing = e->spacing;
  v.origin = e->origin;
  v.data.resize(static_cast<size_t>(e->numel()));
  decode(*e, v.data.data(), verify);
  return v;
}

std::map<std::string, std::string> readCacheFailures(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  const auto path = stdfs::path(dir) / "failures.jsonl";
  if (!stdfs::exists(path, ec)) return out;
  std::istringstream in(fs::readFile(path));
  std::string line;
  while (std::getline(in, line)) {
    try {
      auto j = nlohmann::json::parse(line);
      out[j.value("id", "")] = j.value("error", "");
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace biud::image
