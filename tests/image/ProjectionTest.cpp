// Simulated X-rays (biud-drr): the `mean` and `drr` projectors against SimpleITK + NumPy on the same
// volume, Beer-Lambert on analytic phantoms worked out by hand (slabs, a sphere, a cone-beam slab),
// orientation, and the resumable job / app.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/image/Drr.h"
#include "biud/image/Manifest.h"
#include "biud/image/Projection.h"
#include "biud/image/ProjectionJob.h"
#include "biud/image/VolumeIO.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

using image::Image2D;
using image::Volume;

/// A smooth volume with values beyond the HU window on both sides (so clipping matters), on an
/// anisotropic grid (so resampling matters).
Volume testVolume(std::array<int, 3> size = {20, 16, 12}, std::array<double, 3> spacing = {2.0, 2.5, 3.0}) {
  Volume v(size, spacing);
  v.origin = {-20.0, 11.5, 4.0};
  for (int k = 0; k < size[2]; ++k)
    for (int j = 0; j < size[1]; ++j)
      for (int i = 0; i < size[0]; ++i)
        v.at(i, j, k) = static_cast<float>(1400.0 * std::sin(0.31 * i + 0.2 * k) * std::cos(0.45 * j - 0.1 * i) +
                                           300.0 * std::cos(0.7 * k) - 150.0);
  return v;
}

Image2D pythonReference(const std::string& nifti, const std::string& projector, double spacing,
                        const std::string& out) {
  auto j = nlohmann::json::parse(
      runPython("image_projection.py",
                quote(nifti) + " " + projector + " " + std::to_string(spacing) + " -1000 1000 0.02 " + quote(out)));
  Image2D r({j["w"].get<int>(), j["h"].get<int>(), 1}, {spacing, spacing, 1.0});
  std::ifstream f(out + ".raw", std::ios::binary);
  f.read(reinterpret_cast<char*>(r.data.data()), static_cast<std::streamsize>(r.data.size() * sizeof(float)));
  EXPECT_TRUE(f.good());
  return r;
}

double maxAbsDiff(const Image2D& a, const Image2D& b) {
  EXPECT_EQ(a.size, b.size);
  if (a.data.size() != b.data.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) m = std::max(m, std::fabs(double(a.data[i]) - b.data[i]));
  return m;
}

TEST(Projection, MeanAndDrrMatchSimpleItkNumpy) {
  TempDir tmp("proj");
  const auto path = (tmp / "ct.nii.gz").string();
  image::writeVolume(path, testVolume());
  const Volume ct = image::readVolume(path);
  for (const std::string projector : {"mean", "drr"}) {
    DrrConfig cfg;
    cfg.projector = projector;
    cfg.spacing = 1.5;
    const Image2D got = image::simulateXray(ct, cfg);
    const Image2D want = pythonReference(path, projector, 1.5, (tmp / projector).string());
    // 20 x 2 mm / 1.5 = 26.7 -> 27 columns, 12 x 3 / 1.5 = 24 rows.
    ASSERT_EQ(got.size, (std::array<int, 3>{27, 24, 1})) << projector;
    EXPECT_LE(maxAbsDiff(got, want), 2e-5) << projector;
    EXPECT_FLOAT_EQ(*std::min_element(got.data.begin(), got.data.end()), 0.0f);
    EXPECT_FLOAT_EQ(*std::max_element(got.data.begin(), got.data.end()), 1.0f);
  }
}

