// RAD-ChestCT end to end on a folder laid out like the release (tests/reference/radchest_release.py,
// real CT data from pydicom written as the release writes its .npz): biud's .npz reader equals
// numpy's np.load exactly, the manifest equals the label CSVs, the CT-RATE mapping equals a
// hand-written expectation, and the preprocessed cache equals a numpy/torch reference.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/image/Import.h"
#include "biud/image/Manifest.h"
#include "biud/image/Npz.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

std::map<std::string, const image::ManifestItem*> byId(const image::Manifest& m) {
  std::map<std::string, const image::ManifestItem*> out;
  for (const auto& it : m.items) out[it.id] = &it;
  return out;
}

float label(const image::Manifest& m, const image::ManifestItem& it, const std::string& name) {
  for (size_t l = 0; l < m.labelNames.size(); ++l)
    if (m.labelNames[l] == name) return it.labels.at(l);
  ADD_FAILURE() << "no label column " << name;
  return -1;
}

TEST(RadChestNpz, VoxelsEqualNumpyLoadExactly) {
  TempDir t("rad_npz");
  runPython("radchest_release.py", "make " + quote(t.str()));
  runPython("radchest_release.py", "extra " + quote((t / "x").string()));
  for (const std::string f : {"trn00001.npz", "val00001.npz", "x/stored.npz", "x/fortran.npz", "x/bigendian.npz"}) {
    const std::string path = (t / f).string();
    const std::string ref = (t / (f + ".ref")).string();
    runPython("radchest_release.py", "dump " + quote(path) + " " + quote(ref));
    const auto j = nlohmann::json::parse(readText(ref + ".json"));
    const std::array<int, 3> shape = {j["shape"][0].get<int>(), j["shape"][1].get<int>(), j["shape"][2].get<int>()};
    std::vector<float> want(static_cast<size_t>(shape[0]) * shape[1] * shape[2]);
    std::ifstream in(ref + ".raw", std::ios::binary);
    in.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * sizeof(float)));
    ASSERT_TRUE(in.good()) << f;
    // Through readVolume (the .npz dispatch), as biud-preprocess reads it.
    const image::Volume v = image::readVolume(path);
    // voxel (i, j, k) = array[k, j, i]: size {d2, d1, d0}, spacing 1, identity direction.
    ASSERT_EQ(v.size, (std::array<int, 3>{shape[2], shape[1], shape[0]})) << f;
    EXPECT_EQ(v.spacing, (std::array<double, 3>{1, 1, 1})) << f;
    EXPECT_EQ(v.direction, (std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1})) << f;
    size_t bad = 0;
    for (int k = 0; k < shape[0]; ++k)
      for (int jj = 0; jj < shape[1]; ++jj)
        for (int i = 0; i < shape[2]; ++i)
          bad += v.at(i, jj, k) != want[(static_cast<size_t>(k) * shape[1] + jj) * shape[2] + i];
    EXPECT_EQ(bad, 0u) << f << " (" << j["dtype"] << ")";
  }
  // The archive's keys; several arrays need a key; a truncated file is an error naming it.
  EXPECT_EQ(image::npzKeys((t / "x/stored.npz").string()), (std::vector<std::string>{"ct", "spacing"}));
  const auto sp = image::readNpz((t / "x/stored.npz").string(), "spacing");
  EXPECT_EQ(sp.descr, "<f8");
  EXPECT_EQ(sp.values, (std::vector<float>{0.8f, 0.8f, 0.8f}));
  EXPECT_THROW(image::readNpz((t / "x/two.npz").string()), DataError);
  EXPECT_THROW(image::readNpz((t / "x/stored.npz").string(), "nope"), DataError);
  try {
    image::readVolume((t / "x/cut.npz").string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.npz"), std::string::npos) << e.what();
  }
  EXPECT_THROW(image::readNpzVolume((t / "x/none.npz").string()), IoError);
}

