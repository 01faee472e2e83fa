#pragma once
/// \file CtCache.h
/// The preprocessed-volume cache written by biud-preprocess and read by the loaders (torch-free).
///
/// Layout of a cache folder:
///   index.json              {"format": "biud-ct-cache", "version": 1, "hash", "preprocess",
///                            "items": [{id, shard, offset, bytes, shape, spacing, origin, dtype,
///                            quant, crc32}, ...]}   (offset = first voxel byte in the shard)
///   shard-<run>-<w>-<n>.bin records appended by writer thread w of one run; each record:
///     RecordHeader (256 bytes, little-endian) | id bytes | zero padding to 64 | voxels
///   failures.jsonl          items that could not be read (biud-preprocess)
/// Voxels are x-fastest (Volume layout), int16 (value = stored / quant) or IEEE float16.
/// A record is complete when its voxels are all in the file; a shard may end in a partial
/// record (a crash), which a rerun cuts off and redoes. The crc32 covers the voxel bytes.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "biud/config/DataConfig.h"
#include "biud/image/Volume.h"

namespace biud::image {

enum class CacheDtype : std::uint8_t { Int16 = 1, Float16 = 2 };

/// On-disk record header (fixed 256 bytes).
struct RecordHeader {
  char magic[8];              ///< "BIUDCT\0\1"
  std::uint32_t version;      ///< kCacheVersion
  std::uint32_t headerBytes;  ///< 256
  std::uint8_t dtype;         ///< CacheDtype
  char orientation[3];        ///< "LPS"
  std::int32_t shape[3];
  double spacing[3];
  double origin[3];
  double direction[9];
  float quant;          ///< int16: value = stored / quant
  std::uint32_t crc32;  ///< of the voxel bytes
  char hash[16];        ///< preprocessing hash (preprocessHash)
  std::uint32_t idBytes;
  std::uint32_t reserved0;
  std::uint64_t dataOffset;  ///< from the record start to the first voxel byte
  std::uint64_t dataBytes;
  char reserved[256 - 8 - 4 - 4 - 1 - 3 - 12 - 24 - 24 - 72 - 4 - 4 - 16 - 4 - 4 - 8 - 8];
};
static_assert(sizeof(RecordHeader) == 256, "RecordHeader must stay 256 bytes");
constexpr std::uint32_t kCacheVersion = 1;

struct CacheEntry {
  std::string id, shard;     ///< shard file name (inside the cache folder)
  std::uint64_t offset = 0;  ///< first voxel byte in the shard
  std::uint64_t bytes = 0;
  std::array<int, 3> shape{};
  std::array<double, 3> spacing{}, origin{};
  CacheDtype dtype = CacheDtype::Int16;
  float quant = 1.0f;
  std::uint32_t crc = 0;
  std::int64_t numel() const { return static_cast<std::int64_t>(shape[0]) * shape[1] * shape[2]; }
};

/// int16 quantisation factor for a preprocessing config: the largest q with every scaled value
/// (window bounds and pad value) times q inside int16.
float int16Quant(const CtPreprocessConfig& cfg);

std::uint16_t floatToHalf(float f);
float halfToFloat(std::uint16_t h);

/// Appends records to its own shard files (one writer per thread).
class CacheWriter {
 public:
  CacheWriter(std::string dir, std::string hash, CacheDtype dtype, float quant, std::uint64_t shardBytes,
              std::string shardPrefix);
  ~CacheWriter();
  CacheWriter(const CacheWriter&) = delete;
  CacheWriter& operator=(const CacheWriter&) = delete;
  /// Append one volume (data flushed and fsync'ed before returning).
  CacheEntry write(const std::string& id, const Volume& v);
  void close();

