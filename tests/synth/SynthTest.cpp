// The synthetic benchmark: file formats against nibabel/csv, determinism, and that images and
// reports carry the labels (in memory against the generator's label map, on files against a
// Python reference with scikit-learn AUROC/F1).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <regex>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/image/Drr.h"
#include "biud/synth/Dataset.h"
#include "biud/synth/Nifti.h"
#include "common/TestUtil.h"

namespace bs = biud::synth;
namespace stdfs = std::filesystem;

namespace {

biud::SynthConfig smallConfig() {
  biud::SynthConfig c;
  c.size = {64, 64, 32};
  c.spacing = {3, 3, 6};  // the quickstart resolution: 192 mm field of view
  c.xray_size = 64;
  return c;
}

std::map<std::string, double> allRates(double r) {
  std::map<std::string, double> m;
  for (const auto& id : bs::findingIds()) m[id] = r;
  return m;
}

/// Keyword rules written for the test (not the generator's templates): is `finding` mentioned
/// without a negation cue before it in its sentence, or a "not seen" after it?
bool mentioned(const std::string& report, bs::Finding f) {
  static const char* kw[bs::kNumFindings] = {
      R"(\bnodul(e|es|ar)\b)",
      R"(\bmass(es)?\b)",
      R"(\bpleural (effusions?|fluid)\b)",
      R"(\bpneumothorax\b)",
      R"(\bconsolidat\w*)",
      R"(\bemphysema\w*)",
      R"(\bcardiomegaly\b|\benlarged heart\b|\bcardiac enlargement\b|\bheart is (\w+ )?enlarged\b|\bcardiac silhouette is (\w+ )?enlarged\b|\benlarged cardiac silhouette\b)",
      R"(\bpericardial (effusion|fluid)\b)",
      R"(\batelecta\w*)",
      R"(\bcalcifi\w*|\batherosclero\w*)"};
  std::string t = report;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::regex re(kw[static_cast<int>(f)]), neg(R"(\b(no|without|not|negative for|free of)\b)"),
      post(R"(^[^.;]*?\b(is|are) (not seen|not identified|absent)\b)");
  const std::regex split(R"([.;:]\s+)");
  for (std::sregex_token_iterator it(t.begin(), t.end(), split, -1), end; it != end; ++it) {
    const std::string s = *it;
    for (std::sregex_iterator m(s.begin(), s.end(), re), e; m != e; ++m) {
      const std::string before = s.substr(0, static_cast<size_t>(m->position() + m->length()));
      const std::string after = s.substr(static_cast<size_t>(m->position() + m->length()));
      if (!std::regex_search(before, neg) && !std::regex_search(after, post)) return true;
    }
  }
  return false;
}

void expectSameTree(const stdfs::path& a, const stdfs::path& b) {
  size_t n = 0;
  for (const auto& e : stdfs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    const auto rel = stdfs::relative(e.path(), a);
    if (rel == "log.txt" || rel == "config.resolved.yaml") continue;
    ASSERT_TRUE(stdfs::exists(b / rel)) << rel;
    EXPECT_EQ(biud::fs::readFile(e.path()), biud::fs::readFile(b / rel)) << rel;
    ++n;
  }
  EXPECT_GT(n, 10u);
}

}  // namespace

TEST(Synth, FindingIdsAndRates) {
  const std::vector<std::string> want = {
      "lung_nodule", "lung_mass",    "pleural_effusion",     "pneumothorax", "consolidation",
      "emphysema",   "cardiomegaly", "pericardial_effusion", "atelectasis",  "arterial_calcification"};
  EXPECT_EQ(std::vector<std::string>(bs::findingIds().begin(), bs::findingIds().end()), want);
  EXPECT_EQ(bs::findingFromId("pneumothorax"), bs::Finding::Pneumothorax);
  EXPECT_FALSE(bs::findingFromId("nodule"));
  const auto r = bs::resolveFindingRates({{"emphysema", 0.9}});
  EXPECT_DOUBLE_EQ(r[static_cast<int>(bs::Finding::Emphysema)], 0.9);
  EXPECT_DOUBLE_EQ(r[static_cast<int>(bs::Finding::LungNodule)], bs::defaultFindingRates().at("lung_nodule"));
  try {
    bs::resolveFindingRates({{"effusion", 0.2}});
    FAIL() << "unknown id accepted";
  } catch (const biud::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("`effusion`"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pleural_effusion"), std::string::npos) << e.what();
  }
}

TEST(Synth, HealthyFractionAndAtLeastOneFinding) {
  biud::Rng rng(3);
  const auto rates = bs::resolveFindingRates({});
  int healthy = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const auto l = bs::sampleLabels(rng, 0.3, rates);
    int s = 0;
    for (int v : l) s += v;
    healthy += s == 0;
  }
  // Binomial(4000, 0.3): sd 29.
  EXPECT_NEAR(healthy, 0.3 * n, 100);
}

