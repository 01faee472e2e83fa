// biud-import on folders laid out like the public releases, built from real CT files, then
// biud-preprocess: the cached voxels equal CT-CLIP's own preprocessing convention (metadata
// slope/intercept/spacing, clip [-1000, 1000], / 1000) within 1e-3 (tests/reference/ctrate_release.py).
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/image/Import.h"
#include "biud/image/Manifest.h"
#include "biud/image/PreprocessJob.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

std::map<std::string, const image::ManifestItem*> byId(const image::Manifest& m) {
  std::map<std::string, const image::ManifestItem*> out;
  for (const auto& it : m.items) out[it.id] = &it;
  return out;
}

TEST(CtRateName, ParsesTheReleaseNaming) {
  image::CtRateName n;
  ASSERT_TRUE(image::parseCtRateName("train_123_a_1.nii.gz", n));
  EXPECT_EQ(n.split, "train");
  EXPECT_EQ(n.patient, "train_123");
  EXPECT_EQ(n.scan, "train_123_a");
  EXPECT_EQ(n.reconstruction, 1);
  ASSERT_TRUE(image::parseCtRateName("valid_53_b_2", n));
  EXPECT_EQ(n.patient, "valid_53");
  EXPECT_EQ(n.reconstruction, 2);
  EXPECT_FALSE(image::parseCtRateName("train_123_a", n));
  EXPECT_FALSE(image::parseCtRateName("train_x_a_1", n));
  EXPECT_FALSE(image::parseCtRateName("scan.nii.gz", n));
}

TEST(CtRateName, HashedFractionIsStableAndRoughlyTheFraction) {
  // FNV-1a of the id, mod 1e6: worked out for two ids by hand in Python (fnv1a_64).
  int in = 0;
  for (int p = 1; p <= 20000; ++p) in += image::inHashedFraction("train_" + std::to_string(p), 0.02);
  EXPECT_NEAR(in / 20000.0, 0.02, 0.004);
  EXPECT_FALSE(image::inHashedFraction("train_1", 0.0));
  EXPECT_TRUE(image::inHashedFraction("train_1", 1.0));
}