 private:
  void openNext();
  std::string dir_, hash_, prefix_;
  CacheDtype dtype_;
  float quant_;
  std::uint64_t shardBytes_, pos_ = 0;
  int fd_ = -1, seq_ = 0;
  std::string shard_;
};

/// crc32 (zlib's polynomial) of n bytes.
std::uint32_t crc32Of(const void* p, std::uint64_t n);

/// Complete records of a shard with hash `hash`. A trailing partial record, or a record whose
/// header is inconsistent (shape, sizes, dtype), ends the scan: the rest is cut off (the file
/// truncated) when `repair`, and redone by the caller. Records with another hash are an error.
/// With `verify`, each record's voxels are read and checked against its crc32; records that
/// fail are left out of the result and their ids appended to `damaged` (the caller redoes them).
std::vector<CacheEntry> scanShard(const std::string& dir, const std::string& shard, const std::string& hash,
                                  bool repair, std::uint64_t* cutBytes = nullptr, bool verify = false,
                                  std::vector<std::string>* damaged = nullptr);

/// Write index.json atomically.
void writeCacheIndex(const std::string& dir, const std::string& hash, const std::string& description,
                     const std::vector<CacheEntry>& entries);

/// Hash and description stored in a cache folder's index.json ("" when there is no index).
std::pair<std::string, std::string> cacheHashOf(const std::string& dir);

/// The items a cache's failures.jsonl records as unreadable: id -> error (empty when the file
/// is absent; lines that are not JSON are ignored).
std::map<std::string, std::string> readCacheFailures(const std::string& dir);

/// When a reader checks a record's crc32 against its voxels.
enum class Verify : std::uint8_t {
  Off,     ///< never (tests of the unchecked path, benchmarks)
  Once,    ///< the first time each record is read in this process (the default: after that the
           ///< bytes are the mapped pages already checked)
  Always,  ///< on every read
};

/// The verification readers use when the caller does not say: Verify::Once, or what the
/// environment variable BIUD_CACHE_VERIFY (off, once, always) says; setDefaultVerify overrides
/// both (benchmarks).
Verify defaultVerify();
void setDefaultVerify(Verify v);

/// Memory-mapped reader over a cache folder. Thread-safe.
///
/// Every record is verified before it is used (Verify::Once by default): a record whose voxels
/// changed after biud-preprocess wrote them (disk or copy damage, a tool that wrote into the
/// shard) is a DataError naming the item and the fix, never silently trained on.
class CacheReader {
 public:
  /// Refuses (ConfigError, naming both parameter sets) a cache built with another
  /// preprocessing hash; `expectedHash` empty = accept any.
  explicit CacheReader(const std::string& dir, const std::string& expectedHash = "",
                       const std::string& expectedDescription = "");
  ~CacheReader();
  CacheReader(const CacheReader&) = delete;
  CacheReader& operator=(const CacheReader&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& hash() const { return hash_; }
  const std::string& description() const { return description_; }
  size_t size() const { return entries_.size(); }
  const std::vector<CacheEntry>& entries() const { return entries_; }
  /// Entry of an id, or nullptr.
  const CacheEntry* find(const std::string& id) const;
  /// Pointer to the mapped voxel bytes (valid while the reader lives).
  const void* data(const CacheEntry& e) const;
  /// Decode to float into `out` (numel values), after checking the crc32 as `verify` says.
  void decode(const CacheEntry& e, float* out, Verify verify = defaultVerify()) const;
  /// The item as a Volume (float).
  Volume read(const std::string& id, Verify verify = defaultVerify()) const;
  /// Check one record now (DataError when its crc32 does not match).
  void verify(const CacheEntry& e) const;
  /// Records verified so far in this process.
  size_t verifiedCount() const;

 private:
  struct Map {
    void* addr = nullptr;
    size_t len = 0;
  };
  const Map& mapShard(const std::string& shard) const;
  std::string dir_, hash_, description_;
  std::vector<CacheEntry> entries_;
  std::map<std::string, size_t> byId_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> verified_;  ///< per entry: 1 once its crc32 matched
  mutable std::mutex mu_;
  mutable std::map<std::string, Map> maps_;
};

}  // namespace biud::image