TEST(Synth, CsvQuotingRfc4180) {
  EXPECT_EQ(bs::csvField("plain"), "plain");
  EXPECT_EQ(bs::csvField("a, b"), "\"a, b\"");
  EXPECT_EQ(bs::csvField("say \"no\""), "\"say \"\"no\"\"\"");
  EXPECT_EQ(bs::csvField("two\nlines"), "\"two\nlines\"");
}

TEST(Synth, NiftiReadByNibabel) {
  biud::test::TempDir d("nifti");
  biud::image::Volume v({5, 4, 3}, {1.5, 2.0, 3.0});
  v.origin = {-10.0, 20.0, 30.0};
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 5; ++i) v.at(i, j, k) = static_cast<float>(i + 10 * j + 100 * k - 50) + 0.4f;
  bs::writeNifti((d / "v.nii.gz").string(), v);
  bs::writeNifti((d / "v.nii").string(), v);
  const std::string script = R"(import sys, numpy as np, nibabel as nib
for f in sys.argv[1:]:
    img = nib.load(f)
    a = np.asarray(img.dataobj)
    assert img.get_data_dtype() == np.int16, img.get_data_dtype()
    assert a.shape == (5, 4, 3), a.shape
    i, j, k = np.meshgrid(np.arange(5), np.arange(4), np.arange(3), indexing="ij")
    assert (a == i + 10 * j + 100 * k - 50).all()
    want = np.array([[-1.5, 0, 0, 10], [0, -2, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]])
    assert np.allclose(img.get_sform(), want), img.get_sform()
    assert np.allclose(img.get_qform(), want), img.get_qform()
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S"), nib.aff2axcodes(img.affine)
print("ok")
)";
  biud::test::writeText(d / "check.py", script);
  const auto r = biud::test::run(biud::test::quote(biud::test::python()) + " " + (d / "check.py").string() + " " +
                                 (d / "v.nii.gz").string() + " " + (d / "v.nii").string());
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out;
}

TEST(Synth, DrrHandWorked) {
  // Two columns: air (L = 0) and water (L = mu_w * ny * dy).
  biud::image::Volume v({2, 3, 2}, {1.0, 2.0, 1.0}, -1000.0f);
  for (int j = 0; j < 3; ++j) v.at(1, j, 0) = v.at(1, j, 1) = 0.0f;
  v.at(0, 1, 1) = 1000.0f;  // bone-ish voxel in the upper slice of the left column
  const auto L = biud::image::lineIntegralAP(v, 0.02);
  ASSERT_EQ(L.size[0], 2);
  ASSERT_EQ(L.size[1], 2);
  EXPECT_NEAR(L.at(1, 0, 0), 0.02 * 3 * 2.0, 1e-6);  // water column
  EXPECT_NEAR(L.at(0, 0, 0), 0.02 * 2 * 2.0, 1e-6);  // row 0 = superior slice k=1: one voxel at 2x water
  EXPECT_NEAR(L.at(0, 1, 0), 0.0, 1e-6);             // pure air
}

TEST(Synth, SameSeedSameFilesAnyThreadCount) {
  auto cfg = smallConfig();
  cfg.size = {32, 32, 16};
  cfg.spacing = {6, 6, 12};
  cfg.n_ct = 6;
  cfg.n_external = 2;
  cfg.n_cxr = 4;
  biud::test::TempDir a("seed_a"), b("seed_b"), c("seed_c");
  bs::GenerateOptions o;
  o.seed = 5;
  o.out = a.str();
  o.threads = 1;
  bs::generateDataset(cfg, o);
  o.out = b.str();
  o.threads = 2;
  bs::generateDataset(cfg, o);
  expectSameTree(a.path(), b.path());
  o.out = c.str();
  o.seed = 6;
  bs::generateDataset(cfg, o);
  EXPECT_NE(biud::fs::readFile(a / "ct/manifest.csv"), biud::fs::readFile(c / "ct/manifest.csv"));
  EXPECT_NE(biud::fs::readFile(a / "ct/volumes/ct_000000.nii.gz"),
            biud::fs::readFile(c / "ct/volumes/ct_000000.nii.gz"));
  EXPECT_NE(biud::fs::readFile(a / "cxr/images/cxr_000000.png"), biud::fs::readFile(c / "cxr/images/cxr_000000.png"));
}

