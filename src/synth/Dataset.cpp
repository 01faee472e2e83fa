#include "biud/synth/Dataset.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>

#include <nlohmann/json.hpp>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/image/Drr.h"
#include "biud/synth/Nifti.h"

namespace biud::synth {

namespace {

std::uint64_t caseSeed(std::uint64_t seed, Cohort c, int index) {
  return deriveSeed(deriveSeed(seed, std::string("synth/") + cohortName(c)), static_cast<std::uint64_t>(index));
}

std::string caseId(Cohort c, int index) {
  switch (c) {
    case Cohort::CT:
      return fmt::format("ct_{:06d}", index);
    case Cohort::External:
      return fmt::format("ext_{:06d}", index);
    default:
      return fmt::format("cxr_{:06d}", index);
  }
}

void checkConfig(const SynthConfig& cfg) {
  BIUD_CHECK(cfg.size.size() == 3 && cfg.spacing.size() == 3, ConfigError,
             "synth.size and synth.spacing need 3 values (x, y, z); got {} and {}", cfg.size.size(),
             cfg.spacing.size());
  for (int d = 0; d < 3; ++d) {
    BIUD_CHECK(cfg.size[static_cast<size_t>(d)] >= 16 && cfg.size[static_cast<size_t>(d)] <= 1024, ConfigError,
               "synth.size[{}] = {}: use 16..1024 voxels", d, cfg.size[static_cast<size_t>(d)]);
    BIUD_CHECK(cfg.spacing[static_cast<size_t>(d)] > 0.05 && cfg.spacing[static_cast<size_t>(d)] < 50, ConfigError,
               "synth.spacing[{}] = {} mm: use 0.05..50 mm", d, cfg.spacing[static_cast<size_t>(d)]);
  }
  BIUD_CHECK(cfg.split.size() == 3, ConfigError, "synth.split needs 3 fractions (train, val, test); got {}",
             cfg.split.size());
  const double sum = cfg.split[0] + cfg.split[1] + cfg.split[2];
  BIUD_CHECK(std::abs(sum - 1.0) < 1e-6, ConfigError,
             "synth.split = [{}, {}, {}] sums to {:.4g}; the train/val/test fractions must sum to 1", cfg.split[0],
             cfg.split[1], cfg.split[2], sum);
  if (!cfg.xray_split.empty()) {
    BIUD_CHECK(cfg.xray_split.size() == 3, ConfigError,
               "synth.xray_split needs 3 fractions (train, val, test) or none (= synth.split); got {}",
               cfg.xray_split.size());
    const double xs = cfg.xray_split[0] + cfg.xray_split[1] + cfg.xray_split[2];
    BIUD_CHECK(std::abs(xs - 1.0) < 1e-6, ConfigError,
               "synth.xray_split = [{}, {}, {}] sums to {:.4g}; the train/val/test fractions must sum to 1",
               cfg.xray_split[0], cfg.xray_split[1], cfg.xray_split[2], xs);
  }
  BIUD_CHECK(cfg.xray_size >= 32 && cfg.xray_size <= 4096, ConfigError, "synth.xray_size = {}: use 32..4096",
             cfg.xray_size);
  BIUD_CHECK(cfg.healthy_fraction >= 0 && cfg.healthy_fraction <= 1, ConfigError,
             "synth.healthy_fraction = {}: must be in [0, 1]", cfg.healthy_fraction);
  (void)resolveFindingRates(cfg.finding_rates);  // throws on unknown ids
}

nlohmann::json metaJson(const SynthCase& c, const std::string& split) {
  const auto& a = c.phantom.anatomy;
  const auto& q = c.phantom.acquisition;
  nlohmann::json j;
  j["id"] = c.id;
  j["patient"] = c.patient;
  j["split"] = split;
  j["acquisition"] = {{"size", q.size},
                      {"spacing", q.spacing},
                      {"fill", q.fill},
                      {"noise_sd", q.noise_sd},
                      {"slice_thickness_mm", q.slice_thickness_mm},
                      {"kernel_sigma_vox", q.kernel_sigma_vox},
                      {"hu_scale", q.hu_scale},
                      {"hu_offset", q.hu_offset}};
  // Anatomical landmarks (mm, LPS world coordinates of the volume), present for every case.
  j["anatomy"] = {{"body_center", {a.cx, a.cy}},
                  {"body_half_axes", {a.body_a, a.body_b}},
                  {"cavity_half_axes", {a.cav_a, a.cav_b}},
                  {"lung_base_z", a.z_base},
                  {"lung_apex_z", a.zApex()},
                  {"dome_z", {a.dome_right, a.dome_left}},
                  {"heart_center", a.heart_c},
                  {"lung_hu", a.lung_hu}};
  nlohmann::json fs = nlohmann::json::array();
  for (const auto& f : c.phantom.findings) {
    nlohmann::json o = {{"finding", findingId(f.type)}, {"side", sideName(f.side)}, {"lobe", f.lobe},
                        {"size_mm", f.size_mm},         {"severity", f.severity},   {"count", f.count},
                        {"uncertain", f.uncertain},     {"detail", f.detail},       {"center_mm", f.center_mm}};
    if (!f.tubes.empty()) o["air_bronchograms"] = f.tubes;  // x0, y0, z0, x1, y1, z1, radius (mm)
    if (f.dome_raise_mm[0] > 0 || f.dome_raise_mm[1] > 0) o["dome_raise_mm"] = f.dome_raise_mm;  // right, left
    fs.push_back(o);
  }
  j["findings"] = fs;
  return j;
}

std::string readme(const SynthConfig& cfg, std::uint64_t seed, const GenerateSummary& s) {
  std::string cols;
  for (const auto& id : findingIds()) cols += "`" + id + "`, ";
  cols.resize(cols.size() - 2);
  return fmt::format(
      R"(# biud synthetic chest CT / X-ray / report benchmark

Generated by `biud-synth` (seed {seed}). Everything here is synthetic: analytic chest phantoms in
Hounsfield units, reports written from the findings placed in them. Same seed and settings give
identical files.

## Layout

- `ct/volumes/<id>.nii.gz` — CT volumes, NIfTI-1 int16 HU, {sx}x{sy}x{sz} voxels at {px} x {py} x {pz} mm
  (external set: shifted acquisition, see below). World space RAS as NIfTI requires (the volumes
  are LPS-canonical in memory: i -> left, j -> posterior, k -> superior).
- `ct/manifest.csv` — one row per CT study ({n_ct} studies + {n_ext} external).
- `ct/meta.jsonl` — one JSON object per CT study: acquisition, anatomical landmarks (mm) and the
  geometry of each finding.
- `cxr/images/<id>.png` — frontal chest X-rays ({xr} x {xr}, 8-bit; patient right on the image left,
  head up), Beer-Lambert projections of separate phantoms (other patients than the CTs).
- `cxr/manifest.csv` — one row per X-ray study ({n_cxr} studies).
- `labels.csv` — `id, modality, patient, split` and the finding columns for every study.

## Manifest columns

`id, image, patient, split, findings, impression, ` then one 0/1 column per finding: {cols}.
`image` is relative to the manifest file. `findings` and `impression` are the report sections.
CSV quoting per RFC 4180 (reports contain commas). Splits: `train`, `val`, `test` (fractions
{tr}/{va}/{te}); `external` holds CT studies with other spacing, stronger noise, a soft kernel,
thicker slices, a miscalibrated HU scale and a larger field of view.

## Findings

| id | image signature |
|---|---|
| lung_nodule | solid sphere +35 HU, 6-20 mm, in a lobe; 1-3 nodules |
| lung_mass | lobulated +40 HU mass, 32-45 mm |
| pleural_effusion | fluid +10 HU layering in the posterior lung base (supine), right/left/bilateral |
| pneumothorax | air -1000 HU without vessels, anterior/apical, the lung collapsed towards the hilum |
| consolidation | +30 HU region confined to one lobe |
| emphysema | upper-lung parenchyma 45-75 HU darker with -985 HU holes |
| cardiomegaly | heart enlarged 1.2-1.45x (cardiothoracic ratio > 0.55) |
| pericardial_effusion | +12 HU fluid rim 6-18 mm around the heart |
| atelectasis | +50 HU dense wedge at the posterior lung base, or in the middle lobe/lingula |
| arterial_calcification | +750 HU plaques on the aortic wall and/or coronary arteries |

Labels are 1 when the finding is in the image. The report then mentions it without negation,
sometimes hedged ("possible", "cannot be excluded" — still labelled 1). Absent findings are not
mentioned or negated ("no pleural effusion", "pneumothorax is not seen"). About
{healthy:.0f} % of studies are healthy (every label 0).

## This data set

CT: {n_ct} studies, {ct_healthy} healthy. X-ray: {n_cxr} studies, {cxr_healthy} healthy.
)",
      fmt::arg("seed", seed), fmt::arg("sx", cfg.size[0]), fmt::arg("sy", cfg.size[1]), fmt::arg("sz", cfg.size[2]),
      fmt::arg("px", cfg.spacing[0]), fmt::arg("py", cfg.spacing[1]), fmt::arg("pz", cfg.spacing[2]),
      fmt::arg("n_ct", s.n_ct), fmt::arg("n_ext", s.n_external), fmt::arg("xr", cfg.xray_size),
      fmt::arg("n_cxr", s.n_cxr), fmt::arg("cols", cols), fmt::arg("tr", cfg.split[0]), fmt::arg("va", cfg.split[1]),
      fmt::arg("te", cfg.split[2]), fmt::arg("healthy", 100 * cfg.healthy_fraction),
      fmt::arg("ct_healthy", s.ct_healthy), fmt::arg("cxr_healthy", s.cxr_healthy));
}

struct Row {
  std::string id, image, patient, split;
  Report report;
  Labels labels{};
  bool done = false;
};

std::string manifestCsv(const std::vector<Row>& rows) {
  std::string t = "id,image,patient,split,findings,impression";
  for (const auto& id : findingIds()) t += "," + id;
  t += "\n";
  for (const auto& r : rows) {
    if (!r.done) continue;
    t += csvField(r.id) + "," + csvField(r.image) + "," + csvField(r.patient) + "," + csvField(r.split) + "," +
         csvField(r.report.findings) + "," + csvField(r.report.impression);
    for (int v : r.labels) t += v ? ",1" : ",0";
    t += "\n";
  }
  return t;
}

/// At most `n` holders at a time (C++17 has no std::counting_semaphore).
class Slots {
 public:
  explicit Slots(int n) : free_(n) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

/// Run `work(i, cpu)` for i in [0, n). `cpu` bounds the compute part to `threads` concurrent
/// holders; more workers than that exist so that file writes (fsync) overlap with computing.
/// The progress bar counts finished items.
void parallelFor(int n, int threads, const std::string& label, const std::function<bool()>& stop,
                 const std::function<void(int, Slots&)>& work) {
  if (n <= 0) return;
  Progress bar(label, static_cast<std::uint64_t>(n), "case");
  std::atomic<int> next{0};
  std::mutex mu;
  std::exception_ptr err;
  Slots cpu(std::max(1, threads));
  auto worker = [&] {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (err || (stop && stop())) return;
      }
      const int i = next.fetch_add(1);
      if (i >= n) return;
      try {
        work(i, cpu);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!err) err = std::current_exception();
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      bar.advance();
    }
  };
  const int t = std::max(1, std::min(3 * threads, n));
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  bar.finish();
  if (err) std::rethrow_exception(err);
}

}  // namespace

