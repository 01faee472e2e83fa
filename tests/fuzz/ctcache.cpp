/// Fuzzes the CT cache readers (src/image/CtCache.cpp). Two shapes of input:
///  - `<index.json>\n%%shard\n<shard bytes>[\n%%failures\n<failures.jsonl>]`: a cache folder
///    read by CacheReader (every item read and decoded) and readCacheFailures;
///  - anything else: one shard file, scanned by scanShard (with the hash of its first record),
///    then repaired; the records it accepts are indexed (writeCacheIndex) and read back.
#include "biud/image/CtCache.h"

#include <cstddef>
#include <string>

#include "FuzzUtil.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto& dir = fuzz::TempDir::get().fresh();
  const std::string d = dir.string();
  const std::string shard = "shard-0000-00-000.bin";
  if (in.find("\n%%shard\n") != std::string_view::npos) {
    std::string_view rest = in;
    fuzz::writeFile(dir / "index.json", fuzz::nextPart(rest, "\n%%shard\n"));
    fuzz::writeFile(dir / shard, fuzz::nextPart(rest, "\n%%failures\n"));
    fuzz::writeFile(dir / "failures.jsonl", rest);
    fuzz::guard([&] { (void)image::cacheHashOf(d); });
    fuzz::guard([&] { (void)image::readCacheFailures(d); });
    fuzz::guard([&] {
      image::CacheReader r(d);
      for (const auto& e : r.entries()) fuzz::guard([&] { (void)r.read(e.id); });
    });
    return 0;
  }
  fuzz::writeFile(dir / shard, in);
  std::string hash(16, '\0');
  if (size >= sizeof(image::RecordHeader)) hash.assign(in.substr(offsetof(image::RecordHeader, hash), 16));
  fuzz::guard([&] {
    auto entries = image::scanShard(d, shard, hash, /*repair=*/false);
    auto again = image::scanShard(d, shard, hash, /*repair=*/true);
    if (again.size() != entries.size()) {
      std::fprintf(stderr, "FUZZ FINDING: scanShard found %zu records, with repair %zu\n", entries.size(),
                   again.size());
      std::abort();
    }
    image::writeCacheIndex(d, hash, "fuzz", entries);
    image::CacheReader r(d, hash);
    for (const auto& e : r.entries()) fuzz::guard([&] { (void)r.read(e.id); });
  });
  return 0;
}
