// biud-drr: simulated frontal chest X-rays from CT volumes (X2CT-CLIP, METHOD §6; docs/x2ct.md).
// Torch-free: it needs only biud_image.
#include <nlohmann/json.hpp>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/image/Manifest.h"
#include "biud/image/Projection.h"
#include "biud/image/ProjectionJob.h"

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-drr",
      "Simulate a frontal chest X-ray from every CT of a manifest (CSV/JSONL: id, image, report, labels ...) or of a "
      "folder: canonical LPS orientation, resampling to x2ct.drr.spacing mm isotropic, HU window [hu_min, hu_max], "
      "projection along the anterior-posterior axis (projector `mean`: mean intensity, as the X2CT-CLIP code; "
      "`drr`: Beer-Lambert line integral of mu = mu_water (1 + HU/1000), parallel or cone beam), min-max to an 8- or "
      "16-bit PNG, upright (head up, patient right on the image left). Writes <out>/images/<id>.png and "
      "<out>/manifest.csv, the paired X-ray manifest: same ids, reports, splits, patients and labels as the CTs. "
      "Resumable: a rerun skips finished X-rays. Unreadable volumes are listed in <out>/failures.jsonl (exit code 3).");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kManifest | biud::app::kThreads);
  std::string input, projector, beam, oldBeam;
  std::vector<std::string> ignore;
  double spacing = 0, sourceDistance = 0;
  int bits = 0, size = -1, oldSize = -1;
  long long limit = 0;
  auto& cli = app.cli();
  cli.add_option(
      "--input", input,
      "folder of CT volumes instead of --manifest (.nii, .nii.gz, .mha, .mhd, .nrrd, .nhdr files and folders "
      "of .dcm files, searched recursively; id = relative path without extension)");
  cli.add_option("--projector", projector, "mean or drr (x2ct.drr.projector, default drr)")
      ->check(CLI::IsMember({"mean", "drr"}));
  cli.add_option("--geometry", beam, "projection geometry: parallel or cone beam (x2ct.drr.beam, default parallel)")
      ->check(CLI::IsMember({"parallel", "cone"}));
  // Deprecated name of --geometry (--beam is the beam width in biud-report); hidden, warns.
  cli.add_option("--beam", oldBeam)->check(CLI::IsMember({"parallel", "cone"}))->group("");
  cli.add_option("--iso-spacing", spacing, "isotropic resampling in mm, one number (x2ct.drr.spacing, default 1)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--source-distance", sourceDistance,
                 "cone beam: source to volume centre in mm (x2ct.drr.source_distance, default 1000)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--bits", bits, "PNG bit depth, 8 or 16 (x2ct.drr.bits, default 8)")->check(CLI::IsMember({8, 16}));
  cli.add_option("--xray-size", size, "X-ray side length in pixels, 0 = native grid (x2ct.drr.size, default 0)")
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--size", oldSize)->check(CLI::NonNegativeNumber)->group("");  // deprecated: --xray-size
  cli.add_option("--ignore-columns", ignore, "manifest columns that are neither known nor labels");
  cli.add_option("--limit", limit, "project only the first N items (0 = all)")->check(CLI::NonNegativeNumber);
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    auto& d = cfg.x2ct.drr;
    if (!projector.empty()) d.projector = projector;
    if (!oldBeam.empty()) biud::log::warn("drr", "--beam is deprecated here: use --geometry {}", oldBeam);
    if (!beam.empty() || !oldBeam.empty()) d.beam = beam.empty() ? oldBeam : beam;
    if (spacing > 0) d.spacing = spacing;
    if (sourceDistance > 0) d.source_distance = sourceDistance;
    if (bits > 0) d.bits = bits;
    if (oldSize >= 0) biud::log::warn("drr", "--size is deprecated here: use --xray-size {}", oldSize);
    if (size >= 0 || oldSize >= 0) d.size = size >= 0 ? size : oldSize;
    // The CT manifest: --manifest, else the recipe's data.manifest (unless --input names a folder).
    const std::string manifest = !app.manifest().empty() ? app.manifest()
                                 : input.empty()         ? app.config().data.manifest
                                                         : "";
    BIUD_CHECK(manifest.empty() != input.empty(), biud::ConfigError,
               "give exactly one of --manifest FILE (a CT manifest; default data.manifest) or --input DIR "
               "(a folder of CT volumes)");
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "--out DIR (the output folder) is required");
    biud::image::Manifest m;
    if (!input.empty()) {
      m = biud::image::scanVolumeFolder(input);
    } else {
      biud::image::ManifestOptions mo;
      mo.ignore = ignore;
      m = biud::image::readManifest(manifest, mo);
    }
    if (limit > 0 && static_cast<size_t>(limit) < m.items.size()) m.items.resize(static_cast<size_t>(limit));
    const std::string desc = biud::image::describeDrr(d);
    biud::log::info("drr", "{} CTs from `{}`; {}", m.items.size(), input.empty() ? manifest : input, desc);
    biud::image::DrrJobOptions opt;
    opt.out = app.out();
    opt.threads = cfg.threads;
    opt.progress = !app.quiet();
    const auto s = biud::image::runDrr(m, d, opt);
    nlohmann::json j = {{"input", input.empty() ? manifest : input},
                        {"out", app.out()},
                        {"manifest", (std::filesystem::path(app.out()) / "manifest.csv").string()},
                        {"total", s.total},
                        {"done", s.done},
                        {"skipped", s.skipped},
                        {"failed", s.failed},
                        {"seconds", s.seconds},
                        {"hash", s.hash},
                        {"interrupted", s.interrupted},
                        {"drr", desc}};
    biud::fs::atomicWrite(std::filesystem::path(app.out()) / "biud-drr.json", j.dump(2) + "\n");
    biud::log::info("drr", "{} X-rays made, {} already there, {} failed in {:.1f} s -> {}/manifest.csv", s.done,
                    s.skipped, s.failed, s.seconds, app.out());
    if (s.interrupted) return biud::app::kExitInterrupted;
    if (s.failed > 0) {
      biud::log::warn("drr", "{} item(s) failed; see {}/failures.jsonl", s.failed, app.out());
      return biud::app::kExitPartial;
    }
    return biud::app::kExitOk;
  });
}
