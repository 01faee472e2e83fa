// Resampling against SimpleITK; crop/pad, body box and the whole pipeline on hand-worked cases.
#include <cmath>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

using image::Volume;

Volume smoothVolume(std::array<int, 3> size, std::array<double, 3> spacing) {
  Volume v(size, spacing);
  v.origin = {-12.5, 30.25, 7.0};
  Rng rng(3);
  for (int k = 0; k < size[2]; ++k)
    for (int j = 0; j < size[1]; ++j)
      for (int i = 0; i < size[0]; ++i)
        v.at(i, j, k) =
            static_cast<float>(400 * std::sin(0.7 * i) * std::cos(0.4 * j) + 30 * k + rng.uniform(-50, 50)) + 0.125f;
  return v;
}

TEST(Preprocess, ResampleMatchesSimpleItk) {
  TempDir t("rs");
  const Volume v = smoothVolume({20, 17, 9}, {0.8, 0.9, 2.0});
  const std::string path = (t / "v.nii.gz").string();
  image::writeVolume(path, v);
  struct Case {
    std::array<double, 3> sp;
  };
  // Down- and up-sampling mixed across axes; sizes chosen away from .5 ties of round().
  for (const Case& c : {Case{{1.5, 1.1, 1.3}}, Case{{0.55, 2.0, 3.3}}, Case{{0.8, 0.9, 2.0}}}) {
    SCOPED_TRACE(testing::Message() << c.sp[0] << " " << c.sp[1] << " " << c.sp[2]);
    Volume got = image::resampleLinear(v, c.sp, -1000.0f);
    const std::string out = (t / "ref").string();
    runPython("image_resample.py", quote(path) + " " + std::to_string(c.sp[0]) + " " + std::to_string(c.sp[1]) + " " +
                                       std::to_string(c.sp[2]) + " -1000 " + quote(out));
    expectSameVolume(got, loadReference(out), 2e-3);
  }
  // Same spacing = identity.
  Volume same = image::resampleLinear(v, v.spacing, 0.0f);
  expectSameVolume(same, v, 0.0);
}

TEST(Preprocess, CenterStartByHand) {
  EXPECT_EQ(image::centerStart(10, 4), 3);   // crop: 3 before, 3 after
  EXPECT_EQ(image::centerStart(11, 4), 3);   // odd excess: the extra voxel is cut at the end
  EXPECT_EQ(image::centerStart(4, 10), -3);  // pad 3 before, 3 after
  EXPECT_EQ(image::centerStart(4, 9), -2);   // pad 2 before, 3 after
  EXPECT_EQ(image::centerStart(5, 5), 0);
}

TEST(Preprocess, CropOrPadByHand) {
  // 4 x 3 x 2, value = i + 10 j + 100 k, spacing 2 x 3 x 4, origin (1, 2, 3).
  Volume v({4, 3, 2}, {2, 3, 4});
  v.origin = {1, 2, 3};
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 4; ++i) v.at(i, j, k) = static_cast<float>(i + 10 * j + 100 * k);
  // x: crop 4 -> 2 (start 1); y: pad 3 -> 5 (start -1); z: keep.
  Volume c = image::cropOrPad(v, {2, 5, 2}, {1, -1, 0}, -7.0f);
  ASSERT_EQ(c.size, (std::array<int, 3>{2, 5, 2}));
  EXPECT_EQ(c.at(0, 0, 0), -7.0f);   // padded row
  EXPECT_EQ(c.at(0, 1, 0), 1.0f);    // input (1, 0, 0)
  EXPECT_EQ(c.at(1, 3, 1), 122.0f);  // input (2, 2, 1)
  EXPECT_EQ(c.at(1, 4, 1), -7.0f);
  // Origin follows the window: 1 + 2*1, 2 + 3*(-1), 3.
  EXPECT_DOUBLE_EQ(c.origin[0], 3.0);
  EXPECT_DOUBLE_EQ(c.origin[1], -1.0);
  EXPECT_DOUBLE_EQ(c.origin[2], 3.0);
  // Physical position of a voxel is unchanged: c(0,1,0) is v(1,0,0).
  EXPECT_EQ(image::indexToPhysical(c, 0, 1, 0), image::indexToPhysical(v, 1, 0, 0));
  // Window entirely outside: all padding.
  Volume o = image::cropOrPad(v, {2, 2, 2}, {10, 0, 0}, 5.0f);
  for (float x : o.data) EXPECT_EQ(x, 5.0f);
}

