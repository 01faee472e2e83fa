/// Fuzzes the CSV manifest reader (src/image/Manifest.cpp, src/core/Csv.cpp): the input is a
/// manifest `.csv` (`.csv.gz` when it starts with the gzip magic). A manifest that reads must
/// read back the same after writeManifestCsv(). Also parseNumberList and splitReportSections on
/// every field.
#include "ManifestCheck.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  biud::fuzz::checkManifest(in, gz ? "m.csv.gz" : "m.csv");
  biud::fuzz::guard([&] {
    auto rows = biud::image::parseCsv(std::string(in), "fuzz.csv");
    for (const auto& r : rows)
      for (const auto& f : r) {
        bool ok = false;
        (void)biud::image::parseNumberList(f, &ok);
        std::string a, b;
        biud::image::splitReportSections(f, a, b);
      }
  });
  return 0;
}
