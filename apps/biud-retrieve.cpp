// biud-retrieve: language-guided retrieval (METHOD §2): pairs every CT study with the X-rays of
// the teacher corpus whose reports are closest to its own and caches the teacher features of the
// kept X-rays (evaluate/Retrieve.h).
#include "biud/app/App.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/Retrieve.h"
#include "biud/tensor/Runtime.h"

using namespace biud;

int main(int argc, char** argv) {
  app::App app(
      "biud-retrieve",
      "Language-guided retrieval: pair every CT with the top-K X-rays of the teacher corpus whose reports are closest\n"
      "to its own (cosine of report features; exact blocked matrix-multiply search in bounded memory), and cache\n"
      "the teacher features h* of every kept X-ray.\n"
      "Report features: by default the frozen teacher's text encoder (model.teacher, a clip2d run) embeds the CT\n"
      "reports (data.manifest) and the X-ray reports (data.xray_manifest); or give precomputed features with\n"
      "--ct-report-features and --xray-report-features (no report is re-encoded). Teacher image features: the\n"
      "teacher's image tower on each kept X-ray (by id in data.xray_manifest), or --xray-image-features.\n"
      "Writes <out>/pairing.csv (ct_id, xray_id, score, rank), <out>/teacher_features.safetensors (h_star [N, K, d],\n"
      "scores [N, K], report_embedding [N, d]) and <out>/retrieve.json.\n"
      "Resumable: work is done in chunks kept in <out>/retrieve-work/; re-running the same command after an\n"
      "interruption (Ctrl-C, SIGTERM, a crash) skips the finished chunks. Changed inputs discard them.");
  app.addCommon(app::kConfig | app::kOut | app::kManifest | app::kThreads | app::kDevice | app::kWeights);
  evaluate::RetrieveOptions f;
  auto& cli = app.cli();
  cli.add_option("--teacher", f.teacher,
                 "teacher run folder, a clip2d run (default: model.teacher); not needed when both report and image "
                 "features are given as files");
  cli.add_option("--top-k", f.topK,
                 "X-ray reports kept per CT in pairing.csv, with their teacher features h* (data.pairing_top_k may "
                 "sample among at most this many; 1 = fastest, rank 1 only). Above the number of X-rays: all of "
                 "them are kept, with a warning")
      ->check(CLI::Range(1, 1000));
  cli.add_option("--block", f.block,
                 "X-ray reports scored per matrix multiply; with --query-block it sets the memory of the search "
                 "(query-block x block x 4 bytes: 128 MiB at the defaults)")
      ->check(CLI::Range(1, 1 << 24));
  cli.add_option("--query-block", f.queryBlock,
                 "CT reports scored per matrix multiply (at most --chunk are scored at once)")
      ->check(CLI::Range(1, 1 << 24));
  cli.add_option("--precision", f.precision,
                 "precision the report features are rounded to before scoring (scores are fp32 either way): fp32, "
                 "or bf16 / fp16 to halve the memory of the X-ray report features, at the cost of ranking changes "
                 "between near-equal scores (see docs/retrieval.md)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  cli.add_option("--chunk", f.chunk,
                 "reports / X-ray images per work chunk: the most work an interruption can lose (changing it "
                 "discards the work folder)")
      ->check(CLI::Range(1, 1 << 24));
  cli.add_option("--ct-report-features", f.ctFeatures,
                 "feature mode: precomputed CT report features [N, d] (.npy, or .safetensors with tensor "
                 "`features`), one row per CT; replaces the teacher's text tower and data.manifest")
      ->check(CLI::ExistingFile);
  cli.add_option("--ct-ids", f.ctIds,
                 "CT ids of --ct-report-features, one per line in row order (needed for .npy; for .safetensors "
                 "the metadata entry `ids`, newline-separated, is used when this is not given)")
      ->check(CLI::ExistingFile);
  cli.add_option("--xray-report-features", f.xrayFeatures,
                 "feature mode: precomputed X-ray report features [M, d], the database (same formats)")
      ->check(CLI::ExistingFile);
  cli.add_option("--xray-ids", f.xrayIds, "X-ray ids of --xray-report-features (as --ct-ids)")
      ->check(CLI::ExistingFile);
  cli.add_option("--xray-image-features", f.imageFeatures,
                 "feature mode: precomputed teacher image features of the X-rays [M', d_X] (same formats; any "
                 "order, looked up by id; every kept X-ray must have a row). Without it the teacher's image tower "
                 "embeds the kept X-rays, found by id in data.xray_manifest")
      ->check(CLI::ExistingFile);
  cli.add_option("--xray-image-ids", f.imageIds, "X-ray ids of --xray-image-features (as --ct-ids)")
      ->check(CLI::ExistingFile);
  cli.add_flag("--normalize", f.normalize,
               "feature mode: L2-normalise every feature row as it is read (without it, rows must already be unit "
               "vectors, within 1e-3)");
  cli.add_flag("--keep-work", f.keepWork, "keep <out>/retrieve-work/ after success (default: removed)");
  cli.add_flag("--fresh", f.fresh,
               "discard <out>/retrieve-work/ and start from zero (e.g. after replacing X-ray images or feature files "
               "in place with the same size and time stamp)");
  cli.add_option("--stop-after-chunks", f.stopAfter,
                 "for testing: stop as if interrupted after computing this many chunks (exit code 130)")
      ->check(CLI::Range(0, 1 << 30));
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    evaluate::absolutizePaths(cfg);
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    f.prepareOut = [&] { return app.prepareOutDir("retrieve"); };
    return evaluate::retrieve(f, cfg, dev).complete ? app::kExitOk : app::kExitInterrupted;
  });
}
