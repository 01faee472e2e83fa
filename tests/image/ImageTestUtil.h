#pragma once
// Shared by tests/image: load a reference written by tests/reference/image_io.py and compare.
#include <cmath>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/image/Volume.h"
#include "common/TestUtil.h"

namespace biud::test {

/// `OUT.raw` + `OUT.json` from image_io.py as a Volume.
inline image::Volume loadReference(const std::string& out) {
  auto j = nlohmann::json::parse(readText(out + ".json"));
  image::Volume v;
  for (int d = 0; d < 3; ++d) {
    v.size[d] = j["size"][d].get<int>();
    v.spacing[d] = j["spacing"][d].get<double>();
    v.origin[d] = j["origin"][d].get<double>();
  }
  for (int i = 0; i < 9; ++i) v.direction[i] = j["direction"][i].get<double>();
  v.data.resize(static_cast<size_t>(v.numel()));
  std::ifstream f(out + ".raw", std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data.data()), static_cast<std::streamsize>(v.data.size() * sizeof(float)));
  EXPECT_TRUE(f.good()) << out;
  return v;
}

/// Paths of the nibabel / pydicom test-data folders in the venv.
inline std::string testDataDir(const std::string& which) {
  static nlohmann::json j = nlohmann::json::parse(runPython("image_io.py", "paths"));
  return j[which].get<std::string>();
}

/// Voxels within `tol` (absolute), geometry within 1e-3 mm / 1e-4.
inline void expectSameVolume(const image::Volume& got, const image::Volume& want, double tol, bool geometry = true) {
  ASSERT_EQ(got.size, want.size);
  ASSERT_EQ(got.data.size(), want.data.size());
  if (geometry) {
    for (int d = 0; d < 3; ++d) {
      EXPECT_NEAR(got.spacing[d], want.spacing[d], 1e-4) << "spacing " << d;
      EXPECT_NEAR(got.origin[d], want.origin[d], 1e-3) << "origin " << d;
    }
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(got.direction[i], want.direction[i], 1e-4) << "direction " << i;
  }
  double maxDiff = 0;
  size_t worst = 0;
  for (size_t i = 0; i < got.data.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got.data[i]) - want.data[i]);
    if (d > maxDiff) {
      maxDiff = d;
      worst = i;
    }
  }
  EXPECT_LE(maxDiff, tol) << "at flat index " << worst << ": got " << got.data[worst] << " want " << want.data[worst];
}

}  // namespace biud::test
