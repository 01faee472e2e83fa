#include "biud/evaluate/Retrieve.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/data/TextBatch.h"
#include "biud/data/TextCache.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/Teacher.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/retrieval/Chunked.h"
#include "biud/retrieval/Features.h"
#include "biud/retrieval/TopK.h"

namespace biud::evaluate {

namespace {

namespace stdfs = std::filesystem;

/// Identity of the teacher checkpoint: its folder and the name, size and mtime of every file in
/// it (hashing hundreds of MB of weights on every run would cost more than it protects).
std::string checkpointIdentity(const std::string& dir) {
  std::vector<stdfs::path> files;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  retrieval::ContentHash h;
  for (const auto& f : files) {
    h.add(f.filename().string());
    h.add(static_cast<std::int64_t>(stdfs::file_size(f, ec)));
    h.add(static_cast<std::int64_t>(stdfs::last_write_time(f, ec).time_since_epoch().count()));
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

/// What a run pairs: ids of both sides, the job (report features or their embedders, the image
/// pass) and what the outputs need besides.
struct Sources {
  std::string mode;  ///< "teacher" | "features"
  std::vector<std::string> ctIds, xrayIds;
  retrieval::ChunkedJob job;
  /// Teacher image features of database rows when they come from a file (no image pass).
  std::function<torch::Tensor(const torch::Tensor& rows)> imageRows;
  std::optional<LoadedRun> teacher;
  std::optional<image::Manifest> ct, cxr;  ///< when read (label diagnostics, image paths)
  std::unique_ptr<data::FrozenTextFeatures> textCache;
};

LoadedRun loadTeacher(const RetrieveOptions& f, const Config& cfg, const c10::Device& dev, const std::string& why) {
  const std::string teacher = f.teacher.empty() ? cfg.model.teacher : f.teacher;
  BIUD_CHECK(!teacher.empty(), ConfigError,
             "no teacher {}: pass --teacher RUN or set model.teacher (a clip2d run folder)", why);
  auto t = loadRun(teacher, dev);
  // The teacher embeds reports and X-rays in one space (a clip2d run).
  BIUD_CHECK(t.model->can(Capability::kXray) && t.model->can(Capability::kText), ConfigError,
             "--teacher `{}` is a `{}` run; the teacher is a clip2d run", teacher, t.model->task());
  return t;
}

/// The teacher image tower on database rows, whose X-ray items `itemOf(row)` gives.
std::function<torch::Tensor(const std::vector<std::int64_t>&)> imagePass(
    LoadedRun& t, const c10::Device& dev, std::function<const image::ManifestItem&(std::int64_t)> itemOf,
    const std::string& manifestPath) {
  return [&t, dev, itemOf, manifestPath](const std::vector<std::int64_t>& rows) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> imgs;
    for (auto x : rows) {
      const auto& item = itemOf(x);
      BIUD_CHECK(!item.images.empty(), DataError, "X-ray `{}` (line {} of `{}`) has no image", item.id, item.line,
                 manifestPath);
      auto img = image::preprocessXray(image::readImage2D(item.images.front()), t.cfg.data.xray);
      imgs.push_back(torch::from_blob(img.data.data(), {1, img.size[1], img.size[0]}, torch::kFloat32).clone());
    }
    return t.model->encodeXray(torch::stack(imgs).to(dev)).cpu();
  };
}

std::string joinSections(const std::vector<std::string>& sections) {
  std::string s;
  for (const auto& x : sections) s += (s.empty() ? "" : ",") + x;
  return s;
}

/// Default mode: both report sets embedded by the teacher's text tower, images by its image tower.
void teacherSources(Sources& src, const RetrieveOptions& f, const Config& cfg, const c10::Device& dev) {
  src.mode = "teacher";
  BIUD_CHECK(!cfg.data.manifest.empty() && !cfg.data.xray_manifest.empty(), ConfigError,
             "biud-retrieve needs data.manifest (CT reports) and data.xray_manifest (the X-ray corpus), or "
             "precomputed features (--ct-report-features and --xray-report-features)");
  src.teacher.emplace(loadTeacher(f, cfg, dev, "to embed the reports"));
  auto& t = *src.teacher;
  src.ct.emplace(image::readManifest(cfg.data.manifest));
  src.cxr.emplace(image::readManifest(cfg.data.xray_manifest));
  BIUD_CHECK(!src.cxr->items.empty(), DataError, "X-ray manifest `{}` has no items", cfg.data.xray_manifest);
  BIUD_CHECK(!src.ct->items.empty(), DataError, "CT manifest `{}` has no items", cfg.data.manifest);
  auto ctText = std::make_shared<std::vector<std::string>>(), cxrText = std::make_shared<std::vector<std::string>>();
  for (auto& it : src.ct->items) ctText->push_back(it.text(cfg.data.report_sections)), src.ctIds.push_back(it.id);
  for (auto& it : src.cxr->items) cxrText->push_back(it.text(cfg.data.report_sections)), src.xrayIds.push_back(it.id);

  auto& job = src.job;
  job.nQueries = static_cast<std::int64_t>(ctText->size());
  job.nDatabase = static_cast<std::int64_t>(cxrText->size());
  // A frozen teacher report encoder (e.g. a pretrained BERT): its features may already be in the
  // text-feature cache written while the teacher trained (train/TextCache.h).
  if (t.cfg.model.text_encoder.frozen)
    src.textCache =
        data::makeFrozenTextFeatures(t.cfg, t.model->textTower().encoder, *t.tokenizer, dev, /*writer=*/true);
  auto* cache = src.textCache.get();
  auto embed = [&t, cache, dev](const std::vector<std::string>& texts, std::int64_t b, std::int64_t e) {
    torch::NoGradGuard ng;
    std::vector<std::string> part(texts.begin() + b, texts.begin() + e);
    if (cache) return t.model->textTower().proj->forward(cache->get(part)).cpu();
    auto tb = data::tokenizeBatch(*t.tokenizer, part, t.cfg.text.max_length);
    return t.model->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
  };
  job.embedQueries = [embed, ctText](std::int64_t b, std::int64_t e) { return embed(*ctText, b, e); };
  job.embedDatabase = [embed, cxrText](std::int64_t b, std::int64_t e) { return embed(*cxrText, b, e); };
  const auto* cxr = &*src.cxr;
  job.embedImages = imagePass(
      t, dev, [cxr](std::int64_t x) -> const image::ManifestItem& { return cxr->items[static_cast<size_t>(x)]; },
      cfg.data.xray_manifest);
  job.fingerprint.set("teacher_checkpoint", stdfs::absolute(t.checkpoint).lexically_normal().string())
      .set("teacher_files", checkpointIdentity(t.checkpoint))
      .set("ct_manifest", manifestIdentity(*src.ct, cfg.data.report_sections))
      .set("xray_manifest", manifestIdentity(*src.cxr, cfg.data.report_sections))
      .set("report_sections", joinSections(cfg.data.report_sections))
      .set("max_length", std::to_string(t.cfg.text.max_length))
      .set("xray_preprocess", fmt::format("size {} pad_square {}", t.cfg.data.xray.size, t.cfg.data.xray.pad_square));
}

/// Unit rows, or with --normalize made unit; otherwise a ConfigError naming the file and the fix.
void unitRows(retrieval::FeatureFile& ff, const std::string& what, bool normalize) {
  if (normalize) {
    retrieval::normalizeRowsInPlace(ff.features);
    return;
  }
  const double dev = retrieval::maxNormDeviation(ff.features);
  BIUD_CHECK(dev <= 1e-3, ConfigError,
             "{} `{}` are not unit vectors (largest | |x| - 1 | = {:.4g}); retrieval ranks by cosine similarity and "
             "training expects normalised features: pass --normalize, or normalise them before saving",
             what, ff.path, dev);
}

/// Feature mode: report features from files; image features from a file or the teacher.
void featureSources(Sources& src, const RetrieveOptions& f, const Config& cfg, const c10::Device& dev) {
  src.mode = "features";
  BIUD_CHECK(!f.ctFeatures.empty() && !f.xrayFeatures.empty(), ConfigError,
             "feature mode needs both --ct-report-features (the queries) and --xray-report-features (the database)");
  auto ct = retrieval::readFeatureFile(f.ctFeatures, f.ctIds, "CT report features", "--ct-ids");
  auto xr = retrieval::readFeatureFile(f.xrayFeatures, f.xrayIds, "X-ray report features", "--xray-ids");
  BIUD_CHECK(ct.features.size(1) == xr.features.size(1), DataError,
             "CT report features `{}` have {} dims but X-ray report features `{}` have {}", ct.path,
             ct.features.size(1), xr.path, xr.features.size(1));
  unitRows(ct, "CT report features", f.normalize);
  unitRows(xr, "X-ray report features", f.normalize);
  src.ctIds = ct.ids;
  src.xrayIds = xr.ids;
  auto& job = src.job;
  job.nQueries = ct.features.size(0);
  job.nDatabase = xr.features.size(0);
  job.queryFeatures = ct.features.to(torch::kFloat32);  // also the report_embedding of the output
  // Held in the search precision from here on (bf16/fp16 halve the database).
  job.databaseFeatures = xr.features.to(retrieval::precisionDtype(retrieval::parsePrecision(f.precision)));
  xr.features = torch::Tensor();
  job.fingerprint.set("ct_report_features", retrieval::fileIdentity(f.ctFeatures))
      .set("ct_ids", f.ctIds.empty() ? "metadata" : retrieval::fileIdentity(f.ctIds))
      .set("xray_report_features", retrieval::fileIdentity(f.xrayFeatures))
      .set("xray_ids", f.xrayIds.empty() ? "metadata" : retrieval::fileIdentity(f.xrayIds))
      .set("normalize", f.normalize ? "yes" : "no");

  if (!f.imageFeatures.empty()) {
    auto img = std::make_shared<retrieval::FeatureFile>(
        retrieval::readFeatureFile(f.imageFeatures, f.imageIds, "X-ray image features", "--xray-image-ids"));
    unitRows(*img, "X-ray image features", f.normalize);
    auto xrayIds = std::make_shared<std::vector<std::string>>(src.xrayIds);
    src.imageRows = [img, xrayIds](const torch::Tensor& rows) {
      const auto n = rows.size(0);
      auto sel = torch::empty({n}, torch::kInt64);
      const auto* r = rows.data_ptr<std::int64_t>();
      auto* s = sel.data_ptr<std::int64_t>();
      for (std::int64_t i = 0; i < n; ++i)
        s[i] = img->rowOf((*xrayIds)[static_cast<size_t>(r[i])], "X-ray image features");
      return img->features.index_select(0, sel).to(torch::kFloat32);
    };
    job.fingerprint.set("image_source", "file " + retrieval::fileIdentity(f.imageFeatures));
    return;
  }
  // Image features from the teacher: the X-ray ids are looked up in data.xray_manifest.
  BIUD_CHECK(!cfg.data.xray_manifest.empty(), ConfigError,
             "feature mode without --xray-image-features embeds the kept X-rays with the teacher: set "
             "data.xray_manifest (their image paths, by id) and model.teacher / --teacher");
  src.teacher.emplace(loadTeacher(f, cfg, dev, "to embed the kept X-rays (or pass --xray-image-features)"));
  src.cxr.emplace(image::readManifest(cfg.data.xray_manifest));
  auto byId = std::make_shared<std::map<std::string, const image::ManifestItem*>>();
  for (const auto& it : src.cxr->items) byId->emplace(it.id, &it);
  auto xrayIds = std::make_shared<std::vector<std::string>>(src.xrayIds);
  const std::string manifest = cfg.data.xray_manifest;
  job.embedImages = imagePass(
      *src.teacher, dev,
      [byId, xrayIds, manifest](std::int64_t x) -> const image::ManifestItem& {
        const auto& id = (*xrayIds)[static_cast<size_t>(x)];
        auto it = byId->find(id);
        BIUD_CHECK(it != byId->end(), DataError,
                   "X-ray `{}` of --xray-report-features is not in data.xray_manifest `{}` (its image is needed)", id,
                   manifest);
        return *it->second;
      },
      manifest);
  job.fingerprint.set("image_source", "teacher " + stdfs::absolute(src.teacher->checkpoint).lexically_normal().string())
      .set("teacher_files", checkpointIdentity(src.teacher->checkpoint))
      .set("xray_manifest", manifestIdentity(*src.cxr, cfg.data.report_sections))
      .set("xray_preprocess", fmt::format("size {} pad_square {}", src.teacher->cfg.data.xray.size,
                                          src.teacher->cfg.data.xray.pad_square));
}

/// Share of top-1 pairs whose finding sets agree on the label columns both manifests have;
/// nullopt without shared columns. Pairs whose ids a manifest lacks are skipped.
std::optional<std::pair<double, std::size_t>> labelAgreement(const image::Manifest& ct, const image::Manifest& cxr,
                                                             const std::vector<std::string>& ctIds,
                                                             const std::vector<std::string>& xrayIds,
                                                             const torch::Tensor& indices, int& compared) {
  std::vector<std::pair<size_t, size_t>> shared;
  for (size_t a = 0; a < ct.labelNames.size(); ++a)
    for (size_t b = 0; b < cxr.labelNames.size(); ++b)
      if (ct.labelNames[a] == cxr.labelNames[b]) shared.push_back({a, b});
  if (shared.empty()) return std::nullopt;
  std::map<std::string, const image::ManifestItem*> ctById, xrById;
  for (const auto& it : ct.items) ctById.emplace(it.id, &it);
  for (const auto& it : cxr.items) xrById.emplace(it.id, &it);
  const auto top1 = indices.select(1, 0).contiguous();
  const auto* p = top1.data_ptr<std::int64_t>();
  int agree = 0;
  compared = 0;
  for (size_t i = 0; i < ctIds.size(); ++i) {
    auto c = ctById.find(ctIds[i]);
    auto x = xrById.find(xrayIds[static_cast<size_t>(p[i])]);
    if (c == ctById.end() || x == xrById.end()) continue;
    bool same = true;
    for (auto [a, b] : shared) same = same && (c->second->labels[a] > 0.5f) == (x->second->labels[b] > 0.5f);
    agree += same;
    ++compared;
  }
  if (compared == 0) return std::nullopt;
  return std::make_pair(static_cast<double>(agree) / compared, shared.size());
}

}  // namespace

RetrieveResult retrieve(const RetrieveOptions& f, const Config& cfg, const c10::Device& dev) {
  RetrieveResult result;
  BIUD_CHECK(f.featureMode() || (f.ctIds.empty() && f.xrayIds.empty() && f.imageFeatures.empty() &&
                                 f.imageIds.empty() && !f.normalize),
             ConfigError,
             "--ct-ids, --xray-ids, --xray-image-features, --xray-image-ids and --normalize belong to feature mode: "
             "add --ct-report-features and --xray-report-features");
  const auto started = std::chrono::steady_clock::now();
  Sources src;
  if (f.featureMode())
    featureSources(src, f, cfg, dev);
  else
    teacherSources(src, f, cfg, dev);
  const std::string out = f.prepareOut ? f.prepareOut() : std::string(".");
  const auto work = stdfs::path(out) / "retrieve-work";
  auto& job = src.job;
  job.fingerprint.set("mode", src.mode).set("device", dev.str());  // CPU and GPU kernels round differently
  job.chunk = f.chunk;
  job.topk.k = f.topK;
  job.topk.dbBlock = f.block;
  job.topk.queryBlock = f.queryBlock;
  job.topk.precision = retrieval::parsePrecision(f.precision);
  job.stop = [after = f.stopAfter](std::int64_t computed) {
    return (after >= 0 && computed >= after) || app::stopRequested();
  };
  if (f.topK > job.nDatabase)
    log::warn("retrieve", "--top-k {} but the X-ray corpus has only {} reports: keeping all {} per CT", f.topK,
              job.nDatabase, job.nDatabase);
  if (f.fresh && stdfs::exists(work)) {
    log::info("retrieve", "--fresh: removing `{}`", work.string());
    stdfs::remove_all(work);
  }
  const auto run = retrieval::runChunked(job, work);
  if (src.textCache) src.textCache->save();  // once, not per chunk: the file holds every cached report
  if (!run.complete) {
    log::warn("retrieve",
              "stopped{}: {} chunk(s) computed now, {} resumed; they are kept in `{}`; run the same command again to "
              "resume",
              f.stopAfter >= 0 && !app::stopRequested() ? " (--stop-after-chunks)" : "", run.chunksComputed,
              run.chunksResumed, work.string());
    result.out = out;
    return result;
  }
  const auto& r = run.topk;
  const auto n = r.indices.size(0), k = r.indices.size(1);

  const auto pairing = (stdfs::path(out) / "pairing.csv").string();
  retrieval::writePairing(pairing, src.ctIds, src.xrayIds, r);
  data::TeacherFeatures tf;
  tf.ids = src.ctIds;
  if (src.imageRows) {
    // Features of each distinct kept X-ray once, then placed at every (CT, rank) that keeps it.
    const auto kept = src.imageRows(run.keptRows);
    const auto pos = torch::searchsorted(run.keptRows, r.indices.flatten());
    tf.candidates = kept.index_select(0, pos).view({n, k, kept.size(1)});
  } else {
    tf.candidates = run.imageFeatures;
  }
  tf.h_star = tf.candidates.select(1, 0);
  tf.scores = r.scores;
  tf.report_embedding = run.queryEmbedding;
  if (src.mode == "teacher")  // checked by task biud
    tf.fingerprint = teacherFingerprint(src.teacher->checkpoint, *src.ct, *src.cxr, cfg.data.report_sections);
  tf.save(data::teacherFeaturesPath(pairing));

  nlohmann::json j;
  j["mode"] = src.mode;
  j["n_ct"] = n;
  j["n_xray"] = job.nDatabase;
  j["top_k"] = k;
  j["precision"] = f.precision;
  j["block"] = f.block;
  j["query_block"] = std::min(f.queryBlock, f.chunk);
  j["mean_top1_score"] = r.scores.select(1, 0).mean().item<double>();
  // How far below rank 1 ranks 2..K score on average: the scale data.pairing_tau must match.
  std::vector<double> gaps;
  for (std::int64_t c = 1; c < k; ++c)
    gaps.push_back((r.scores.select(1, 0) - r.scores.select(1, c)).mean().item<double>());
  j["mean_gap_below_top1"] = gaps;
  j["distinct_xrays_used"] = run.distinctImages;
  j["chunk"] = f.chunk;
  j["chunks_computed"] = run.chunksComputed;
  j["chunks_resumed"] = run.chunksResumed;
  // The top-K pass alone (the chunks computed by this process), and its multiply rate when it
  // computed them all.
  j["search_seconds"] = run.searchSeconds;
  if (run.searchSeconds > 0 && run.chunksResumed == 0)
    j["search_gflops"] = 2.0 * static_cast<double>(n) * static_cast<double>(job.nDatabase) *
                         static_cast<double>(run.queryEmbedding.size(1)) / run.searchSeconds / 1e9;
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (src.teacher) j["teacher"] = src.teacher->checkpoint;
  // Diagnostics: how often the paired X-ray's labels equal the CT's (shared label columns).
  if (!src.ct && !cfg.data.manifest.empty() && stdfs::exists(cfg.data.manifest))
    src.ct.emplace(image::readManifest(cfg.data.manifest));
  if (!src.cxr && !cfg.data.xray_manifest.empty() && stdfs::exists(cfg.data.xray_manifest))
    src.cxr.emplace(image::readManifest(cfg.data.xray_manifest));
  int compared = 0;
  std::optional<std::pair<double, std::size_t>> agreement;
  if (src.ct && src.cxr) agreement = labelAgreement(*src.ct, *src.cxr, src.ctIds, src.xrayIds, r.indices, compared);
  if (agreement) {
    j["label_set_agreement_top1"] = agreement->first;
    j["shared_label_columns"] = agreement->second;
    j["label_pairs_compared"] = compared;
  }
  fs::atomicWrite(stdfs::path(out) / "retrieve.json", j.dump(2));
  // The final files are whole on disk (atomic writes) before the chunks go.
  if (!f.keepWork) stdfs::remove_all(work);
  log::info("retrieve", "paired {} CTs with {} X-ray reports: mean top-1 score {:.3f}{}; search {:.1f} s; wrote {}", n,
            job.nDatabase, j["mean_top1_score"].get<double>(),
            agreement ? fmt::format(", identical finding sets for {:.1f}% of pairs", 100.0 * agreement->first) : "",
            run.searchSeconds, pairing);
  result.complete = true;
  result.out = out;
  result.pairing = pairing;
  result.json = std::move(j);
  return result;
}

}  // namespace biud::evaluate
