// biud-preprocess end to end: good and bad inputs side by side, failures.jsonl, exit code 3,
// resume after a crash, refusal of other parameters; cached voxels equal the in-process pipeline.
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/image/CtCache.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

using image::Volume;

std::map<std::string, std::string> failures(const stdfs::path& dir) {
  std::map<std::string, std::string> out;
  std::istringstream in(readText(dir / "failures.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      out[j["id"].get<std::string>()] = j["error"].get<std::string>();
    }
  return out;
}

TEST(PreprocessApp, BadInputsAreRecordedAndTheRestProcessed) {
  TempDir t("ppapp");
  const std::string nib = testDataDir("nibabel"), dcm = testDataDir("pydicom");
  // A synthetic CT (integral HU, stored int16) with an oblique-free flipped direction.
  Volume ct({40, 36, 20}, {0.9, 0.9, 2.0}, -1000.0f);
  for (int k = 4; k < 16; ++k)
    for (int j = 6; j < 30; ++j)
      for (int i = 5; i < 35; ++i) ct.at(i, j, k) = static_cast<float>(20 + (i * 7 + j * 3 + k) % 50);
  image::writeVolume((t / "ct.nii.gz").string(), ct);
  {
    const std::string whole = readText(t / "ct.nii.gz");
    writeText(t / "trunc.nii.gz", whole.substr(0, whole.size() * 2 / 3));
  }
  writeText(t / "empty.nii.gz", "");
  Volume xray({8, 8, 1}, {1, 1, 1}, 0.5f);
  image::writeImage2D((t / "xray.png").string(), xray);
  const std::string mixed = (t / "mixed").string();
  runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " + quote(mixed) + " 3 1.2.3.9.1");
  runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " + quote(mixed) + " 3 1.2.3.9.2");
  writeText(t / "m.csv",
            "id,image,report,patient\n"
            "ct,ct.nii.gz,r,p1\n"
            "anat," +
                nib +
                "/anatomical.nii,r,p2\n"
                "dicom," +
                dcm +
                "/dicomdirtests/98892001/CT5N,r,p3\n"
                "trunc,trunc.nii.gz,r,p4\n"
                "empty,empty.nii.gz,r,p5\n"
                "fourd," +
                nib +
                "/example4d.nii.gz,r,p6\n"
                "mixed,mixed,r,p7\n"
                "missing,nope/none.nii.gz,r,p8\n"
                "xray,xray.png,r,p9\n");
  const stdfs::path out = t / "cache";
  const std::string cmd = quote(app("biud-preprocess")) + " --manifest " + quote((t / "m.csv").string()) + " --out " +
                          quote(out.string()) + " --threads 2 --quiet --set data.ct.size=[24,24,12]";
  auto r = run(cmd);
  EXPECT_EQ(r.rc, 3) << r.out;
  auto f = failures(out);
  EXPECT_EQ(f.size(), 6u) << r.out;
  EXPECT_NE(f["trunc"].find("truncated"), std::string::npos) << f["trunc"];
  EXPECT_NE(f["empty"].find("empty file"), std::string::npos) << f["empty"];
  EXPECT_NE(f["fourd"].find("4D"), std::string::npos) << f["fourd"];
  EXPECT_NE(f["mixed"].find("mixes 2 series"), std::string::npos) << f["mixed"];
  EXPECT_NE(f["missing"].find("does not exist"), std::string::npos) << f["missing"];
  EXPECT_NE(f["xray"].find("2D image"), std::string::npos) << f["xray"];

  CtPreprocessConfig cfg;
  cfg.size = {24, 24, 12};
  {
    image::CacheReader cache(out.string(), image::preprocessHash(cfg));
    ASSERT_EQ(cache.size(), 3u);
    for (const char* id : {"ct", "anat"}) {
      SCOPED_TRACE(id);
      const std::string src = std::string(id) == "ct" ? (t / "ct.nii.gz").string() : nib + "/anatomical.nii";
      Volume want = image::preprocessCt(image::readVolume(src), cfg);
      Volume got = cache.read(id, image::Verify::Always);
      expectSameVolume(got, want, 0.5 / image::int16Quant(cfg) + 1e-6, /*geometry=*/false);
      EXPECT_EQ(got.origin, want.origin);
    }
  }
  auto summary = nlohmann::json::parse(readText(out / "biud-preprocess.json"));
  EXPECT_EQ(summary["done"], 3);
  EXPECT_EQ(summary["failed"], 6);

  // Rerun: everything good is skipped, the bad ones fail again.
  r = run(cmd);
  EXPECT_EQ(r.rc, 3) << r.out;
  summary = nlohmann::json::parse(readText(out / "biud-preprocess.json"));
  EXPECT_EQ(summary["skipped"], 3);
  EXPECT_EQ(summary["done"], 0);

  // A crash in the middle of a record: cut the last record of a shard, drop the index; the
  // rerun redoes that item (and only it).
  std::string victim;
  {
    image::CacheReader cache(out.string());
    for (const auto& e : cache.entries())
      if (e.offset + e.bytes == std::filesystem::file_size(out / e.shard)) {
        victim = e.id;
        std::filesystem::resize_file(out / e.shard, e.offset + e.bytes / 2);
        break;
      }
  }
  ASSERT_FALSE(victim.empty());
  std::filesystem::remove(out / "index.json");
  r = run(cmd);
  EXPECT_EQ(r.rc, 3) << r.out;
  summary = nlohmann::json::parse(readText(out / "biud-preprocess.json"));
  EXPECT_EQ(summary["done"], 1) << r.out;
  EXPECT_EQ(summary["skipped"], 2);
  {
    image::CacheReader cache(out.string(), image::preprocessHash(cfg));
    EXPECT_EQ(cache.size(), 3u);
    const std::string src = victim == "ct"     ? (t / "ct.nii.gz").string()
                            : victim == "anat" ? nib + "/anatomical.nii"
                                               : dcm + "/dicomdirtests/98892001/CT5N";
    Volume want = image::preprocessCt(image::readVolume(src), cfg);
    expectSameVolume(cache.read(victim, image::Verify::Always), want, 0.5 / image::int16Quant(cfg) + 1e-6, false);
  }

  // Other parameters into the same folder: refused, exit code 2, nothing touched.
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((t / "m.csv").string()) + " --out " +
          quote(out.string()) + " --quiet --set data.ct.size=[32,32,12]");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("other preprocessing parameters"), std::string::npos) << r.out;

  // Missing manifest column: a clear usage error.
  writeText(t / "bad.csv", "id,path\na,b\n");
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((t / "bad.csv").string()) + " --out " +
          quote((t / "c2").string()) + " --quiet");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("required column `image` missing"), std::string::npos) << r.out;
}