TEST(GzipText, TablesAreInflatedTransparently) {
  TempDir t("gz");
  runPython("ctrate_release.py", "make " + quote(t.str()));
  const stdfs::path gz = t / "dataset/multi_abnormality_labels/valid_predicted_labels.csv.gz";
  const std::string text = fs::readTextFile(gz);
  EXPECT_EQ(text.rfind("VolumeName,Medical material,", 0), 0u) << text.substr(0, 80);
  // The same bytes as the Python gzip module gives.
  const std::string want = runPython("ctrate_release.py", "cat_gz " + quote(gz.string()));
  EXPECT_EQ(text, want);
  // A truncated gzip file is an error naming the file, not garbage.
  const std::string whole = fs::readFile(gz);
  writeText(t / "cut.csv.gz", whole.substr(0, whole.size() - 12));
  try {
    fs::readTextFile(t / "cut.csv.gz");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.csv.gz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(ImportCtRate, ReleaseLayoutToManifestAndCacheEqualsCtClipConvention) {
  TempDir t("ctrate");
  runPython("ctrate_release.py", "make " + quote(t.str()));
  const stdfs::path out = t / "import";
  auto r = run(quote(app("biud-import")) + " ct-rate --root " + quote(t.str()) + " --out " + quote(out.string()) +
               " --val-fraction 0 --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;

  // --- the manifest --------------------------------------------------------------------------
  const auto m = image::readManifest((out / "manifest.csv").string());
  ASSERT_EQ(m.labelNames.size(), 18u);
  EXPECT_EQ(m.labelNames[0], "Medical material");
  EXPECT_EQ(m.labelNames[12], "Pleural effusion");
  auto items = byId(m);
  ASSERT_EQ(items.size(), 3u) << r.out;  // train_2_a_1 has no volume file
  const auto& a = *items.at("train_1_a_1");
  const auto& b = *items.at("train_1_a_2");
  const auto& c = *items.at("valid_1_a_1");
  EXPECT_EQ(a.split, "train");
  EXPECT_EQ(b.split, "train");
  EXPECT_EQ(c.split, "test");  // CT-RATE's valid set is the benchmark test set
  EXPECT_EQ(a.patient, "train_1");
  EXPECT_EQ(b.patient, "train_1");
  EXPECT_EQ(a.images.at(0), (t / "dataset/train/train_1/train_1_a/train_1_a_1.nii.gz").string());
  // Metadata as written by the fixture (CT_small.dcm: 0.661468 mm, 5 mm, intercept -1024).
  EXPECT_DOUBLE_EQ(a.overrides.spacing[0], 0.661468);
  EXPECT_DOUBLE_EQ(a.overrides.spacing[1], 0.661468);
  EXPECT_DOUBLE_EQ(a.overrides.spacing[2], 5.0);
  EXPECT_DOUBLE_EQ(a.overrides.slope, 1.0);
  EXPECT_DOUBLE_EQ(a.overrides.intercept, -1024.0);
  EXPECT_DOUBLE_EQ(b.overrides.spacing[0], 0.488281);
  EXPECT_DOUBLE_EQ(b.overrides.spacing[2], 2.5);
  EXPECT_EQ(a.overrides.orientation, (std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_DOUBLE_EQ(a.overrides.origin[0], -158.135803);
  // Labels from the gzip-compressed label CSV.
  EXPECT_EQ(a.labels.at(1), 1.0f);  // Arterial wall calcification
  EXPECT_EQ(a.labels.at(2), 0.0f);
  EXPECT_EQ(c.labels.at(12), 1.0f);  // Pleural effusion
  // Report sections; "Not given." is no text (CT-CLIP's loaders).
  EXPECT_EQ(c.impression, "");
  EXPECT_EQ(c.findings, "Pleural effusion on the right, 2 cm.");
  EXPECT_NE(a.findings.find("\"mild\""), std::string::npos);
  EXPECT_EQ(a.report.rfind("Clinical information: Cough. Technique: Non-contrast, 1 mm slices. Findings: ", 0), 0u)
      << a.report;

  const auto j = nlohmann::json::parse(readText(out / "import.json"));
  EXPECT_EQ(j["items"], 3);
  EXPECT_EQ(j["splits"]["train"], 2);
  EXPECT_EQ(j["splits"]["test"], 1);
  EXPECT_EQ(j["skipped"]["total"], 1);
  EXPECT_EQ(j["skipped"]["by_reason"]["volume file not found"], 1);
  EXPECT_EQ(j["labels"]["Pleural effusion"]["positive"], 1);
  EXPECT_EQ(j["files_read"].size(), 6u);

  // --- one reconstruction per scan ------------------------------------------------------------
  r = run(quote(app("biud-import")) + " ct-rate --root " + quote(t.str()) + " --out " + quote((t / "one").string()) +
          " --one-reconstruction --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto one = byId(image::readManifest((t / "one/manifest.csv").string()));
  EXPECT_EQ(one.size(), 2u);
  EXPECT_TRUE(one.count("train_1_a_1"));
  EXPECT_FALSE(one.count("train_1_a_2"));

  // --- preprocess with CT-CLIP's grid: equal to CT-CLIP's convention ---------------------------
  const stdfs::path cache = t / "cache";
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((out / "manifest.csv").string()) + " --out " +
          quote(cache.string()) +
          " --quiet --threads 1 --set data.ct.grid=torch --set data.ct.spacing=[0.75,0.75,1.5]"
          " --set data.ct.size=[120,128,24]");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto diffs = nlohmann::json::parse(runPython(
      "ctrate_release.py", "reference " + quote(t.str()) + " " + quote(cache.string()) + " 0.75 0.75 1.5 120 128 24"));
  ASSERT_EQ(diffs.size(), 3u);
  for (const auto& [id, d] : diffs.items()) EXPECT_LT(d.get<double>(), 1e-3) << id;
  // The header/metadata disagreements are logged per volume: every fixture header says 1 x 1 x 1 mm.
  std::map<std::string, std::string> notes;
  std::istringstream in(readText(cache / "notes.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto n = nlohmann::json::parse(line);
    notes[n["id"].get<std::string>()] = n["notes"].dump();
  }
  ASSERT_EQ(notes.size(), 3u);
  EXPECT_NE(notes["valid_1_a_1"].find("spacing: header 1 x 1 x 1 mm, metadata 0.661468 x 0.661468 x 5 mm"),
            std::string::npos)
      << notes["valid_1_a_1"];
  const auto summary = nlohmann::json::parse(readText(cache / "biud-preprocess.json"));
  EXPECT_EQ(summary["header_disagreements"], 3);
  EXPECT_EQ(summary["hu_implausible"], 0);
}

TEST(ImportCtRate, WithoutTheMetadataTheHuCheckCatchesRawValues) {
  // The same release without the metadata rescale: raw values (air at +24) are not HU. The
  // preprocessing says so per volume (warn), or fails the item (error).
  TempDir t("ctrate_raw");
  runPython("ctrate_release.py", "make " + quote(t.str()));
  auto r = run(quote(app("biud-import")) + " ct-rate --root " + quote(t.str()) + " --out " +
               quote((t / "imp").string()) + " --rescale file --val-fraction 0 --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((t / "imp/manifest.csv").string()) + " --out " +
          quote((t / "cache").string()) + " --quiet --threads 1 --set data.ct.hu_check=error");
  EXPECT_EQ(r.rc, 3) << r.out;
  const std::string failures = readText(t / "cache/failures.jsonl");
  EXPECT_NE(failures.find("HU values look wrong"), std::string::npos) << failures;
  const auto summary = nlohmann::json::parse(readText(t / "cache/biud-preprocess.json"));
  EXPECT_EQ(summary["failed"], 3);
  EXPECT_EQ(summary["hu_implausible"], 3);
}

TEST(ImportCtRate, MissingReleaseFolderIsAClearError) {
  TempDir t("ctrate_none");
  auto r = run(quote(app("biud-import")) + " ct-rate --root " + quote(t.str()) + " --out " + quote((t / "o").string()));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("train_reports.csv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--root"), std::string::npos) << r.out;
}

TEST(ImportMimicCxr, FrontalViewsReportsAndCheXpertLabelsAsTheReleaseDocumentsThem) {
  TempDir t("mimic");
  runPython("mimic_release.py", "make " + quote(t.str()));
  auto r = run(quote(app("biud-import")) + " mimic-cxr --root " + quote(t.str()) + " --out " +
               quote((t / "o").string()) + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto want = nlohmann::json::parse(runPython("mimic_release.py", "expect " + quote(t.str())));
  const auto m = image::readManifest((t / "o/manifest.csv").string());
  ASSERT_EQ(m.labelNames, want["labels"].get<std::vector<std::string>>());
  ASSERT_EQ(m.items.size(), want["items"].size());
  for (size_t i = 0; i < m.items.size(); ++i) {
    const auto& got = m.items[i];
    const auto& w = want["items"][i];
    SCOPED_TRACE(got.id);
    EXPECT_EQ(got.id, w["id"].get<std::string>());
    EXPECT_EQ(got.split, w["split"].get<std::string>());
    EXPECT_EQ(got.patient, w["patient"].get<std::string>());
    EXPECT_EQ(got.images.at(0), w["image"].get<std::string>());
    EXPECT_EQ(got.findings, w["findings"].get<std::string>());
    EXPECT_EQ(got.impression, w["impression"].get<std::string>());
    for (size_t l = 0; l < m.labelNames.size(); ++l) {
      if (w["labels"][l].is_null())
        EXPECT_TRUE(std::isnan(got.labels[l])) << m.labelNames[l];
      else
        EXPECT_EQ(got.labels[l], w["labels"][l].get<float>()) << m.labelNames[l];
    }
  }
  const auto j = nlohmann::json::parse(readText(t / "o/import.json"));
  EXPECT_EQ(j["skipped"]["by_reason"]["view LATERAL (not in --views)"], 1);
  EXPECT_EQ(j["skipped"]["by_reason"]["image file not found"], 1);
  // Every view, uncertain as positive: the lateral image is kept and -1.0 becomes 1.
  r = run(quote(app("biud-import")) + " mimic-cxr --root " + quote(t.str()) + " --out " + quote((t / "all").string()) +
          " --views all --uncertain positive --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto all = image::readManifest((t / "all/manifest.csv").string());
  EXPECT_EQ(all.items.size(), m.items.size() + 1);  // + the lateral view that has a file
  const long ap = all.find("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab");
  ASSERT_GE(ap, 0);
  EXPECT_EQ(all.items[static_cast<size_t>(ap)].labels[9], 1.0f);  // Pleural Effusion -1.0 -> positive
  // Not the release folder: a clear error naming the table and the flag.
  r = run(quote(app("biud-import")) + " mimic-cxr --root " + quote((t / "files").string()) + " --out " +
          quote((t / "x").string()));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("mimic-cxr-2.0.0-split.csv.gz"), std::string::npos) << r.out;
}

TEST(ImportFolder, DicomSeriesAndFilesWithALabelsCsv) {
  TempDir t("own");
  const std::string dcm = testDataDir("pydicom");
  // Three DICOM series folders made from a real CT slice, and a NIfTI file.
  for (int k = 0; k < 3; ++k)
    runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " +
                                 quote((t / "cts" / ("case" + std::to_string(k))).string()) + " " +
                                 std::to_string(4 + k) + " 1.2.3.4." + std::to_string(k));
  image::Volume v({20, 20, 6}, {0.8, 0.8, 2.5}, -1000.0f);
  image::writeVolume((t / "cts/case9.nii.gz").string(), v);
  writeText(t / "labels.csv",
            "case_id,patient_id,Nodule,Effusion,site\n"
            "case0,P1,1,0,Boston\ncase1,P1,0,,Boston\ncase2,P2,-1,1,Essen\ncase9,P3,0,1,Essen\nghost,P4,1,1,Essen\n");
  auto r = run(quote(app("biud-import")) + " folder --root " + quote((t / "cts").string()) + " --labels " +
               quote((t / "labels.csv").string()) +
               " --id-column case_id --patient-column patient_id"
               " --ignore-columns site --out " +
               quote((t / "o").string()) + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto m = image::readManifest((t / "o/manifest.csv").string());
  EXPECT_EQ(m.labelNames, (std::vector<std::string>{"Nodule", "Effusion"}));
  auto items = byId(m);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items.at("case0")->images.at(0), (t / "cts/case0").string());
  EXPECT_EQ(items.at("case9")->images.at(0), (t / "cts/case9.nii.gz").string());
  EXPECT_EQ(items.at("case1")->patient, "P1");
  EXPECT_EQ(items.at("case0")->split, items.at("case1")->split);  // one patient, one split
  EXPECT_TRUE(std::isnan(items.at("case1")->labels[1]));
  EXPECT_TRUE(std::isnan(items.at("case2")->labels[0]));  // -1 = unknown
  EXPECT_EQ(items.at("case2")->labels[1], 1.0f);
  const auto j = nlohmann::json::parse(readText(t / "o/import.json"));
  EXPECT_EQ(j["skipped"]["by_reason"]["no volume with this id in --root"], 1);
  // The splits follow the documented hash (FNV-1a of "test/<patient>" then "val/<patient>").
  for (const auto& it : m.items) {
    const std::string want = image::inHashedFraction("test/" + it.patient, 0.2)        ? "test"
                             : image::inHashedFraction("val/" + it.patient, 0.1 / 0.8) ? "val"
                                                                                       : "train";
    EXPECT_EQ(it.split, want) << it.id;
  }
  // The DICOM series and the NIfTI file preprocess from the manifest; the series equal pydicom's reading.
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((t / "o/manifest.csv").string()) + " --out " +
          quote((t / "cache").string()) +
          " --quiet --threads 1 --set data.ct.hu_check=off --set data.ct.size=[32,32,8]");
  EXPECT_EQ(r.rc, 0) << r.out;
  const auto pre = nlohmann::json::parse(readText(t / "cache/biud-preprocess.json"));
  EXPECT_EQ(pre["done"], 4);
  // A relative --root (as typed in a shell) with --out elsewhere: the manifest's paths still
  // name the volumes (they are written absolute).
  r = run("cd " + quote(t.str()) + " && " + quote(app("biud-import")) +
          " folder --root cts --labels labels.csv --id-column case_id --patient-column patient_id --ignore-columns site"
          " --out data/mine --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const auto& it : image::readManifest((t / "data/mine/manifest.csv").string()).items)
    EXPECT_TRUE(stdfs::exists(it.images.at(0))) << it.images.at(0);
  // A value that is not a label names the column and the fix.
  writeText(t / "bad.csv", "id,Nodule,site\ncase0,1,Boston\n");
  r = run(quote(app("biud-import")) + " folder --root " + quote((t / "cts").string()) + " --labels " +
          quote((t / "bad.csv").string()) + " --out " + quote((t / "b").string()));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--ignore-columns site"), std::string::npos) << r.out;
}

TEST(ManifestOverrides, ReadWriteAndErrors) {
  TempDir t("ovr");
  writeText(t / "m.csv",
            "id,image,spacing_x,spacing_y,spacing_z,rescale_slope,rescale_intercept,orientation,origin,Cardiomegaly\n"
            "a,a.nii.gz,0.7,0.7,5,1,-1024,\"[1, 0, 0, 0, 1, 0]\",\"(-10, -20.5, 30)\",1\n"
            "b,b.nii.gz,,,,,,,,0\n");
  auto m = image::readManifest((t / "m.csv").string());
  ASSERT_EQ(m.labelNames, std::vector<std::string>{"Cardiomegaly"});
  EXPECT_DOUBLE_EQ(m.items[0].overrides.spacing[2], 5.0);
  EXPECT_DOUBLE_EQ(m.items[0].overrides.intercept, -1024.0);
  EXPECT_DOUBLE_EQ(m.items[0].overrides.origin[1], -20.5);
  EXPECT_FALSE(m.items[1].overrides.any());
  image::writeManifestCsv((t / "w.csv").string(), m);
  auto w = image::readManifest((t / "w.csv").string());
  EXPECT_EQ(w.items[0].overrides.spacing, m.items[0].overrides.spacing);
  EXPECT_EQ(w.items[0].overrides.orientation, m.items[0].overrides.orientation);
  EXPECT_EQ(w.items[0].overrides.origin, m.items[0].overrides.origin);
  EXPECT_FALSE(w.items[1].overrides.any());
  for (const std::string& bad :
       {std::string("a,a.nii.gz,0.7,0.7,,1,-1024,,,1\n"), std::string("a,a.nii.gz,0.7,0.7,-5,,,,,1\n"),
        std::string("a,a.nii.gz,,,,1,,,,1\n"), std::string("a,a.nii.gz,,,,,,\"1 0 0\",,1\n")}) {
    writeText(t / "bad.csv",
              "id,image,spacing_x,spacing_y,spacing_z,rescale_slope,rescale_intercept,orientation,origin,L\n" + bad);
    EXPECT_THROW(image::readManifest((t / "bad.csv").string()), Error) << bad;
  }
}

TEST(VolumeOverrides, AppliedToTheStoredVoxelsBeforeLps) {
  // A volume stored with a flipped direction; the override says identity orientation and gives
  // spacing and a rescale: the voxels are rescaled by hand and not flipped.
  image::Volume v({4, 3, 2}, {1, 1, 1}, 0.0f);
  for (int i = 0; i < 24; ++i) v.data[static_cast<size_t>(i)] = static_cast<float>(i);
  v.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};
  image::VolumeOverrides o;
  o.spacing = {0.5, 0.6, 2.0};
  o.slope = 2;
  o.intercept = -1024;
  const double iop[6] = {1, 0, 0, 0, 1, 0};
  ASSERT_TRUE(o.setOrientation(iop, 6));
  std::vector<std::string> notes;
  image::applyOverrides(v, o, "x.nii.gz", &notes);
  image::reorientToLps(v);
  EXPECT_EQ(v.spacing, (std::array<double, 3>{0.5, 0.6, 2.0}));
  for (int i = 0; i < 24; ++i) EXPECT_FLOAT_EQ(v.data[static_cast<size_t>(i)], 2.0f * i - 1024.0f);
  ASSERT_EQ(notes.size(), 2u);  // spacing and orientation differ from the header
  EXPECT_EQ(notes[0], "spacing: header 1 x 1 x 1 mm, metadata 0.5 x 0.6 x 2 mm");
  const double skew[6] = {1, 0, 0, 0.5, 1, 0};
  ASSERT_TRUE(o.setOrientation(skew, 6));
  EXPECT_THROW(image::applyOverrides(v, o, "x.nii.gz"), Error);
  // Nine numbers: stored head first (k towards the feet); brought to LPS, slice 0 becomes the last.
  image::Volume h({1, 1, 3}, {1, 1, 1}, 0.0f);
  h.data = {30.0f, 20.0f, 10.0f};  // top slice first
  image::VolumeOverrides hf;
  const double headFirst[9] = {1, 0, 0, 0, 1, 0, 0, 0, -1};
  ASSERT_TRUE(hf.setOrientation(headFirst, 9));
  image::applyOverrides(h, hf, "h.npz");
  image::reorientToLps(h);
  EXPECT_EQ(h.data, (std::vector<float>{10.0f, 20.0f, 30.0f}));
  // Air fraction: [-1100, -900] by hand.
  image::Volume a({4, 1, 1}, {1, 1, 1}, 0.0f);
  a.data = {-1000.0f, -899.0f, -1100.0f, 24.0f};
  EXPECT_DOUBLE_EQ(image::airFraction(a), 0.5);
}

}  // namespace
}  // namespace biud::test
