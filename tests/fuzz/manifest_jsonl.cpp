/// Fuzzes the JSON-lines manifest reader (src/image/Manifest.cpp): the input is a `.jsonl`
/// manifest (`.jsonl.gz` when it starts with the gzip magic). A manifest that reads must read
/// back the same after writeManifestCsv().
#include "ManifestCheck.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  biud::fuzz::checkManifest(in, gz ? "m.jsonl.gz" : "m.jsonl");
  return 0;
}