TEST(Preprocess, BodyBoxAndBodyCropByHand) {
  // 20 x 10 x 6 of air with a big "body" block at x 12..17, y 2..7, z 1..4 and a small bright
  // speck (a different component) at x 1, y 1, z 1.
  Volume v({20, 10, 6}, {1, 1, 1}, -1000.0f);
  for (int k = 1; k <= 4; ++k)
    for (int j = 2; j <= 7; ++j)
      for (int i = 12; i <= 17; ++i) v.at(i, j, k) = 40.0f;
  v.at(1, 1, 1) = 500.0f;
  std::array<int, 3> lo{}, hi{};
  ASSERT_TRUE(image::bodyBox(v, -500.0f, lo, hi));
  EXPECT_EQ(lo, (std::array<int, 3>{12, 2, 1}));
  EXPECT_EQ(hi, (std::array<int, 3>{17, 7, 4}));
  // Window 8 x 4 x 8: x centred on the body (12+17+1-8)/2 = 11; y (2+7+1-4)/2 = 3;
  // z is smaller than the window: centre pad -1.
  EXPECT_EQ(image::bodyCropStart(v, {8, 4, 8}, -500.0f), (std::array<int, 3>{11, 3, -1}));
  // Window 16 wide would run past the end (11 + 16 > 20): clamped to 4.
  EXPECT_EQ(image::bodyCropStart(v, {16, 4, 6}, -500.0f)[0], 4);
  // No body at all: centre crop.
  Volume air({20, 10, 6}, {1, 1, 1}, -1000.0f);
  EXPECT_EQ(image::bodyCropStart(air, {8, 4, 8}, -500.0f), (std::array<int, 3>{6, 3, -1}));
}

TEST(Preprocess, PipelineByHand) {
  // Spacing already at target: only window, scale and pad act.
  Volume v({4, 4, 2}, {1.5, 1.5, 3.0});
  for (size_t i = 0; i < v.data.size(); ++i) v.data[i] = static_cast<float>(-1500 + 200 * static_cast<int>(i));
  CtPreprocessConfig c;
  c.size = {4, 6, 2};
  Volume p = image::preprocessCt(v, c);
  ASSERT_EQ(p.size, (std::array<int, 3>{4, 6, 2}));
  EXPECT_FLOAT_EQ(p.at(0, 0, 0), -1.0f);  // pad
  EXPECT_FLOAT_EQ(p.at(0, 1, 0), -1.0f);  // -1500 HU clipped to -1000 -> -1
  // v(i, j, k) = -1500 + 200 * (i + 4 j + 16 k); p(i, j + 1, k) = clip(.) / 1000.
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i) {
        const double hu = std::clamp(-1500.0 + 200.0 * (i + 4 * j + 16 * k), -1000.0, 1000.0);
        EXPECT_NEAR(p.at(i, j + 1, k), hu / 1000.0, 1e-6) << i << " " << j << " " << k;
      }
  // Lung window: [-1350, 150] -> [-1, 1]; -600 HU is the middle.
  c.window = "lung";
  Volume l({4, 4, 2}, {1.5, 1.5, 3.0}, -600.0f);
  l.at(0, 0, 0) = 150.0f;
  l.at(1, 0, 0) = -2000.0f;
  Volume lp = image::preprocessCt(l, c);
  EXPECT_NEAR(lp.at(2, 1, 0), 0.0f, 1e-6);
  EXPECT_NEAR(lp.at(0, 1, 0), 1.0f, 1e-6);
  EXPECT_NEAR(lp.at(1, 1, 0), -1.0f, 1e-6);
}

