// biud-retrieve: language-guided retrieval (METHOD §2). Pairs every CT study with the X-ray of
// the teacher corpus whose report is closest to its own, embedding both report sets with the
// frozen teacher's text tower; writes pairing.csv and the cached teacher features. The passes run
// in resumable chunks (retrieval/Chunked.h).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "biud/core/App.h"
#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/retrieval/Chunked.h"
#include "biud/retrieval/TopK.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/Tasks.h"
#include "biud/train/TeacherFeatures.h"
#include "biud/train/TextBatch.h"
#include "biud/train/TextCache.h"

using namespace biud;

namespace {

/// Identity of the teacher checkpoint: its folder and the name, size and mtime of every file in
/// it (hashing hundreds of MB of weights on every run would cost more than it protects).
std::string checkpointIdentity(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  retrieval::ContentHash h;
  for (const auto& f : files) {
    h.add(f.filename().string());
    h.add(static_cast<std::int64_t>(std::filesystem::file_size(f, ec)));
    h.add(static_cast<std::int64_t>(std::filesystem::last_write_time(f, ec).time_since_epoch().count()));
  }
  return h.hex();
}

/// Content hash of what retrieval reads from a manifest: ids, report texts and image paths.
std::string manifestIdentity(const image::Manifest& m, const std::vector<std::string>& sections) {
  retrieval::ContentHash h;
  for (const auto& it : m.items) {
    h.add(it.id).add(it.text(sections)).add(static_cast<std::int64_t>(it.images.size()));
    for (const auto& p : it.images) h.add(p);
  }
  return h.hex();
}

}  // namespace