const char* cohortName(Cohort c) {
  switch (c) {
    case Cohort::CT:
      return "ct";
    case Cohort::External:
      return "external";
    default:
      return "cxr";
  }
}

Acquisition sampleAcquisition(Rng& rng, const SynthConfig& cfg, Cohort cohort) {
  Acquisition q;
  if (cohort == Cohort::XRay) {
    // Coarse phantom: the projection integrates along y, so y can be coarser.
    const int n = std::clamp(cfg.xray_size / 2, 32, 192);
    const double fov = 192.0;
    q.size = {n, std::max(16, n / 2), n};
    q.spacing = {fov / n, fov / q.size[1], fov / n};
    q.fill = rng.uniform(0.78, 0.9);
    q.noise_sd = 4;
    q.slice_thickness_mm = q.spacing[2];
    q.kernel_sigma_vox = 0.5;
    return q;
  }
  q.size = {cfg.size[0], cfg.size[1], cfg.size[2]};
  q.spacing = {cfg.spacing[0], cfg.spacing[1], cfg.spacing[2]};
  if (cohort == Cohort::CT) {
    q.fill = rng.uniform(0.8, 0.92);
    q.noise_sd = rng.uniform(8, 18);
    q.slice_thickness_mm = q.spacing[2] * rng.uniform(1.0, 1.5);
    q.kernel_sigma_vox = rng.uniform(0.4, 0.7);
  } else {
    // External site: coarser pixels (the field of view grows with them), thicker or thinner
    // slices, more noise, a soft kernel, miscalibrated HU, a smaller patient in the field of view.
    const double inPlane = rng.uniform(1.2, 1.4);
    q.spacing = {q.spacing[0] * inPlane, q.spacing[1] * inPlane, q.spacing[2] * (rng.uniform() < 0.5 ? 0.75 : 1.5)};
    q.fill = rng.uniform(0.62, 0.76);
    q.noise_sd = rng.uniform(22, 34);
    q.slice_thickness_mm = q.spacing[2] * rng.uniform(1.3, 2.0);
    q.kernel_sigma_vox = rng.uniform(0.8, 1.1);
    q.hu_scale = rng.uniform(1.05, 1.12);
    q.hu_offset = rng.uniform(-25, 25);
  }
  return q;
}