TEST(Preprocess, HashFollowsParameters) {
  CtPreprocessConfig a, b;
  EXPECT_EQ(image::preprocessHash(a), image::preprocessHash(b));
  EXPECT_EQ(image::preprocessHash(a).size(), 16u);
  b.spacing[2] = 2.5;
  EXPECT_NE(image::preprocessHash(a), image::preprocessHash(b));
  b = a;
  b.shard_mb = 1;  // not a preprocessing parameter
  EXPECT_EQ(image::preprocessHash(a), image::preprocessHash(b));
  b.storage = "float16";
  EXPECT_NE(image::preprocessHash(a), image::preprocessHash(b));
}

}  // namespace
}  // namespace biud::test

namespace biud::test {
namespace {

TEST(Preprocess, XrayResizeMatchesTorchAndPadsToSquare) {
  const int w = 13, h = 7;
  image::Image2D img({w, h, 1}, {1, 1, 1});
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) img.at(x, y, 0) = static_cast<float>(std::sin(0.3 * x) + 0.1 * y);
  const std::vector<std::pair<int, int>> sizes{{5, 4}, {29, 11}, {13, 7}};
  auto all = nlohmann::json::parse(runPython("image_resize2d.py", fmt::format("{} {} 5 4 29 11 13 7", w, h)));
  ASSERT_EQ(all.size(), sizes.size());
  for (size_t c = 0; c < sizes.size(); ++c) {
    const auto [ow, oh] = sizes[c];
    SCOPED_TRACE(testing::Message() << ow << "x" << oh);
    const auto& want = all[c];
    auto got = image::resize2D(img, ow, oh);
    ASSERT_EQ(want.size(), got.data.size());
    for (size_t i = 0; i < got.data.size(); ++i) EXPECT_NEAR(got.data[i], want[i].get<double>(), 1e-5) << i;
  }
  // 13 x 7 padded to 13 x 13: 3 rows before, 3 after.
  auto sq = image::padToSquare(img, 0.0f);
  ASSERT_EQ(sq.size, (std::array<int, 3>{13, 13, 1}));
  EXPECT_EQ(sq.at(4, 2, 0), 0.0f);
  EXPECT_EQ(sq.at(4, 3, 0), img.at(4, 0, 0));
  EXPECT_EQ(sq.at(4, 9, 0), img.at(4, 6, 0));
  EXPECT_EQ(sq.at(4, 10, 0), 0.0f);
  XrayPreprocessConfig xc;
  xc.size = 16;
  EXPECT_EQ(image::preprocessXray(img, xc).size, (std::array<int, 3>{16, 16, 1}));
}

}  // namespace
}  // namespace biud::test

namespace biud::test {
namespace {

TEST(Preprocess, CenterCropResamplesOnlyTheWindowWithTheSameResult) {
  const image::Volume v = smoothVolume({20, 17, 9}, {0.8, 0.9, 2.0});
  CtPreprocessConfig c;
  c.spacing = {1.1, 0.7, 1.3};
  c.size = {10, 30, 7};  // x crop (15 -> 10), y pad (22 -> 30), z crop (14 -> 7)
  image::Volume got = image::preprocessCt(v, c);
  image::Volume r = image::resampleLinear(v, {1.1, 0.7, 1.3}, -1000.0f);
  for (float& x : r.data) x = std::min(1000.0f, std::max(-1000.0f, x)) / 1000.0f;
  std::array<int, 3> start{};
  for (int d = 0; d < 3; ++d) start[d] = image::centerStart(r.size[d], c.size[d]);
  image::Volume want = image::cropOrPad(r, {10, 30, 7}, start, -1.0f);
  expectSameVolume(got, want, 1e-6);
}

}  // namespace
}  // namespace biud::test
