// VolumeIO against nibabel, pydicom, SimpleITK and Pillow on the same files (test data shipped
// in the nibabel and pydicom packages, and files made by tests/reference/image_io.py).
#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

using image::Volume;

std::string ref(const TempDir& t, const std::string& cmd, const std::string& in, const std::string& name) {
  const std::string out = (t / name).string();
  runPython("image_io.py", cmd + " " + quote(in) + " " + quote(out));
  return out;
}

TEST(VolumeIO, NiftiMatchesNibabel) {
  TempDir t("nii");
  for (const char* f : {"anatomical.nii", "standard.nii.gz", "reoriented_anat_moved.nii"}) {
    SCOPED_TRACE(f);
    const std::string path = testDataDir("nibabel") + "/" + f;
    Volume got = image::readVolume(path);
    Volume want = loadReference(ref(t, "nibabel", path, f));
    expectSameVolume(got, want, 1e-3);
  }
  // Rescaled int16 (scl_slope 2, scl_inter -1024) with a permuted, flipped affine.
  const std::string made = (t / "scaled.nii.gz").string();
  runPython("image_io.py", "make_nifti " + quote(made));
  Volume got = image::readVolume(made);
  expectSameVolume(got, loadReference(ref(t, "nibabel", made, "scaled")), 1e-3);
  EXPECT_LT(*std::min_element(got.data.begin(), got.data.end()), -1000.0f);
  // The libdeflate fast path and ITK's own zlib path agree exactly.
  for (const std::string& f : {made, testDataDir("nibabel") + "/standard.nii.gz"}) {
    Volume fast = image::readVolume(f);
    ::setenv("BIUD_NO_LIBDEFLATE", "1", 1);
    Volume slow = image::readVolume(f);
    ::unsetenv("BIUD_NO_LIBDEFLATE");
    expectSameVolume(fast, slow, 0.0);
  }
}

TEST(VolumeIO, DicomSeriesMatchesPydicom) {
  TempDir t("dcm");
  // 5 CT slices at 2.5 mm, stored with descending positions, rescale intercept -1024.
  const std::string series = testDataDir("pydicom") + "/dicomdirtests/98892001/CT5N";
  Volume got = image::readVolume(series);
  Volume want = loadReference(ref(t, "pydicom_series", series, "ct5n"));
  EXPECT_EQ(got.size[2], 5);
  expectSameVolume(got, want, 1e-3);
  // A series written in reverse slice order with rescale intercept -1024.
  const std::string made = (t / "made").string();
  runPython("image_io.py", "make_series " + quote(testDataDir("pydicom") + "/CT_small.dcm") + " " + quote(made) +
                               " 5 1.2.826.0.1.3680043.8.498.1");
  got = image::readVolume(made);
  want = loadReference(ref(t, "pydicom_series", made, "made"));
  EXPECT_EQ(got.size, (std::array<int, 3>{128, 128, 5}));
  EXPECT_NEAR(got.spacing[2], 2.5, 1e-6);
  expectSameVolume(got, want, 1e-3);
}

TEST(VolumeIO, MhaNrrdMatchSimpleItkAndRoundTrip) {
  TempDir t("mha");
  for (const char* ext : {".mha", ".nrrd", ".nii.gz"}) {
    SCOPED_TRACE(ext);
    const std::string src = (t / (std::string("src") + ext)).string();
    runPython("image_io.py", "make_sitk " + quote(src));
    Volume got = image::readVolume(src);
    Volume want = loadReference(ref(t, "sitk", src, std::string("ref") + ext));
    expectSameVolume(got, want, 1e-4);
    // Canonical means identity direction for this axis-aligned file.
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(got.direction[i], (i % 4 == 0) ? 1.0 : 0.0, 1e-9);
    // Write (float32: values are not integral) and read back, through SimpleITK as well.
    const std::string rt = (t / (std::string("rt") + ext)).string();
    image::writeVolume(rt, got);
    expectSameVolume(image::readVolume(rt), got, 0.0);
    expectSameVolume(loadReference(ref(t, "sitk", rt, std::string("rtref") + ext)), got, 0.0);
  }
}

TEST(VolumeIO, WriteChoosesInt16ForIntegralValues) {
  TempDir t("w16");
  Volume v({3, 4, 5}, {1.0, 1.0, 2.0});
  for (size_t i = 0; i < v.data.size(); ++i) v.data[i] = static_cast<float>(static_cast<int>(i) * 37 - 1000);
  image::writeVolume((t / "a.nii.gz").string(), v);
  EXPECT_EQ(image::readImageInfo((t / "a.nii.gz").string()).componentType, "short");
  expectSameVolume(image::readVolume((t / "a.nii.gz").string()), v, 0.0);
  v.data[0] = 0.5f;
  image::writeVolume((t / "b.mha").string(), v);
  EXPECT_EQ(image::readImageInfo((t / "b.mha").string()).componentType, "float");
  v.data[0] = 40000.f;  // integral but does not fit int16
  image::writeVolume((t / "c.nrrd").string(), v);
  EXPECT_EQ(image::readImageInfo((t / "c.nrrd").string()).componentType, "float");
  // No temp files left behind.
  int n = 0;
  for (auto& e : stdfs::directory_iterator(t.path())) n += e.path().filename().string()[0] == '.';
  EXPECT_EQ(n, 0);
  EXPECT_THROW(image::writeVolume((t / "x.png").string(), v), IoError);
}