// Issue 20: a rerun re-checks every record before it skips the item; a damaged record is redone
// (the first run's index is not trusted). --trust-existing skips the check, and then the loader's
// default read still refuses the damaged record.
TEST(PreprocessApp, RerunRedoesRecordsThatFailTheirChecksum) {
  TempDir t("ppdamage");
  Volume ct({30, 28, 12}, {1.0, 1.0, 2.0}, -1000.0f);
  for (int k = 2; k < 10; ++k)
    for (int j = 4; j < 24; ++j)
      for (int i = 4; i < 26; ++i) ct.at(i, j, k) = static_cast<float>((i * 11 + j * 5 + k) % 90);
  image::writeVolume((t / "a.nii.gz").string(), ct);
  image::writeVolume((t / "b.nii.gz").string(), ct);
  writeText(t / "m.csv", "id,image,report,patient\na,a.nii.gz,r,p1\nb,b.nii.gz,r,p2\n");
  const stdfs::path out = t / "cache";
  const std::string cmd = quote(app("biud-preprocess")) + " --manifest " + quote((t / "m.csv").string()) + " --out " +
                          quote(out.string()) + " --threads 1 --quiet --set data.ct.size=[16,16,8]";
  ASSERT_EQ(run(cmd).rc, 0);
  CtPreprocessConfig cfg;
  cfg.size = {16, 16, 8};
  const Volume want = image::preprocessCt(image::readVolume((t / "a.nii.gz").string()), cfg);
  auto damage = [&] {
    image::CacheReader cache(out.string());
    const auto* e = cache.find("a");
    std::string bytes = readText(out / e->shard);
    bytes[static_cast<size_t>(e->offset + e->bytes / 2)] ^= 0x10;
    writeText(out / e->shard, bytes);
  };
  damage();
  auto r = run(cmd + " --trust-existing");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto summary = nlohmann::json::parse(readText(out / "biud-preprocess.json"));
  EXPECT_EQ(summary["skipped"], 2);
  EXPECT_EQ(summary["damaged_redone"], 0);
  {
    image::CacheReader cache(out.string());
    EXPECT_THROW(cache.read("a"), DataError);
  }
  r = run(cmd);
  ASSERT_EQ(r.rc, 0) << r.out;
  summary = nlohmann::json::parse(readText(out / "biud-preprocess.json"));
  EXPECT_EQ(summary["damaged_redone"], 1) << r.out;
  EXPECT_EQ(summary["done"], 1);
  EXPECT_EQ(summary["skipped"], 1);
  image::CacheReader cache(out.string(), image::preprocessHash(cfg));
  EXPECT_EQ(cache.size(), 2u);
  expectSameVolume(cache.read("a", image::Verify::Always), want, 0.5 / image::int16Quant(cfg) + 1e-6, false);
  EXPECT_NO_THROW(cache.read("b", image::Verify::Always));
}

