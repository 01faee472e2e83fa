// biud-synth: write the synthetic chest CT / X-ray / report benchmark (docs/synth.md).
#include <nlohmann/json.hpp>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/synth/Dataset.h"

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-synth",
      "Generate the synthetic benchmark: chest CT volumes (NIfTI) with radiology reports, a separate "
      "chest X-ray corpus with its own reports (the teacher's data), per-finding labels, train/val/test "
      "splits and an `external` CT set with shifted acquisition. Settings: the `synth:` config section.\n"
      "Writes DIR/ct/volumes/, DIR/ct/manifest.csv, DIR/ct/meta.jsonl, DIR/cxr/images/, DIR/cxr/manifest.csv, "
      "DIR/labels.csv, DIR/README.md and DIR/biud-synth.json. Same seed -> identical files.");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kSeed | biud::app::kThreads);
  int nCt = -1, nCxr = -1, nExt = -1, xraySize = -1;
  std::vector<int> size;
  std::vector<double> spacing;
  bool noMeta = false;
  app.cli()
      .add_option("--n-ct", nCt, "CT studies with reports (same as --set synth.n_ct=N)")
      ->check(CLI::NonNegativeNumber);
  app.cli()
      .add_option("--n-cxr", nCxr, "X-ray studies with reports (same as --set synth.n_cxr=N)")
      ->check(CLI::NonNegativeNumber);
  app.cli()
      .add_option("--n-external", nExt, "extra CT studies with shifted acquisition (split `external`)")
      ->check(CLI::NonNegativeNumber);
  app.cli().add_option("--size", size, "CT grid in voxels: X Y Z (same as --set synth.size=[X,Y,Z])")->expected(3);
  app.cli()
      .add_option("--spacing", spacing, "CT voxel spacing in mm: X Y Z (same as --set synth.spacing=[X,Y,Z])")
      ->expected(3);
  app.cli()
      .add_option("--xray-size", xraySize, "X-ray side length in pixels (same as --set synth.xray_size=N)")
      ->check(CLI::PositiveNumber);
  app.cli().add_flag("--no-meta", noMeta,
                     "do not write ct/meta.jsonl (acquisition, landmarks, finding geometry per CT)");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    auto& s = cfg.synth;
    if (nCt >= 0) s.n_ct = nCt;
    if (nCxr >= 0) s.n_cxr = nCxr;
    if (nExt >= 0) s.n_external = nExt;
    if (xraySize > 0) s.xray_size = xraySize;
    if (!size.empty()) s.size = size;
    if (!spacing.empty()) s.spacing = spacing;
    if (!app.outGiven()) BIUD_THROW(biud::ConfigError, "no output folder: give --out DIR");
    const std::string dir = app.prepareOutDir("synth");
    biud::synth::GenerateOptions opt;
    opt.out = dir;
    opt.seed = static_cast<std::uint64_t>(cfg.seed);
    opt.threads = cfg.threads;
    opt.meta = !noMeta;
    opt.stop = [] { return biud::app::stopRequested(); };
    // Thousands of small files: no fsync per file (each is still written whole through temp +
    // rename), one sync of everything at the end.
    biud::fs::setSyncEachFile(false);
    const auto sum = biud::synth::generateDataset(s, opt);
    biud::fs::syncAll();
    biud::fs::setSyncEachFile(true);
    nlohmann::json j;
    j["version"] = biud::app::versionString();
    j["seed"] = cfg.seed;
    j["n_ct"] = sum.n_ct;
    j["n_external"] = sum.n_external;
    j["n_cxr"] = sum.n_cxr;
    j["ct_healthy"] = sum.ct_healthy;
    j["cxr_healthy"] = sum.cxr_healthy;
    j["seconds_ct"] = sum.seconds_ct;
    j["seconds_cxr"] = sum.seconds_cxr;
    j["complete"] = !sum.stopped;
    for (int k = 0; k < biud::synth::kNumFindings; ++k) {
      const auto& id = biud::synth::findingIds()[static_cast<size_t>(k)];
      j["ct_positives"][id] = sum.ct_positives[static_cast<size_t>(k)];
      j["cxr_positives"][id] = sum.cxr_positives[static_cast<size_t>(k)];
    }
    biud::fs::atomicWrite(biud::fs::stdfs::path(dir) / "biud-synth.json", j.dump(2) + "\n");
    biud::log::info("synth", "wrote {} CT (+{} external) in {:.1f} s and {} X-rays in {:.1f} s to {}", sum.n_ct,
                    sum.n_external, sum.seconds_ct, sum.n_cxr, sum.seconds_cxr, dir);
    if (sum.stopped) {
      biud::log::warn("synth", "stopped early: the manifests list the {} + {} studies written so far",
                      sum.n_ct + sum.n_external, sum.n_cxr);
      return biud::app::kExitInterrupted;
    }
    return biud::app::kExitOk;
  });
}