TEST(Projection, DrrSlabsByHand) {
  // 1 mm voxels, air everywhere. Columns i < 4: a 10 mm water slab (HU 0, mu = 0.02/mm) ->
  // L = 0.02 * 10 = 0.2. Columns i >= 4: 7 mm of HU 1000 (mu = 2 * 0.02) -> L = 0.28. Slice k = 0
  // holds HU 3000 in the bone slab, clipped to the window's 1000 first, so the same 0.28.
  Volume v({8, 20, 3}, {1, 1, 1}, -1000.0f);
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 8; ++i) {
      if (i < 4)
        for (int j = 5; j < 15; ++j) v.at(i, j, k) = 0.0f;
      else
        for (int j = 5; j < 12; ++j) v.at(i, j, k) = k == 0 ? 3000.0f : 1000.0f;
    }
  DrrConfig cfg;
  image::clipHu(v, cfg.hu_min, cfg.hu_max);
  const Image2D L = image::projectAP(v, cfg);
  ASSERT_EQ(L.size, (std::array<int, 3>{8, 3, 1}));
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(L.at(i, r, 0), i < 4 ? 0.2 : 0.28, 1e-6) << i << "," << r;
  // Transmitted intensity I/I0 = exp(-L): the log transform inverts it exactly.
  EXPECT_NEAR(std::exp(-L.at(0, 0, 0)), std::exp(-0.02 * 10), 1e-7);
  // Through the whole pipeline (already 1 mm): min-max of {0.2, 0.28} -> {0, 1}.
  Volume raw({8, 20, 3}, {1, 1, 1}, -1000.0f);
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 8; ++i)
      for (int j = 5; j < (i < 4 ? 15 : 12); ++j) raw.at(i, j, k) = i < 4 ? 0.0f : (k == 0 ? 3000.0f : 1000.0f);
  const Image2D x = image::simulateXray(raw, cfg);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(x.at(i, 1, 0), i < 4 ? 0.0 : 1.0, 1e-6);
}

TEST(Projection, DrrSphereByHand) {
  // A water sphere of radius 8 mm in air on a 0.5 mm grid: the chord through a pixel at distance r
  // from the centre is 2 sqrt(R^2 - r^2), so L = 0.02 * 2 sqrt(R^2 - r^2). Voxelisation adds at most
  // one voxel (0.5 mm) of error per chord.
  const int n = 40;
  const double s = 0.5, R = 8.0, c = (n - 1) * s / 2;
  Volume v({n, n, n}, {s, s, s}, -1000.0f);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double dx = i * s - c, dy = j * s - c, dz = k * s - c;
        if (dx * dx + dy * dy + dz * dz <= R * R) v.at(i, j, k) = 0.0f;
      }
  DrrConfig cfg;
  const Image2D L = image::projectAP(v, cfg);
  double worst = 0;
  for (int r = 0; r < n; ++r)
    for (int i = 0; i < n; ++i) {
      const double dx = i * s - c, dz = (n - 1 - r) * s - c, rr = dx * dx + dz * dz;
      const double want = rr < R * R ? 0.02 * 2 * std::sqrt(R * R - rr) : 0.0;
      worst = std::max(worst, std::fabs(L.at(i, r, 0) - want));
    }
  EXPECT_LE(worst, 0.02 * s + 1e-6);
  EXPECT_NEAR(L.at(n / 2, n / 2, 0), 0.02 * 2 * std::sqrt(R * R - 2 * 0.25 * 0.25), 0.02 * s);
}

