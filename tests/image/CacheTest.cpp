// Cache records: float16 conversion by hand and exhaustively, int16 quantisation, round trip,
// partial-record repair and refusal of a cache built with other parameters.
#include <zlib.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/image/CtCache.h"
#include "biud/image/Preprocess.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

using image::Volume;

TEST(Cache, HalfConversionByHand) {
  EXPECT_EQ(image::floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(image::floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(image::floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(image::floatToHalf(1e6f), 0x7C00);           // overflow -> Inf
  EXPECT_EQ(image::floatToHalf(0.333333f), 0x3555);      // nearest
  EXPECT_EQ(image::floatToHalf(5.9604645e-8f), 0x0001);  // smallest subnormal
  EXPECT_EQ(image::floatToHalf(1e-9f), 0x0000);
  EXPECT_EQ(image::floatToHalf(1.0f + 1.0f / 2048), 0x3C00);  // tie -> even
  EXPECT_EQ(image::floatToHalf(1.0f + 3.0f / 2048), 0x3C02);  // tie -> even (up)
  // Every finite half survives half -> float -> half.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(image::floatToHalf(image::halfToFloat(static_cast<std::uint16_t>(h))), h) << h;
  }
  EXPECT_FLOAT_EQ(image::halfToFloat(0x3555), 0.33325195f);
}

Volume ramp() {
  Volume v({5, 4, 3}, {1.5, 1.5, 3.0});
  v.origin = {-10, 20, 30};
  for (size_t i = 0; i < v.data.size(); ++i) v.data[i] = -1.0f + 2.0f * static_cast<float>(i) / 59.0f;
  return v;
}

TEST(Cache, RoundTripInt16AndFloat16) {
  TempDir t("cache");
  CtPreprocessConfig cfg;
  const std::string hash = image::preprocessHash(cfg);
  const float q = image::int16Quant(cfg);
  EXPECT_EQ(q, 32767.0f);  // scaled window [-1, 1], pad -1
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Int16, q, 1 << 20, "shard-a");
    w.write("x", ramp());
    Volume b = ramp();
    for (float& x : b.data) x = -x;
    w.write("y", b);
    std::vector<image::CacheEntry> all = image::scanShard(t.str(), "shard-a-000.bin", hash, false);
    ASSERT_EQ(all.size(), 2u);
    image::writeCacheIndex(t.str(), hash, image::describePreprocess(cfg), all);
  }
  image::CacheReader r(t.str(), hash);
  ASSERT_EQ(r.size(), 2u);
  Volume x = r.read("x", image::Verify::Always);
  const Volume want = ramp();
  EXPECT_EQ(x.size, want.size);
  EXPECT_EQ(x.spacing, want.spacing);
  EXPECT_EQ(x.origin, want.origin);
  for (size_t i = 0; i < x.data.size(); ++i) EXPECT_NEAR(x.data[i], want.data[i], 0.5 / 32767 + 1e-7);
  EXPECT_NEAR(r.read("y").data[0], 1.0f, 1e-6);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r.data(*r.find("x"))) % 64, 0u);  // aligned voxels
  EXPECT_THROW(r.read("nope"), DataError);
  // Another expected hash: refused with both descriptions in the message.
  CtPreprocessConfig other = cfg;
  other.size = {10, 10, 10};
  try {
    image::CacheReader bad(t.str(), image::preprocessHash(other), image::describePreprocess(other));
    ADD_FAILURE() << "accepted a cache with another preprocessing hash";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("size [96, 96, 48]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("size [10, 10, 10]"), std::string::npos) << e.what();
  }
  // float16 storage.
  TempDir t2("cache16");
  {
    image::CacheWriter w(t2.str(), hash, image::CacheDtype::Float16, 1.0f, 1 << 20, "shard-b");
    w.write("x", ramp());
    image::writeCacheIndex(t2.str(), hash, "", image::scanShard(t2.str(), "shard-b-000.bin", hash, false));
  }
  image::CacheReader r2(t2.str());
  Volume x2 = r2.read("x", image::Verify::Always);
  for (size_t i = 0; i < x2.data.size(); ++i)
    EXPECT_EQ(x2.data[i], image::halfToFloat(image::floatToHalf(want.data[i])));
}