// Every labelled finding is in the image where the generator put it, in the right HU range, and
// in the report without negation; every absent finding is absent from the label map and the
// report mentions it only negated.
TEST(Synth, FindingsInImageAndReport) {
  auto cfg = smallConfig();
  cfg.finding_rates = allRates(0.4);
  cfg.healthy_fraction = 0.2;
  const std::map<bs::Finding, std::vector<std::uint8_t>> tissue = {
      {bs::Finding::LungNodule, {bs::kNodule}},
      {bs::Finding::LungMass, {bs::kMass}},
      {bs::Finding::PleuralEffusion, {bs::kFluid}},
      {bs::Finding::Pneumothorax, {bs::kPneumothorax}},
      {bs::Finding::Consolidation, {bs::kConsolidation, bs::kBronchogram}},
      {bs::Finding::Emphysema, {bs::kEmphysema, bs::kEmphysemaHole}},
      {bs::Finding::PericardialEffusion, {bs::kPericardialFluid}},
      {bs::Finding::Atelectasis, {bs::kAtelectasis}},
      {bs::Finding::ArterialCalcification, {bs::kCalcification}}};
  int checked[bs::kNumFindings] = {};
  int withBronchograms = 0, withRaisedDome = 0;
  for (int idx = 0; idx < 40; ++idx) {
    const auto c = bs::makeCase(cfg, 11, bs::Cohort::CT, idx, /*withLabelMap=*/true);
    const auto& ph = c.phantom;
    const auto& v = ph.volume;
    const auto& a = ph.anatomy;
    const std::string text = c.report.findings + " " + c.report.impression;
    ASSERT_EQ(ph.labels.size(), v.data.size());
    for (int fi = 0; fi < bs::kNumFindings; ++fi) {
      const auto f = static_cast<bs::Finding>(fi);
      const bool pos = c.labels[static_cast<size_t>(fi)] != 0;
      EXPECT_EQ(mentioned(text, f), pos) << c.id << " " << bs::findingId(f) << ": " << text;
      if (f == bs::Finding::Cardiomegaly) {
        // Heart width over the inner thoracic width, measured on the label map.
        int lo = v.size[0], hi = -1;
        for (int k = 0; k < v.size[2]; ++k)
          for (int j = 0; j < v.size[1]; ++j)
            for (int i = 0; i < v.size[0]; ++i)
              if (ph.labels[static_cast<size_t>(v.index(i, j, k))] == bs::kHeart)
                lo = std::min(lo, i), hi = std::max(hi, i);
        const double ctr = (hi - lo + 1) * v.spacing[0] / (2 * a.cav_a);
        if (pos) {
          EXPECT_GT(ctr, 0.54) << c.id;
        } else {
          EXPECT_LT(ctr, 0.54) << c.id;
        }
        checked[fi] += pos;
        continue;
      }
      // Voxels of the finding's classes; "interior" = all 6 neighbours of the same class.
      const auto& want = tissue.at(f);
      std::int64_t n = 0, nIn = 0;
      double sumIn = 0, sx = 0, sy = 0, sz = 0;
      float maxHu = -2000;
      for (int k = 1; k + 1 < v.size[2]; ++k)
        for (int j = 1; j + 1 < v.size[1]; ++j)
          for (int i = 1; i + 1 < v.size[0]; ++i) {
            const auto q = v.index(i, j, k);
            const auto l = ph.labels[static_cast<size_t>(q)];
            if (std::find(want.begin(), want.end(), l) == want.end()) continue;
            ++n;
            sx += v.origin[0] + i * v.spacing[0], sy += v.origin[1] + j * v.spacing[1],
                sz += v.origin[2] + k * v.spacing[2];
            maxHu = std::max(maxHu, v.data[static_cast<size_t>(q)]);
            bool inner = true;
            for (auto d : {std::int64_t(1), std::int64_t(v.size[0]), std::int64_t(v.size[0]) * v.size[1]})
              inner = inner && ph.labels[static_cast<size_t>(q + d)] == l && ph.labels[static_cast<size_t>(q - d)] == l;
            if (inner) ++nIn, sumIn += v.data[static_cast<size_t>(q)];
          }
      if (!pos) {
        EXPECT_EQ(n, 0) << c.id << " " << bs::findingId(f) << " painted but not labelled";
        continue;
      }
      EXPECT_GT(n, 0) << c.id << " " << bs::findingId(f) << " labelled but not in the image; report: " << text;
      if (n == 0) continue;
      ++checked[fi];
      const double mx = sx / n, my = sy / n, mz = sz / n, mean = nIn ? sumIn / nIn : NAN;
      const bs::FindingInstance* inst = nullptr;
      for (const auto& fi2 : ph.findings)
        if (fi2.type == f) inst = &fi2;
      ASSERT_NE(inst, nullptr);
      const bool right = inst->side == bs::Side::Right, left = inst->side == bs::Side::Left;
      switch (f) {
        case bs::Finding::PleuralEffusion:
          EXPECT_GT(my, a.cy) << c.id << " effusion not posterior";
          EXPECT_LT(mz, a.z_base + 0.35 * a.height) << c.id << " effusion not basal";
          if (right) {
            EXPECT_LT(mx, a.cx) << c.id;
          }
          if (left) {
            EXPECT_GT(mx, a.cx) << c.id;
          }
          if (nIn > 5) {
            EXPECT_TRUE(mean > -15 && mean < 30) << c.id << " effusion HU " << mean;
          }
          break;
        case bs::Finding::Pneumothorax:
          EXPECT_LT(my, a.cy) << c.id << " pneumothorax not anterior";
          if (right) {
            EXPECT_LT(mx, a.cx) << c.id;
          }
          if (left) {
            EXPECT_GT(mx, a.cx) << c.id;
          }
          if (nIn > 5) {
            EXPECT_LT(mean, -950) << c.id << " pneumothorax HU";
          }
          break;
        case bs::Finding::Consolidation:
          EXPECT_EQ(a.lobeAt(inst->center_mm[0], inst->center_mm[1], inst->center_mm[2]), inst->lobe) << c.id;
          EXPECT_NE(text.find(inst->lobe), std::string::npos) << c.id << " lobe not in report";
          if (nIn > 5) {
            EXPECT_TRUE(mean > 0 && mean < 70) << c.id << " consolidation HU " << mean;
          }
          {
            // "air bronchograms" in the report <=> air-range voxels inside the consolidation:
            // bronchogram voxels (painted only into consolidated lung) that read < -400 HU after
            // blur and noise, with consolidation within 2 voxels in-plane.
            std::string low = text;
            std::transform(low.begin(), low.end(), low.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            const bool said = low.find("air bronchogram") != std::string::npos;
            EXPECT_EQ(said, !inst->tubes.empty()) << c.id << ": " << text;
            std::int64_t air = 0, bron = 0;
            for (int k = 0; k < v.size[2]; ++k)
              for (int j = 2; j + 2 < v.size[1]; ++j)
                for (int i = 2; i + 2 < v.size[0]; ++i) {
                  const auto q = static_cast<size_t>(v.index(i, j, k));
                  if (ph.labels[q] != bs::kBronchogram) continue;
                  ++bron;
                  bool near = false;
                  for (int dj = -2; dj <= 2 && !near; ++dj)
                    for (int di = -2; di <= 2 && !near; ++di)
                      near = ph.labels[static_cast<size_t>(v.index(i + di, j + dj, k))] == bs::kConsolidation;
                  if (near && v.data[q] < -400) ++air;
                }
            if (said) {
              EXPECT_GT(air, 0) << c.id << " air bronchograms reported, none in the image (" << bron
                                << " bronchogram voxels)";
              ++withBronchograms;
            } else {
              EXPECT_EQ(bron, 0) << c.id << " bronchograms painted but not reported";
            }
          }
          break;
        case bs::Finding::LungNodule:
        case bs::Finding::LungMass:
          EXPECT_NE(text.find(inst->lobe), std::string::npos) << c.id << " lobe not in report";
          EXPECT_NE(text.find(fmt::format("{:.0f} mm", inst->size_mm)), std::string::npos)
              << c.id << " size not in report";
          EXPECT_GT(maxHu, -300) << c.id;
          break;
        case bs::Finding::Emphysema:
          EXPECT_GT(mz, a.z_base + 0.3 * a.height) << c.id << " emphysema not in the upper lungs";
          if (nIn > 5) {
            EXPECT_LT(mean, a.lung_hu - 20) << c.id;
          }
          break;
        case bs::Finding::PericardialEffusion:
          if (nIn > 2) {
            EXPECT_TRUE(mean > -20 && mean < 35) << c.id << " pericardial HU " << mean;
          }
          break;
        case bs::Finding::Atelectasis: {
          if (nIn > 5) {
            EXPECT_GT(mean, 0) << c.id << " atelectasis HU " << mean;
          }
          // Volume loss: a basal atelectasis raises the hemidiaphragm(s) of its side (not where
          // pleural fluid is), and the report says so exactly then.
          std::string low = text;
          std::transform(low.begin(), low.end(), low.begin(),
                         [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
          const bool raisedAny = inst->dome_raise_mm[0] > 0 || inst->dome_raise_mm[1] > 0;
          EXPECT_EQ(low.find("hemidiaphragm") != std::string::npos, raisedAny) << c.id << ": " << text;
          if (raisedAny) {
            ++withRaisedDome;
            // Render the same patient with the domes put back: the raised side must have lost
            // at least half of (its dome area, a 0.3 x cavity half-width disc) x (the raise) of
            // chest voxels to the abdomen.
            bs::Anatomy down = a;
            down.dome_right -= inst->dome_raise_mm[0];
            down.dome_left -= inst->dome_raise_mm[1];
            const auto ref = bs::render(down, ph.findings, ph.acquisition, 1, true);
            std::int64_t gain[2] = {0, 0};
            for (int k = 0; k < v.size[2]; ++k)
              for (int j = 0; j < v.size[1]; ++j)
                for (int i = 0; i < v.size[0]; ++i) {
                  const auto q = static_cast<size_t>(v.index(i, j, k));
                  const int s = v.origin[0] + i * v.spacing[0] < a.cx ? 0 : 1;
                  gain[s] += (ph.labels[q] == bs::kAbdomen) - (ref.labels[q] == bs::kAbdomen);
                }
            const double vox = v.spacing[0] * v.spacing[1] * v.spacing[2];
            for (int s = 0; s < 2; ++s) {
              const double r = inst->dome_raise_mm[static_cast<size_t>(s)];
              if (r > 0) {
                EXPECT_GT(gain[s] * vox, 0.5 * 3.14159 * 0.09 * a.cav_a * a.cav_a * r)
                    << c.id << (s == 0 ? " right" : " left") << " dome not raised";
              }
            }
          }
          break;
        }
        case bs::Finding::ArterialCalcification:
          EXPECT_GT(maxHu, 250) << c.id << " calcification not dense";
          break;
        default:
          break;
      }
    }
  }
  for (int fi = 0; fi < bs::kNumFindings; ++fi)
    EXPECT_GT(checked[fi], 2) << bs::findingId(static_cast<bs::Finding>(fi));
  EXPECT_GT(withBronchograms, 2);
  EXPECT_GT(withRaisedDome, 2);
}

// On files: an independent Python reference (nibabel, csv, scikit-learn) measures that simple
// regional HU statistics separate six findings (AUROC) and keyword rules recover the labels (F1).
TEST(Synth, FilesCarryLabelsPythonReference) {
  auto cfg = smallConfig();
  cfg.n_ct = 240;
  cfg.n_external = 4;
  cfg.n_cxr = 60;
  cfg.finding_rates = allRates(0.35);
  biud::test::TempDir d("synth_ref");
  bs::GenerateOptions o;
  o.out = d.str();
  o.seed = 3;
  o.threads = 2;
  const auto s = bs::generateDataset(cfg, o);
  EXPECT_EQ(s.n_ct, 240);
  EXPECT_EQ(s.n_external, 4);
  EXPECT_EQ(s.n_cxr, 60);
  const std::string out =
      biud::test::runPython("synth_check.py", biud::test::quote(d.str()) + " --min-auroc 0.9 --min-f1 0.95");
  std::cout << out << "\n";
  EXPECT_NE(out.find("\"failures\": []"), std::string::npos) << out;
}

TEST(Synth, AppHelpAndErrors) {
  const std::string exe = biud::test::app("biud-synth");
  if (!stdfs::exists(exe)) GTEST_SKIP() << "biud-synth not built";
  auto r = biud::test::run(biud::test::quote(exe) + " --help");
  EXPECT_EQ(r.rc, 0);
  for (const char* flag :
       {"--n-ct", "--n-cxr", "--seed", "--out", "--config", "--set", "--size", "--spacing", "--threads"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  biud::test::TempDir d("app");
  r = biud::test::run(biud::test::quote(exe) + " --out " + biud::test::quote(d.str()) +
                      " --n-ct 1 --n-cxr 0 --set synth.finding_rates.effusion=0.3");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("effusion"), std::string::npos) << r.out;
  r = biud::test::run(biud::test::quote(exe) + " --out " + biud::test::quote(d.str()) +
                      " --n-ct 2 --n-cxr 2 --size 32 32 16 --spacing 6 6 12 --xray-size 64 --seed 1 -q");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(stdfs::exists(d / "ct/volumes/ct_000001.nii.gz"));
  EXPECT_TRUE(stdfs::exists(d / "cxr/images/cxr_000001.png"));
  EXPECT_TRUE(stdfs::exists(d / "biud-synth.json"));
  EXPECT_TRUE(stdfs::exists(d / "README.md"));
}