// data.ct.spacing_range reaches biud-preprocess: a 30 mm slice spacing is a recorded failure by
// default (0.05-20 mm) and is read once the range is widened.
TEST(PreprocessApp, SpacingRangeKeyReachesThePreprocessor) {
  TempDir t("ppspacing");
  Volume ct({20, 20, 6}, {1.0, 1.0, 30.0}, -1000.0f);
  for (size_t i = 0; i < ct.data.size(); i += 3) ct.data[i] = 40.0f;
  image::writeVolume((t / "thick.nii.gz").string(), ct);
  writeText(t / "m.csv", "id,image,report\nthick,thick.nii.gz,r\n");
  const std::string base = quote(app("biud-preprocess")) + " --manifest " + quote((t / "m.csv").string()) +
                           " --threads 1 --quiet --set data.ct.size=[8,8,4] --set data.ct.hu_check=off";
  auto r = run(base + " --out " + quote((t / "c1").string()));
  EXPECT_EQ(r.rc, 3) << r.out;
  auto f = failures(t / "c1");
  EXPECT_NE(f["thick"].find("data.ct.spacing_range"), std::string::npos) << f["thick"];
  r = run(base + " --out " + quote((t / "c2").string()) + " --set data.ct.spacing_range=[0.05,40]");
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(EvalCache, BuildsOnceSkipsBadItemsAndUsesAMatchingCache) {
  TempDir t("evalcache");
  Volume ct({30, 30, 12}, {1.0, 1.0, 2.0}, -1000.0f);
  for (int k = 2; k < 10; ++k)
    for (int j = 5; j < 25; ++j)
      for (int i = 5; i < 25; ++i) ct.at(i, j, k) = static_cast<float>((i * 13 + j * 7 + k * 3) % 80);
  image::writeVolume((t / "a.nii.gz").string(), ct);
  image::writeVolume((t / "b.nii.gz").string(), ct);
  const std::string whole = readText(t / "a.nii.gz");
  writeText(t / "cut.nii.gz", whole.substr(0, whole.size() / 2));
  writeText(t / "m.csv",
            "id,image,split,L\na,a.nii.gz,test,1\nbad,cut.nii.gz,test,0\nb,b.nii.gz,test,0\nc,a.nii.gz,train,1\n");
  const auto m = image::readManifest((t / "m.csv").string());
  CtPreprocessConfig cfg;
  cfg.size = {16, 16, 8};
  // No cache yet: the test split is preprocessed into the fallback folder; the bad item is listed.
  auto e = image::prepareEvalCache(m, {"test"}, cfg, "", (t / "fb").string(), 1, false);
  EXPECT_EQ(e.cacheDir, (t / "fb").string());
  EXPECT_EQ(e.built, 2u);
  ASSERT_EQ(e.manifest.items.size(), 2u);
  EXPECT_EQ(e.manifest.items[0].id, "a");
  EXPECT_EQ(e.manifest.items[1].id, "b");
  ASSERT_EQ(e.failures.size(), 1u);
  auto f = nlohmann::json::parse(e.failures[0]);
  EXPECT_EQ(f["id"], "bad");
  EXPECT_NE(f["error"].get<std::string>().find("truncated"), std::string::npos) << f.dump();
  // The cached voxels are the in-process pipeline's.
  {
    image::CacheReader cache(e.cacheDir, image::preprocessHash(cfg));
    expectSameVolume(cache.read("a", image::Verify::Always),
                     image::preprocessCt(image::readVolume((t / "a.nii.gz").string()), cfg),
                     0.5 / image::int16Quant(cfg) + 1e-6, /*geometry=*/false);
  }
  // A second call reads what the first built.
  e = image::prepareEvalCache(m, {"test"}, cfg, "", (t / "fb").string(), 1, false);
  EXPECT_EQ(e.built, 0u);
  EXPECT_EQ(e.manifest.items.size(), 2u);
  // data.cache_dir with these parameters and every evaluated item (bad: recorded as failed) is
  // used as it is.
  e = image::prepareEvalCache(m, {"test"}, cfg, (t / "fb").string(), (t / "other").string(), 1, false);
  EXPECT_EQ(e.cacheDir, (t / "fb").string());
  EXPECT_FALSE(stdfs::exists(t / "other"));
  EXPECT_EQ(e.failures.size(), 1u);
  // One that lacks an evaluated item (c, of another split) is not: the items get a cache of their own.
  e = image::prepareEvalCache(m, {}, cfg, (t / "fb").string(), (t / "other").string(), 1, false);
  EXPECT_EQ(e.cacheDir, (t / "other").string());
  EXPECT_EQ(e.built, 3u);
  EXPECT_EQ(e.manifest.items.size(), 3u);
  ASSERT_EQ(e.failures.size(), 1u);  // bad
  // A cache with other parameters is not used: the fallback is built instead.
  CtPreprocessConfig other = cfg;
  other.size = {20, 20, 8};
  e = image::prepareEvalCache(m, {"test"}, other, (t / "fb").string(), (t / "fb2").string(), 1, false);
  EXPECT_EQ(e.cacheDir, (t / "fb2").string());
  EXPECT_EQ(e.built, 2u);
}

}  // namespace
}  // namespace biud::test
