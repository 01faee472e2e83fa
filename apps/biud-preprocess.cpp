// biud-preprocess: CT manifest -> preprocessed, memory-mappable cache (see docs/data.md).
#include <nlohmann/json.hpp>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-preprocess",
      "Preprocess the CT volumes of a manifest (CSV/JSONL: id, image, ...) into a sharded, memory-mapped cache: "
      "canonical LPS orientation, resampling to data.ct.spacing (linear), HU window/scale, crop or pad to "
      "data.ct.size. Parameters come from `data.ct` (built-in defaults: the small CPU preset; see "
      "configs/data/). Resumable: a rerun skips finished items and redoes partial ones. Items that cannot be read "
      "are listed in <out>/failures.jsonl and skipped (exit code 3).");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kManifest | biud::app::kThreads);
  std::vector<std::string> ignore;
  bool ctRate = false;
  long long limit = 0;
  app.cli()
      .add_flag("--ct-rate", ctRate, "removed: use `biud-import ct-rate` (it reads the metadata CSV)")
      ->group("");  // hidden; kept to explain the replacement
  app.cli().add_option("--ignore-columns", ignore, "manifest columns that are neither known nor labels");
  app.cli().add_option("--limit", limit, "process only the first N items (0 = all)");
  bool trustExisting = false;
  app.cli().add_flag(
      "--trust-existing", trustExisting,
      "on a rerun, skip items already in the cache without re-reading their records (default: every "
      "record is checked against its crc32 first and damaged ones are redone; this reads the whole cache)");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    // --manifest, else the recipe's data.manifest (configs/data/ct_rate.yaml names the import's).
    const std::string manifest = !app.manifest().empty() ? app.manifest() : cfg.data.manifest;
    BIUD_CHECK(!manifest.empty(), biud::ConfigError,
               "biud-preprocess: --manifest FILE is required (or data.manifest in the --config recipe)");
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "--out DIR (the cache folder) is required");
    BIUD_CHECK(!ctRate, biud::ConfigError,
               "biud-preprocess --ct-rate was removed: it read CT-RATE's reports without its metadata CSV, so the true "
               "spacing and rescale intercept were lost (wrong sizes and HU). Run `biud-import ct-rate --root "
               "<CT-RATE> --out DIR`, then `biud-preprocess --manifest DIR/manifest.csv`");
    biud::image::ManifestOptions mo;
    mo.ignore = ignore;
    biud::image::Manifest m = biud::image::readManifest(manifest, mo);
    if (limit > 0 && static_cast<size_t>(limit) < m.items.size()) m.items.resize(static_cast<size_t>(limit));
    biud::log::info("data", "{} items from `{}`; {}", m.items.size(), manifest,
                    biud::image::describePreprocess(cfg.data.ct));
    biud::image::PreprocessJobOptions opt;
    opt.out = app.out();
    opt.threads = cfg.threads;
    opt.progress = !app.quiet();
    opt.verifyExisting = !trustExisting;
    const auto s = biud::image::runPreprocess(m, cfg.data.ct, opt);
    nlohmann::json j = {{"manifest", manifest},
                        {"out", app.out()},
                        {"total", s.total},
                        {"done", s.done},
                        {"skipped", s.skipped},
                        {"failed", s.failed},
                        {"seconds", s.seconds},
                        {"hash", s.hash},
                        {"interrupted", s.interrupted},
                        {"preprocess", biud::image::describePreprocess(cfg.data.ct)},
                        {"header_disagreements", s.disagreed},
                        {"hu_implausible", s.implausible},
                        {"damaged_redone", s.damaged}};
    biud::fs::atomicWrite(std::filesystem::path(app.out()) / "biud-preprocess.json", j.dump(2) + "\n");
    biud::log::info("data", "{} preprocessed, {} already cached, {} failed in {:.1f} s -> {}", s.done, s.skipped,
                    s.failed, s.seconds, app.out());
    if (s.disagreed > 0)
      biud::log::warn("data",
                      "{} volume(s): the file header disagrees with the manifest's metadata (spacing, rescale, "
                      "orientation or origin); the metadata was used. Details per volume: {}/notes.jsonl",
                      s.disagreed, app.out());
    if (s.implausible > 0)
      biud::log::warn("data", "{} volume(s) with implausible HU values (data.ct.hu_check); see {}/notes.jsonl",
                      s.implausible, app.out());
    if (s.interrupted) return biud::app::kExitInterrupted;
    if (s.failed > 0) {
      biud::log::warn("data", "{} item(s) failed; see {}/failures.jsonl", s.failed, app.out());
      return biud::app::kExitPartial;
    }
    return biud::app::kExitOk;
  });
}