TEST(RadChestImport, ManifestEqualsTheLabelCsvs) {
  TempDir t("rad_own");
  runPython("radchest_release.py", "make " + quote(t.str()));
  const stdfs::path out = t / "imp";
  auto r = run(quote(app("biud-import")) + " rad-chestct --root " + quote(t.str()) + " --out " + quote(out.string()) +
               " --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto m = image::readManifest((out / "manifest.csv").string());
  ASSERT_EQ(m.labelNames.size(), 83u);
  EXPECT_EQ(m.labelNames.front(), "bandlike_or_linear");
  EXPECT_EQ(m.labelNames.back(), "gi_tube");
  auto items = byId(m);
  ASSERT_EQ(items.size(), 3u) << r.out;  // trn00002 has no volume file
  EXPECT_EQ(items.at("trn00001")->split, "train");
  EXPECT_EQ(items.at("val00001")->split, "val");
  EXPECT_EQ(items.at("tst00001")->split, "test");
  EXPECT_EQ(items.at("trn00001")->images.at(0), (t / "trn00001.npz").string());
  for (const auto& [id, it] : items) {
    EXPECT_EQ(it->overrides.spacing, (std::array<double, 3>{0.8, 0.8, 0.8})) << id;
    EXPECT_FALSE(it->overrides.hasRescale()) << id;  // the release stores HU
    EXPECT_EQ(it->overrides.orientation, (std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, -1})) << id;  // head first
  }
  // Every label value against the CSVs, OR over the locations (an empty cell and no 1: unknown).
  size_t checked = 0;
  for (const std::string split : {"train", "valid", "test"}) {
    const auto tab = csv::read((t / ("img" + split + "_Abnormality_and_Location_Labels.csv")).string());
    const size_t cId = tab.require("NoteAcc_DEID");
    for (const auto& row : tab.rows) {
      auto it = items.find(row[cId]);
      if (it == items.end()) continue;
      std::map<std::string, float> want;
      for (size_t c = 0; c < row.size(); ++c) {
        if (c == cId) continue;
        const std::string abn = tab.header[c].substr(0, tab.header[c].find('*'));
        const float x = row[c].empty() ? NAN : std::stof(row[c]);
        auto [pos, fresh] = want.emplace(abn, x);
        if (!fresh)
          pos->second = (pos->second == 1 || x == 1) ? 1.0f : (std::isnan(pos->second) || std::isnan(x)) ? NAN : 0.0f;
      }
      for (const auto& [abn, w] : want) {
        const float got = label(m, *it->second, abn);
        if (std::isnan(w))
          EXPECT_TRUE(std::isnan(got)) << it->first << " " << abn;
        else
          EXPECT_EQ(got, w) << it->first << " " << abn;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 3u * 83u);
  // Hand-written spot checks of the same.
  EXPECT_EQ(label(m, *items.at("trn00001"), "nodule"), 1.0f);
  EXPECT_EQ(label(m, *items.at("trn00001"), "hernia"), 1.0f);
  EXPECT_EQ(label(m, *items.at("trn00001"), "opacity"), 0.0f);
  EXPECT_TRUE(std::isnan(label(m, *items.at("tst00001"), "emphysema")));
  const auto j = nlohmann::json::parse(readText(out / "import.json"));
  EXPECT_EQ(j["skipped"]["by_reason"]["volume file not found"], 1);
  EXPECT_EQ(j["files_read"].size(), 3u);

  // --all-test: CT-CLIP's external validation uses every item.
  r = run(quote(app("biud-import")) + " rad-chestct --root " + quote(t.str()) + " --out " +
          quote((t / "all").string()) + " --all-test --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const auto& it : image::readManifest((t / "all/manifest.csv").string()).items) EXPECT_EQ(it.split, "test");
}

TEST(RadChestImport, CtRateMappingEqualsHandWrittenExpectation) {
  TempDir t("rad_map");
  runPython("radchest_release.py", "make " + quote(t.str()));
  const stdfs::path out = t / "imp";
  auto r = run(quote(app("biud-import")) + " rad-chestct --root " + quote(t.str()) + " --out " + quote(out.string()) +
               " --label-names ct-rate --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto m = image::readManifest((out / "manifest.csv").string());
  // CT-RATE's order, without Hiatal hernia and Mosaic attenuation pattern.
  EXPECT_EQ(m.labelNames,
            (std::vector<std::string>{"Medical material", "Arterial wall calcification", "Cardiomegaly",
                                      "Pericardial effusion", "Coronary artery wall calcification", "Lymphadenopathy",
                                      "Emphysema", "Atelectasis", "Lung nodule", "Lung opacity",
                                      "Pulmonary fibrotic sequela", "Pleural effusion", "Peribronchial thickening",
                                      "Consolidation", "Bronchiectasis", "Interlobular septal thickening"}));
  auto items = byId(m);
  ASSERT_EQ(items.size(), 3u);
  // trn00001: nodule*left_lung, atherosclerosis, hernia, air_trapping -> only the first two map.
  std::map<std::string, std::map<std::string, float>> want = {
      {"trn00001", {{"Lung nodule", 1}, {"Arterial wall calcification", 1}}},
      {"val00001", {{"Pleural effusion", 1}, {"Medical material", 1}}},
      {"tst00001", {{"Lung opacity", 1}, {"Emphysema", NAN}}}};
  for (const auto& [id, on] : want)
    for (const auto& name : m.labelNames) {
      const float got = label(m, *items.at(id), name);
      const float w = on.count(name) ? on.at(name) : 0.0f;
      if (std::isnan(w))
        EXPECT_TRUE(std::isnan(got)) << id << " " << name;
      else
        EXPECT_EQ(got, w) << id << " " << name;
    }
  const auto j = nlohmann::json::parse(readText(out / "import.json"));
  const std::string notes = j["notes"].dump();
  EXPECT_NE(notes.find("Hiatal hernia, Mosaic attenuation pattern"), std::string::npos) << notes;
  EXPECT_EQ(image::radChestCtToCtRate().size(), 16u);
}

TEST(RadChestImport, CacheEqualsNumpyTorchReference) {
  TempDir t("rad_cache");
  runPython("radchest_release.py", "make " + quote(t.str()));
  auto r = run(quote(app("biud-import")) + " rad-chestct --root " + quote(t.str()) + " --out " +
               quote((t / "imp").string()) + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const stdfs::path cache = t / "cache";
  r = run(
      quote(app("biud-preprocess")) + " --manifest " + quote((t / "imp/manifest.csv").string()) + " --out " +
      quote(cache.string()) +
      " --quiet --threads 1 --set data.ct.grid=torch --set data.ct.spacing=[1.5,1.5,3] --set data.ct.size=[64,56,16]");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto diffs = nlohmann::json::parse(runPython(
      "radchest_release.py", "reference " + quote(t.str()) + " " + quote(cache.string()) + " 1.5 1.5 3 64 56 16"));
  ASSERT_EQ(diffs.size(), 3u);
  for (const auto& [id, d] : diffs.items()) EXPECT_LT(d.get<double>(), 1e-3) << id;
  const auto summary = nlohmann::json::parse(readText(cache / "biud-preprocess.json"));
  EXPECT_EQ(summary["hu_implausible"], 0);
}

TEST(RadChestImport, MissingLabelTablesAreAClearError) {
  TempDir t("rad_none");
  auto r =
      run(quote(app("biud-import")) + " rad-chestct --root " + quote(t.str()) + " --out " + quote((t / "o").string()));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("_Abnormality_and_Location_Labels.csv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--root"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace biud::test