TEST(Projection, ConeBeamSlabByHand) {
  // A 10 mm water slab filling the x/z extent, point source 100 mm in front of the centre: the ray
  // to detector pixel (dx, dz) crosses the slab obliquely, L = 0.02 * 10 * sqrt(D^2+dx^2+dz^2) / D.
  const int nx = 41, ny = 30, nz = 31;
  Volume v({nx, ny, nz}, {1, 1, 1}, -1000.0f);
  for (int k = 0; k < nz; ++k)
    for (int j = 10; j < 20; ++j)
      for (int i = 0; i < nx; ++i) v.at(i, j, k) = 0.0f;
  DrrConfig cfg;
  cfg.beam = "cone";
  cfg.source_distance = 100;
  const Image2D L = image::projectAP(v, cfg);
  const double cx = (nx - 1) / 2.0, cz = (nz - 1) / 2.0;
  int checked = 0;
  for (int r = 0; r < nz; ++r)
    for (int i = 0; i < nx; ++i) {
      const double dx = i - cx, dz = (nz - 1 - r) - cz;
      if (std::fabs(dx) > 15 || std::fabs(dz) > 12) continue;  // rays that stay inside the volume
      EXPECT_NEAR(L.at(i, r, 0), 0.2 * std::sqrt(1e4 + dx * dx + dz * dz) / 100.0, 1e-5) << i << "," << r;
      ++checked;
    }
  EXPECT_GT(checked, 500);
  EXPECT_GT(L.at(0 + 5, 2, 0), L.at(20, 15, 0));  // oblique rays attenuate more

  // A distant source is the parallel beam.
  Volume t = testVolume({12, 10, 8}, {1, 1, 1});
  image::clipHu(t, -1000, 1000);
  cfg.source_distance = 1e7;
  const Image2D cone = image::projectAP(t, cfg);
  cfg.beam = "parallel";
  EXPECT_LE(maxAbsDiff(cone, image::projectAP(t, cfg)), 1e-4);
  // A source inside the volume is refused.
  cfg.beam = "cone";
  cfg.source_distance = 2;
  EXPECT_THROW(image::projectAP(t, cfg), ValueError);
}

TEST(Projection, UprightRadiologicalOrientation) {
  // A dense block at the patient's right (low i, LPS) and head (high k) must appear top-left.
  Volume v({30, 10, 20}, {1, 1, 1}, -1000.0f);
  for (int k = 15; k < 20; ++k)
    for (int j = 0; j < 10; ++j)
      for (int i = 0; i < 5; ++i) v.at(i, j, k) = 500.0f;
  for (const std::string projector : {"mean", "drr"}) {
    DrrConfig cfg;
    cfg.projector = projector;
    const Image2D x = image::simulateXray(v, cfg);
    EXPECT_FLOAT_EQ(x.at(0, 0, 0), 1.0f) << projector;    // top-left: the block
    EXPECT_FLOAT_EQ(x.at(29, 19, 0), 0.0f) << projector;  // bottom-right: air
    EXPECT_FLOAT_EQ(x.at(29, 0, 0), 0.0f) << projector;   // top-right: air
  }
  // The synthetic generator's DRR follows the same convention (one implementation).
  const Image2D s = lineIntegralAP(v);
  EXPECT_GT(s.at(0, 0, 0), s.at(29, 0, 0));
}

TEST(Projection, PadAndResizeAndErrors) {
  DrrConfig cfg;
  cfg.size = 16;
  const Image2D x = image::simulateXray(testVolume({20, 16, 12}, {1, 1, 1}), cfg);
  EXPECT_EQ(x.size, (std::array<int, 3>{16, 16, 1}));
  cfg.size = 0;
  cfg.projector = "max";
  EXPECT_THROW(image::simulateXray(testVolume(), cfg), ConfigError);
  EXPECT_THROW(image::minMaxNormalize(Image2D{}), ValueError);
  // Hash changes with every pixel-changing parameter.
  DrrConfig a, b;
  b.beam = "cone";
  EXPECT_NE(image::drrHash(a), image::drrHash(b));
  b = a;
  b.bits = 16;
  EXPECT_NE(image::drrHash(a), image::drrHash(b));
}

