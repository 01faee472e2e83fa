#pragma once
/// Shared by the manifest harnesses: read the input as a manifest file named `name`, exercise
/// the accessors, and check that writeManifestCsv() + readManifest() give the same items.
#include <cmath>

#include "FuzzUtil.h"
#include "biud/image/Manifest.h"

namespace biud::fuzz {

inline bool sameLabel(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

inline void checkManifest(std::string_view bytes, const char* name) {
  using namespace biud::image;
  guard([&] {
    const auto& dir = TempDir::get().fresh();
    writeFile(dir / name, bytes);
    Manifest m = readManifest((dir / name).string());
    for (const auto& it : m.items) {
      (void)it.text();
      (void)it.text({"report"});
      (void)m.find(it.id);
      (void)m.indicesOf(it.split);
    }
    const std::string again = (dir / "again.csv").string();
    writeManifestCsv(again, m);
    Manifest r;
    try {
      r = readManifest(again);
    } catch (const biud::Error& e) {
      std::fprintf(stderr, "FUZZ FINDING: a written manifest does not read back: %s\n", e.what());
      std::abort();
    }
    auto fail = [&](const char* what, size_t i) {
      std::fprintf(stderr, "FUZZ FINDING: manifest round trip changed %s of item %zu\n", what, i);
      std::abort();
    };
    if (r.items.size() != m.items.size()) fail("the item count", 0);
    if (r.labelNames != m.labelNames) fail("the label names", 0);
    for (size_t i = 0; i < m.items.size(); ++i) {
      const auto &a = m.items[i], &b = r.items[i];
      if (a.id != b.id) fail("the id", i);
      bool sep = false;  // `;` and `|` separate images in CSV: a JSON array element holding one splits
      for (const auto& im : a.images) sep |= im.find_first_of(";|") != std::string::npos;
      if (!sep && a.images != b.images) fail("the images", i);
      if (a.report != b.report || a.findings != b.findings || a.impression != b.impression) fail("the report", i);
      if (a.split != b.split || a.patient != b.patient) fail("split/patient", i);
      if (a.labels.size() != b.labels.size()) fail("the label count", i);
      for (size_t k = 0; k < a.labels.size(); ++k)
        if (!sameLabel(a.labels[k], b.labels[k])) fail("a label", i);
    }
  });
}

}  // namespace biud::fuzz