TEST(VolumeIO, ReorientByHand) {
  // 2x1x1 volume along -x (RAS-like): canonical flips it, origin moves to the other end.
  Volume v({2, 1, 2}, {2.0, 1.0, 3.0});
  v.data = {1, 2, 3, 4};
  v.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
  v.origin = {10, 0, 0};
  image::reorientToLps(v);
  EXPECT_EQ(v.data, (std::vector<float>{2, 1, 4, 3}));
  EXPECT_DOUBLE_EQ(v.origin[0], 8.0);
  EXPECT_DOUBLE_EQ(v.direction[0], 1.0);
  // Permuted: voxel axis 0 along z, axis 2 along x.
  Volume p({2, 1, 3}, {1.0, 1.0, 5.0});
  p.data = {0, 1, 2, 3, 4, 5};  // value = i + 2k
  p.direction = {0, 0, 1, 0, 1, 0, 1, 0, 0};
  image::reorientToLps(p);
  EXPECT_EQ(p.size, (std::array<int, 3>{3, 1, 2}));
  EXPECT_DOUBLE_EQ(p.spacing[0], 5.0);
  EXPECT_DOUBLE_EQ(p.spacing[2], 1.0);
  // new(i', 0, k') = old(k', 0, i') = k' + 2 i'
  EXPECT_EQ(p.data, (std::vector<float>{0, 2, 4, 1, 3, 5}));
}

TEST(VolumeIO, Image2DMatchesPydicomAndPillow) {
  TempDir t("2d");
  const std::string dcm = testDataDir("pydicom");
  for (const char* f : {"/dicomdirtests/77654033/CR1/6154", "/CT_small.dcm", "/MR_small.dcm"}) {
    SCOPED_TRACE(f);
    auto got = image::readImage2D(dcm + f);
    auto want = loadReference(ref(t, "pydicom_2d", dcm + f, "d2"));
    expectSameVolume(got, want, 1e-5, /*geometry=*/false);
  }
  // JPEG made by Pillow: the two libjpeg decoders agree to within a grey level.
  {
    const std::string jpg = (t / "x.jpg").string();
    runPython("image_io.py", "make_jpeg " + quote(jpg));
    auto got = image::readImage2D(jpg);
    auto want = loadReference(ref(t, "pillow", jpg, "jpg"));
    EXPECT_EQ(got.size, (std::array<int, 3>{40, 24, 1}));
    expectSameVolume(got, want, 1.5 / 255, false);
  }
  // PNG written by us (8 and 16 bit), read by Pillow and by us.
  Volume img({5, 3, 1}, {1, 1, 1});
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>(i) / 14.0f;
  for (int bits : {8, 16}) {
    const std::string p = (t / ("x" + std::to_string(bits) + ".png")).string();
    image::writeImage2D(p, img, bits);
    auto back = image::readImage2D(p);
    auto want = loadReference(ref(t, "pillow", p, "pil"));
    expectSameVolume(back, want, 1e-6, false);
    expectSameVolume(back, img, bits == 8 ? 0.5 / 255 + 1e-6 : 0.5 / 65535 + 1e-7, false);
  }
}

TEST(VolumeIO, BadInputsGiveClearErrors) {
  TempDir t("bad");
  const std::string nib = testDataDir("nibabel"), dcm = testDataDir("pydicom");
  auto expectMsg = [](auto fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one containing `" << part << "`";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expectMsg([&] { image::readVolume((t / "nope.nii.gz").string()); }, "does not exist");
  writeText(t / "empty.nii.gz", "");
  expectMsg([&] { image::readVolume((t / "empty.nii.gz").string()); }, "empty file");
  // Truncated gzip NIfTI: first half of a valid file.
  {
    std::string whole = readText(nib + "/standard.nii.gz");
    writeText(t / "trunc.nii.gz", whole.substr(0, whole.size() / 2));
    expectMsg([&] { image::readVolume((t / "trunc.nii.gz").string()); }, "truncated");
  }
  expectMsg([&] { image::readVolume(nib + "/example4d.nii.gz"); }, "4D");
  expectMsg([&] { image::readVolume(dcm + "/CT_small.dcm"); }, "2D image");
  // A PNG given as CT.
  Volume img({4, 4, 1}, {1, 1, 1}, 0.5f);
  image::writeImage2D((t / "xray.png").string(), img);
  expectMsg([&] { image::readVolume((t / "xray.png").string()); }, "2D image");
  writeText(t / "junk.nii.gz", "this is not an image");
  EXPECT_THROW(image::readVolume((t / "junk.nii.gz").string()), Error);
  // Two series of 3 slices each in one folder: ambiguous.
  const std::string mixed = (t / "mixed").string();
  runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " + quote(mixed) + " 3 1.2.3.4.1");
  runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " + quote(mixed) + " 3 1.2.3.4.2");
  expectMsg([&] { image::readVolume(mixed); }, "mixes 2 series");
  // Named series works.
  image::VolumeReadOptions o;
  o.series = "1.2.3.4.2";
  EXPECT_EQ(image::readVolume(mixed, o).size[2], 3);
  EXPECT_EQ(image::readVolume(mixed + "#1.2.3.4.1").size[2], 3);
  o.series = "9.9";
  expectMsg([&] { image::readVolume(mixed, o); }, "no series `9.9`");
  // A larger third series wins without ambiguity.
  runPython("image_io.py", "make_series " + quote(dcm + "/CT_small.dcm") + " " + quote(mixed) + " 4 1.2.3.4.3");
  EXPECT_EQ(image::readVolume(mixed).size[2], 4);
  expectMsg([&] { image::readImage2D(dcm + "/../../"); }, "folder");
  // 4 CT slices with a gap (positions -99.5, 103.0, 104.3, 105.5 mm): missing slices.
  expectMsg([&] { image::readVolume(dcm + "/dicomdirtests/77654033/CT2"); }, "not uniform");
}

}  // namespace
}  // namespace biud::test