SynthCase makeCase(const SynthConfig& cfg, std::uint64_t seed, Cohort cohort, int index, bool withLabelMap) {
  const std::uint64_t s = caseSeed(seed, cohort, index);
  Rng rng(s);
  SynthCase c;
  c.id = caseId(cohort, index);
  c.cohort = cohort;
  c.patient = cohort == Cohort::XRay ? fmt::format("xp{:06d}", index)
                                     : fmt::format("{}p{:06d}", cohort == Cohort::CT ? "c" : "e", index);
  c.labels = sampleLabels(rng, cfg.healthy_fraction, resolveFindingRates(cfg.finding_rates));
  const Acquisition acq = sampleAcquisition(rng, cfg, cohort);
  Anatomy anat = sampleAnatomy(rng, acq);
  auto findings = placeFindings(rng, anat, c.labels);
  c.phantom = render(anat, findings, acq, deriveSeed(s, "noise"), withLabelMap);
  Rng rrng(deriveSeed(s, "report"));
  c.report = writeReport(rrng, findings, cohort == Cohort::XRay ? Modality::XRay : Modality::CT);
  if (cohort == Cohort::XRay) {
    Rng xr(deriveSeed(s, "xray"));
    image::Image2D L = image::lineIntegralAP(c.phantom.volume);
    c.xray = image::displayXray(L, cfg.xray_size, cfg.xray_size, xr.uniform(0.8, 1.25), 0.995);
    // Detector noise, mild.
    for (auto& v : c.xray.data) v = std::clamp(v + static_cast<float>(xr.normal(0, 0.012)), 0.0f, 1.0f);
  }
  return c;
}