TEST(Cache, PartialRecordIsCutAndCorruptionDetected) {
  TempDir t("partial");
  const std::string hash = image::preprocessHash(CtPreprocessConfig{});
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Int16, 100.0f, 1 << 20, "shard-c");
    w.write("a", ramp());
    w.write("b", ramp());
  }
  const auto path = t / "shard-c-000.bin";
  const auto full = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full - 10);  // a crash in the middle of "b"
  std::uint64_t cut = 0;
  auto entries = image::scanShard(t.str(), "shard-c-000.bin", hash, /*repair=*/true, &cut);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].id, "a");
  EXPECT_GT(cut, 0u);
  EXPECT_EQ(std::filesystem::file_size(path), entries[0].offset + entries[0].bytes);
  // Flip one voxel byte: the checksum catches it.
  {
    std::string bytes = readText(path);
    bytes[static_cast<size_t>(entries[0].offset) + 3] ^= 0x5a;
    writeText(path, bytes);
  }
  image::writeCacheIndex(t.str(), hash, "", entries);
  image::CacheReader r(t.str());
  EXPECT_NO_THROW(r.read("a", image::Verify::Off));
  EXPECT_THROW(r.read("a", image::Verify::Always), DataError);
  // A shard of another hash is refused when scanning.
  EXPECT_THROW(image::scanShard(t.str(), "shard-c-000.bin", "0123456789abcdef", false), ConfigError);
}

// crc32Of (libdeflate when present, zlib otherwise) must give zlib's value: caches written with
// one are read with the other. The CRC-32 check value of "123456789" is 0xCBF43926.
TEST(Cache, Crc32MatchesZlib) {
  EXPECT_EQ(image::crc32Of("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(image::crc32Of("", 0), 0u);
  std::vector<unsigned char> buf(3u << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
  EXPECT_EQ(image::crc32Of(buf.data(), buf.size()),
            static_cast<std::uint32_t>(::crc32(0L, buf.data(), static_cast<uInt>(buf.size()))));
}

// Issue 20: a record whose voxels changed after it was written is never used silently. The
// default read (what the loaders call) checks each record the first time it is read.
TEST(Cache, DamagedRecordIsRefusedByDefaultAndIntactOnesAreCheckedOnce) {
  TempDir t("cachedmg");
  CtPreprocessConfig cfg;
  const std::string hash = image::preprocessHash(cfg);
  std::vector<image::CacheEntry> entries;
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Int16, image::int16Quant(cfg), 1 << 20, "shard-d");
    entries.push_back(w.write("a", ramp()));
    entries.push_back(w.write("b", ramp()));
  }
  image::writeCacheIndex(t.str(), hash, "", entries);
  const auto path = t / "shard-d-000.bin";
  {
    std::string bytes = readText(path);
    bytes[static_cast<size_t>(entries[0].offset) + 7] ^= 0x01;  // one bit of one voxel of "a"
    writeText(path, bytes);
  }
  image::CacheReader r(t.str());
  try {
    r.read("a");
    ADD_FAILURE() << "a damaged record was decoded";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("item `a`"), std::string::npos) << m;
    EXPECT_NE(m.find("fails its checksum"), std::string::npos) << m;
    EXPECT_NE(m.find("shard-d-000.bin"), std::string::npos) << m;
    EXPECT_NE(m.find("Rerun biud-preprocess"), std::string::npos) << m;
  }
  EXPECT_THROW(r.read("a"), DataError);  // a failure is not memoised as checked
  float out[60];
  EXPECT_THROW(r.decode(*r.find("a"), out), DataError);
  EXPECT_NO_THROW(r.decode(*r.find("a"), out, image::Verify::Off));
  EXPECT_EQ(r.verifiedCount(), 0u);
  Volume b = r.read("b");
  EXPECT_EQ(r.verifiedCount(), 1u);
  EXPECT_NEAR(b.data[59], 1.0f, 1e-4);
  // A copy of the entry (not the reader's own) is checked too.
  image::CacheEntry copy = *r.find("a");
  EXPECT_THROW(r.decode(copy, out), DataError);
}