int main(int argc, char** argv) {
  app::App app("biud-retrieve",
               "Language-guided retrieval: embed the CT reports (data.manifest) and the X-ray corpus reports\n"
               "(data.xray_manifest) with the frozen teacher's text encoder (model.teacher, a clip2d run), pair every\n"
               "CT with its top-K closest X-ray reports (blocked matrix multiply, bounded memory), and cache the\n"
               "teacher features h* of every kept X-ray. Writes <out>/pairing.csv (ct_id, xray_id, score, rank),\n"
               "<out>/teacher_features.safetensors (h_star [N, K, d], scores [N, K]) and <out>/retrieve.json.\n"
               "Resumable: work is done in chunks kept in <out>/retrieve-work/; re-running the same command after an\n"
               "interruption (Ctrl-C, SIGTERM, a crash) skips the finished chunks. Changed inputs discard them.");
  app.addCommon(app::kConfig | app::kOut | app::kThreads | app::kDevice | app::kWeights);
  std::string teacher;
  int topK = 5;
  std::int64_t block = 8192, chunk = 4096, stopAfter = -1;
  bool keepWork = false, fresh = false;
  app.cli().add_option("--teacher", teacher, "teacher run folder (default: model.teacher)");
  app.cli()
      .add_option("--top-k", topK,
                  "X-ray reports kept per CT in pairing.csv, with their teacher features h* (data.pairing_top_k "
                  "may sample among at most this many; 1 = fastest, rank 1 only)")
      ->check(CLI::Range(1, 1000));
  app.cli()
      .add_option("--block", block, "database rows scored per matrix multiply (memory bound)")
      ->check(CLI::Range(1, 1 << 24));
  app.cli()
      .add_option("--chunk", chunk,
                  "reports / X-ray images per work chunk: the most work an interruption can lose (changing it "
                  "discards the work folder)")
      ->check(CLI::Range(1, 1 << 24));
  app.cli().add_flag("--keep-work", keepWork, "keep <out>/retrieve-work/ after success (default: removed)");
  app.cli().add_flag("--fresh", fresh,
                     "discard <out>/retrieve-work/ and start from zero (e.g. after replacing X-ray images in place)");
  app.cli()
      .add_option("--stop-after-chunks", stopAfter,
                  "for testing: stop as if interrupted after computing this many chunks (exit code 130)")
      ->check(CLI::Range(0, 1 << 30));
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    train::absolutizePaths(cfg);
    if (teacher.empty()) teacher = cfg.model.teacher;
    BIUD_CHECK(!teacher.empty(), ConfigError,
               "no teacher: pass --teacher RUN or set model.teacher (a clip2d run folder)");
    BIUD_CHECK(!cfg.data.manifest.empty() && !cfg.data.xray_manifest.empty(), ConfigError,
               "biud-retrieve needs data.manifest (CT reports) and data.xray_manifest (the X-ray corpus)");
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    const std::string out = app.prepareOutDir("retrieve");
    const auto work = std::filesystem::path(out) / "retrieve-work";
    auto t = train::loadRun(teacher, dev);
    BIUD_CHECK(t.cfg.task == "clip2d", ConfigError, "--teacher `{}` is a `{}` run; the teacher is a clip2d run",
               teacher, t.cfg.task);
    const auto started = std::chrono::steady_clock::now();

    const auto ct = image::readManifest(cfg.data.manifest);
    const auto cxr = image::readManifest(cfg.data.xray_manifest);
    std::vector<std::string> ctText, cxrText, ctIds, cxrIds;
    for (auto& it : ct.items) ctText.push_back(it.text(cfg.data.report_sections)), ctIds.push_back(it.id);
    for (auto& it : cxr.items) cxrText.push_back(it.text(cfg.data.report_sections)), cxrIds.push_back(it.id);
    BIUD_CHECK(!cxr.items.empty(), DataError, "X-ray manifest `{}` has no items", cfg.data.xray_manifest);
    BIUD_CHECK(!ct.items.empty(), DataError, "CT manifest `{}` has no items", cfg.data.manifest);

    retrieval::ChunkedJob job;
    job.nQueries = static_cast<std::int64_t>(ctText.size());
    job.nDatabase = static_cast<std::int64_t>(cxrText.size());
    // A frozen teacher report encoder (e.g. a pretrained BERT): its features may already be in the
    // text-feature cache written while the teacher trained (train/TextCache.h).
    std::unique_ptr<train::FrozenTextFeatures> textCache;
    if (t.cfg.model.text_encoder.frozen)
      textCache = train::makeFrozenTextFeatures(t.cfg, t.clip->text_encoder, *t.tokenizer, dev, /*writer=*/true);
    auto embed = [&](const std::vector<std::string>& texts, std::int64_t b, std::int64_t e) {
      torch::NoGradGuard ng;
      std::vector<std::string> part(texts.begin() + b, texts.begin() + e);
      if (textCache) return t.clip->text_proj->forward(textCache->get(part)).cpu();
      auto tb = train::tokenizeBatch(*t.tokenizer, part, t.cfg.text.max_length);
      return t.clip->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
    };
    job.embedQueries = [&](std::int64_t b, std::int64_t e) { return embed(ctText, b, e); };
    job.embedDatabase = [&](std::int64_t b, std::int64_t e) { return embed(cxrText, b, e); };
    job.embedImages = [&](const std::vector<std::int64_t>& rows) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> imgs;
      for (auto x : rows) {
        const auto& item = cxr.items[static_cast<size_t>(x)];
        BIUD_CHECK(!item.images.empty(), DataError, "X-ray `{}` (line {} of `{}`) has no image", item.id, item.line,
                   cfg.data.xray_manifest);
        auto img = image::preprocessXray(image::readImage2D(item.images.front()), t.cfg.data.xray);
        imgs.push_back(torch::from_blob(img.data.data(), {1, img.size[1], img.size[0]}, torch::kFloat32).clone());
      }
      return t.clip->encodeImage(torch::stack(imgs).to(dev)).cpu();
    };
    std::string sections;
    for (const auto& s : cfg.data.report_sections) sections += (sections.empty() ? "" : ",") + s;
    job.fingerprint.set("teacher_checkpoint", std::filesystem::absolute(t.checkpoint).lexically_normal().string())
        .set("teacher_files", checkpointIdentity(t.checkpoint))
        .set("ct_manifest", manifestIdentity(ct, cfg.data.report_sections))
        .set("xray_manifest", manifestIdentity(cxr, cfg.data.report_sections))
        .set("report_sections", sections)
        .set("max_length", std::to_string(t.cfg.text.max_length))
        .set("xray_preprocess", fmt::format("size {} pad_square {}", t.cfg.data.xray.size, t.cfg.data.xray.pad_square))
        .set("device", dev.str());  // CPU and GPU kernels round differently: never mix their chunks
    job.chunk = chunk;
    job.topk.k = topK;
    job.topk.dbBlock = block;
    job.stopAfterChunks = stopAfter;
    job.stop = [] { return app::stopRequested(); };
    if (fresh && std::filesystem::exists(work)) {
      log::info("retrieve", "--fresh: removing `{}`", work.string());
      std::filesystem::remove_all(work);
    }
    const auto res = retrieval::runChunked(job, work);
    if (textCache) textCache->save();  // once, not per chunk: the file holds every cached report
    if (!res.complete) {
      log::warn("retrieve",
                "stopped{}: {} chunk(s) computed now, {} resumed; they are kept in `{}`; run the same command again to "
                "resume",
                stopAfter >= 0 && !app::stopRequested() ? " (--stop-after-chunks)" : "", res.chunksComputed,
                res.chunksResumed, work.string());
      return app::kExitInterrupted;
    }
    const auto& r = res.topk;

    const auto pairing = (std::filesystem::path(out) / "pairing.csv").string();
    retrieval::writePairing(pairing, ctIds, cxrIds, r);
    train::TeacherFeatures tf;
    tf.ids = ctIds;
    tf.candidates = res.imageFeatures;
    tf.h_star = res.imageFeatures.select(1, 0);
    tf.scores = r.scores;
    tf.report_embedding = res.queryEmbedding;
    tf.save(train::teacherFeaturesPath(pairing));
    const auto k = r.indices.size(1);

    // Diagnostics: how often the paired X-ray's labels equal the CT's (shared label columns).
    nlohmann::json j;
    j["n_ct"] = ct.items.size();
    j["n_xray"] = cxr.items.size();
    j["top_k"] = k;
    j["mean_top1_score"] = r.scores.select(1, 0).mean().item<double>();
    // How far below rank 1 ranks 2..K score on average: the scale data.pairing_tau must match.
    std::vector<double> gaps;
    for (std::int64_t c = 1; c < r.scores.size(1); ++c)
      gaps.push_back((r.scores.select(1, 0) - r.scores.select(1, c)).mean().item<double>());
    j["mean_gap_below_top1"] = gaps;
    j["distinct_xrays_used"] = res.distinctImages;
    j["chunk"] = chunk;
    j["chunks_computed"] = res.chunksComputed;
    j["chunks_resumed"] = res.chunksResumed;
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    j["teacher"] = t.checkpoint;
    int agree = 0, compared = 0;
    std::vector<std::pair<size_t, size_t>> shared;
    for (size_t a = 0; a < ct.labelNames.size(); ++a)
      for (size_t b = 0; b < cxr.labelNames.size(); ++b)
        if (ct.labelNames[a] == cxr.labelNames[b]) shared.push_back({a, b});
    if (!shared.empty()) {
      for (std::int64_t i = 0; i < r.indices.size(0); ++i) {
        const auto& c = ct.items[static_cast<size_t>(i)];
        const auto& x = cxr.items[static_cast<size_t>(r.indices[i][0].item<std::int64_t>())];
        bool same = true;
        for (auto [a, b] : shared) same = same && (c.labels[a] > 0.5f) == (x.labels[b] > 0.5f);
        agree += same;
        ++compared;
      }
      j["label_set_agreement_top1"] = static_cast<double>(agree) / compared;
      j["shared_label_columns"] = shared.size();
    }
    fs::atomicWrite(std::filesystem::path(out) / "retrieve.json", j.dump(2));
    // The final files are whole on disk (atomic writes) before the chunks go.
    if (!keepWork) std::filesystem::remove_all(work);
    log::info("retrieve", "paired {} CTs with {} X-ray reports: mean top-1 score {:.3f}{}; wrote {}", ct.items.size(),
              cxr.items.size(), j["mean_top1_score"].get<double>(),
              compared ? fmt::format(", identical finding sets for {:.1f}% of pairs", 100.0 * agree / compared) : "",
              pairing);
    return app::kExitOk;
  });
}