std::vector<std::string> assignSplits(int n, const std::vector<double>& f, std::uint64_t seed) {
  std::vector<int> perm(static_cast<size_t>(std::max(0, n)));
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(deriveSeed(seed, "synth/split"));
  std::shuffle(perm.begin(), perm.end(), rng.engine());
  const int nTrain = static_cast<int>(std::lround(n * f[0]));
  const int nVal = std::min(n - nTrain, static_cast<int>(std::lround(n * f[1])));
  std::vector<std::string> split(static_cast<size_t>(std::max(0, n)));
  for (int r = 0; r < n; ++r)
    split[static_cast<size_t>(perm[static_cast<size_t>(r)])] = r < nTrain          ? "train"
                                                               : r < nTrain + nVal ? "val"
                                                                                   : "test";
  return split;
}

std::string csvField(const std::string& s) { return csv::quote(s); }

GenerateSummary generateDataset(const SynthConfig& cfg, const GenerateOptions& opt) {
  checkConfig(cfg);
  BIUD_CHECK(!opt.out.empty(), ConfigError, "no output folder (give --out DIR)");
  const fs::stdfs::path out(opt.out);
  fs::makeDirs(out / "ct" / "volumes");
  fs::makeDirs(out / "cxr" / "images");
  const int threads =
      opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  GenerateSummary sum;

  // CT studies (train/val/test) followed by the external set.
  const int nCt = cfg.n_ct, nExt = cfg.n_external;
  const auto splits = assignSplits(nCt, cfg.split, opt.seed);
  std::vector<Row> ct(static_cast<size_t>(nCt + nExt));
  auto t0 = std::chrono::steady_clock::now();
  log::info("synth", "{} CT studies ({}x{}x{} at {}x{}x{} mm) + {} external, {} threads -> {}", nCt, cfg.size[0],
            cfg.size[1], cfg.size[2], cfg.spacing[0], cfg.spacing[1], cfg.spacing[2], nExt, threads, out.string());
  std::vector<std::string> metas(static_cast<size_t>(nCt + nExt));
  parallelFor(nCt + nExt, threads, "CT", opt.stop, [&](int i, Slots& cpu) {
    const bool ext = i >= nCt;
    const int idx = ext ? i - nCt : i;
    cpu.acquire();
    SynthCase c;
    std::string gz;
    try {
      c = makeCase(cfg, opt.seed, ext ? Cohort::External : Cohort::CT, idx);
      gz = encodeNifti(c.phantom.volume, (out / "ct" / "volumes" / (c.id + ".nii.gz")).string());
    } catch (...) {
      cpu.release();
      throw;
    }
    cpu.release();
    Row& r = ct[static_cast<size_t>(i)];
    r.id = c.id;
    r.image = "volumes/" + c.id + ".nii.gz";
    r.patient = c.patient;
    r.split = ext ? "external" : splits[static_cast<size_t>(idx)];
    r.report = c.report;
    r.labels = c.labels;
    fs::atomicWrite(out / "ct" / r.image, gz);
    if (opt.meta) metas[static_cast<size_t>(i)] = metaJson(c, r.split).dump() + "\n";
    r.done = true;
  });
  sum.seconds_ct = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // X-ray corpus: other patients, its own reports.
  const int nCxr = cfg.n_cxr;
  const auto xsplits =
      assignSplits(nCxr, cfg.xray_split.empty() ? cfg.split : cfg.xray_split, deriveSeed(opt.seed, "cxr"));
  std::vector<Row> cxr(static_cast<size_t>(nCxr));
  t0 = std::chrono::steady_clock::now();
  if (!(opt.stop && opt.stop())) {
    log::info("synth", "{} X-ray studies ({} x {} px)", nCxr, cfg.xray_size, cfg.xray_size);
    parallelFor(nCxr, threads, "X-ray", opt.stop, [&](int i, Slots& cpu) {
      cpu.acquire();
      SynthCase c;
      try {
        c = makeCase(cfg, opt.seed, Cohort::XRay, i);
      } catch (...) {
        cpu.release();
        throw;
      }
      cpu.release();
      Row& r = cxr[static_cast<size_t>(i)];
      r.id = c.id;
      r.image = "images/" + c.id + ".png";
      r.patient = c.patient;
      r.split = xsplits[static_cast<size_t>(i)];
      r.report = c.report;
      r.labels = c.labels;
      image::writePng8((out / "cxr" / r.image).string(), c.xray);
      r.done = true;
    });
  }
  sum.seconds_cxr = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::string labels = "id,modality,patient,split";
  for (const auto& id : findingIds()) labels += "," + id;
  labels += "\n";
  auto count = [&](const std::vector<Row>& rows, const char* modality, std::array<int, kNumFindings>& pos, int& healthy,
                   int& n) {
    for (const auto& r : rows) {
      if (!r.done) continue;
      ++n;
      bool any = false;
      labels += csvField(r.id) + "," + modality + "," + csvField(r.patient) + "," + r.split;
      for (int k = 0; k < kNumFindings; ++k) {
        labels += r.labels[static_cast<size_t>(k)] ? ",1" : ",0";
        pos[static_cast<size_t>(k)] += r.labels[static_cast<size_t>(k)];
        any = any || r.labels[static_cast<size_t>(k)];
      }
      labels += "\n";
      if (!any) ++healthy;
    }
  };
  int nAllCt = 0;
  count(ct, "ct", sum.ct_positives, sum.ct_healthy, nAllCt);
  count(cxr, "cxr", sum.cxr_positives, sum.cxr_healthy, sum.n_cxr);
  for (const auto& r : ct)
    if (r.done) (r.split == "external" ? sum.n_external : sum.n_ct)++;
  if (opt.meta) {
    std::string all;
    for (size_t i = 0; i < ct.size(); ++i)
      if (ct[i].done) all += metas[i];
    fs::atomicWrite(out / "ct" / "meta.jsonl", all);
  }
  fs::atomicWrite(out / "ct" / "manifest.csv", manifestCsv(ct));
  fs::atomicWrite(out / "cxr" / "manifest.csv", manifestCsv(cxr));
  fs::atomicWrite(out / "labels.csv", labels);
  fs::atomicWrite(out / "README.md", readme(cfg, opt.seed, sum));
  sum.stopped = sum.n_ct + sum.n_external < nCt + nExt || sum.n_cxr < nCxr;
  return sum;
}

}  // namespace biud::synth