// Issue 20: a header that the writer could not have written ends the scan (the tail is cut off
// and redone by biud-preprocess) instead of being read with its sizes trusted.
TEST(Cache, InconsistentRecordHeaderEndsTheScan) {
  TempDir t("cachehdr");
  CtPreprocessConfig cfg;
  const std::string hash = image::preprocessHash(cfg);
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Int16, image::int16Quant(cfg), 1 << 20, "shard-h");
    w.write("a", ramp());
    w.write("b", ramp());
  }
  const auto path = t / "shard-h-000.bin";
  const std::string orig = readText(path);
  auto entries = image::scanShard(t.str(), "shard-h-000.bin", hash, false);
  ASSERT_EQ(entries.size(), 2u);
  const size_t recB = static_cast<size_t>(entries[0].offset + entries[0].bytes);  // header of "b"
  auto patch = [&](size_t field, const void* v, size_t n) {
    std::string bytes = orig;
    std::memcpy(&bytes[recB + field], v, n);
    writeText(path, bytes);
  };
  const std::int32_t bigShape[3] = {5000, 4, 3};  // voxel bytes no longer match the shape
  patch(offsetof(image::RecordHeader, shape), bigShape, sizeof bigShape);
  auto got = image::scanShard(t.str(), "shard-h-000.bin", hash, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, "a");
  const std::uint8_t badType = 7;
  patch(offsetof(image::RecordHeader, dtype), &badType, 1);
  EXPECT_EQ(image::scanShard(t.str(), "shard-h-000.bin", hash, false).size(), 1u);
  const std::uint64_t hugeBytes = ~std::uint64_t{0} - 100;  // pos + size would wrap around
  patch(offsetof(image::RecordHeader, dataBytes), &hugeBytes, sizeof hugeBytes);
  std::uint64_t cut = 0;
  EXPECT_EQ(image::scanShard(t.str(), "shard-h-000.bin", hash, /*repair=*/true, &cut).size(), 1u);
  EXPECT_EQ(cut, orig.size() - recB);
  EXPECT_EQ(std::filesystem::file_size(path), recB);
}

// Issue 20: with verify, scanning reads every record and reports the damaged ones.
TEST(Cache, ScanWithVerifyLeavesOutDamagedRecords) {
  TempDir t("cachescan");
  CtPreprocessConfig cfg;
  const std::string hash = image::preprocessHash(cfg);
  std::vector<image::CacheEntry> entries;
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Float16, 1.0f, 1 << 20, "shard-v");
    for (const char* id : {"a", "b", "c"}) entries.push_back(w.write(id, ramp()));
  }
  const auto path = t / "shard-v-000.bin";
  std::string bytes = readText(path);
  bytes[static_cast<size_t>(entries[1].offset + entries[1].bytes - 1)] ^= 0x40;  // last byte of "b"
  writeText(path, bytes);
  std::vector<std::string> damaged;
  auto got = image::scanShard(t.str(), "shard-v-000.bin", hash, false, nullptr, /*verify=*/true, &damaged);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, "a");
  EXPECT_EQ(got[1].id, "c");
  EXPECT_EQ(damaged, std::vector<std::string>{"b"});
  EXPECT_EQ(image::scanShard(t.str(), "shard-v-000.bin", hash, false).size(), 3u);  // without verify: trusted
}

// Fuzzing finding F1, second line of defence: index.json cannot hold a non-UTF-8 id.
TEST(Cache, IndexRefusesAnIdThatIsNotUtf8) {
  TempDir t("cacheutf8");
  image::CacheEntry e;
  e.id = "caf\xe9";
  e.shard = "s.bin";
  e.shape = {1, 1, 1};
  e.bytes = 2;
  EXPECT_THROW(image::writeCacheIndex(t.str(), "0123456789abcdef", "", {e}), DataError);
  EXPECT_FALSE(std::filesystem::exists(t / "index.json"));
}

TEST(Cache, ShardsRollOver) {
  TempDir t("roll");
  const std::string hash = image::preprocessHash(CtPreprocessConfig{});
  std::vector<image::CacheEntry> es;
  {
    image::CacheWriter w(t.str(), hash, image::CacheDtype::Int16, 100.0f, /*shardBytes=*/300, "shard-d");
    for (int i = 0; i < 3; ++i) es.push_back(w.write("v" + std::to_string(i), ramp()));
  }
  EXPECT_EQ(es[0].shard, "shard-d-000.bin");
  EXPECT_EQ(es[1].shard, "shard-d-001.bin");
  EXPECT_EQ(es[2].shard, "shard-d-002.bin");
}

}  // namespace
}  // namespace biud::test