TEST(Projection, JobWritesPairedManifestAndResumes) {
  TempDir tmp("drrjob");
  // Two readable CTs, one missing file.
  image::writeVolume((tmp / "a.nii.gz").string(), testVolume());
  image::writeVolume((tmp / "b.mha").string(), testVolume({10, 12, 14}, {3, 2, 2}));
  writeText(tmp / "ct.csv",
            "id,image,findings,impression,split,patient,lung_nodule,emphysema\n"
            "a,a.nii.gz,\"Nodule, right.\",Nodule.,train,p1,1,0\n"
            "b,b.mha,Emphysema.,Emphysema.,test,p2,0,1\n"
            "c,missing.nii.gz,Normal.,Normal.,val,p3,0,\n");
  const auto ct = image::readManifest((tmp / "ct.csv").string());
  DrrConfig cfg;
  cfg.projector = "mean";
  image::DrrJobOptions opt;
  opt.out = (tmp / "out").string();
  opt.threads = 2;
  opt.progress = false;
  auto s = image::runDrr(ct, cfg, opt);
  EXPECT_EQ(s.done, 2u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.skipped, 0u);
  EXPECT_NE(readText(tmp / "out/failures.jsonl").find("\"id\":\"c\""), std::string::npos);
  const auto xm = image::readManifest((tmp / "out/manifest.csv").string());
  ASSERT_EQ(xm.items.size(), 2u);
  EXPECT_EQ(xm.labelNames, ct.labelNames);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(xm.items[i].id, ct.items[i].id);
    EXPECT_EQ(xm.items[i].findings, ct.items[i].findings);
    EXPECT_EQ(xm.items[i].split, ct.items[i].split);
    EXPECT_EQ(xm.items[i].patient, ct.items[i].patient);
    EXPECT_EQ(xm.items[i].labels[0], ct.items[i].labels[0]);
    // The PNG holds the projection (8 bits: within half a grey level).
    const Image2D png = image::readImage2D(xm.items[i].images[0]);
    const Image2D want = image::simulateXray(image::readVolume(ct.items[i].images[0]), cfg);
    EXPECT_LE(maxAbsDiff(png, want), 0.5 / 255 + 1e-6);
  }
  // Resume: finished X-rays are skipped; the failed one is tried again.
  s = image::runDrr(ct, cfg, opt);
  EXPECT_EQ(s.skipped, 2u);
  EXPECT_EQ(s.done, 0u);
  EXPECT_EQ(s.failed, 1u);
  // Other parameters into the same folder are refused, naming both.
  cfg.projector = "drr";
  try {
    image::runDrr(ct, cfg, opt);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("projector mean"), std::string::npos) << e.what();
  }
}

TEST(Projection, AppOnAFolderWith16Bits) {
  TempDir tmp("drrapp");
  std::filesystem::create_directories(tmp / "in/sub");
  image::writeVolume((tmp / "in/sub/x.nii.gz").string(), testVolume());
  image::writeVolume((tmp / "in/y.nrrd").string(), testVolume({8, 8, 8}, {2, 2, 2}));
  const auto r = run(app("biud-drr") + " --input " + quote((tmp / "in").string()) + " --out " +
                     quote((tmp / "out").string()) + " --bits 16 --geometry cone --source-distance 300 --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto xm = image::readManifest((tmp / "out/manifest.csv").string());
  ASSERT_EQ(xm.items.size(), 2u);
  EXPECT_EQ(xm.items[0].id, "sub_x");
  EXPECT_EQ(xm.items[1].id, "y");
  DrrConfig cfg;
  cfg.beam = "cone";
  cfg.source_distance = 300;
  cfg.bits = 16;
  const Image2D png = image::readImage2D(xm.items[0].images[0]);
  const Image2D want = image::simulateXray(image::readVolume((tmp / "in/sub/x.nii.gz").string()), cfg);
  EXPECT_LE(maxAbsDiff(png, want), 0.5 / 65535 + 1e-6);  // 16 bits
  auto j = nlohmann::json::parse(readText(tmp / "out/biud-drr.json"));
  EXPECT_EQ(j["done"], 2);
  // Usage errors: neither or both inputs.
  EXPECT_EQ(run(app("biud-drr") + " --out " + quote((tmp / "o2").string())).rc, 2);
  EXPECT_EQ(run(app("biud-drr") + " --help").rc, 0);
}

}  // namespace
}  // namespace biud::test
