// biud-retrieve: language-guided retrieval (METHOD §2). Pairs every CT study with the X-ray of
// the teacher corpus whose report is closest to its own, embedding both report sets with the
// frozen teacher's text tower; writes pairing.csv and the cached teacher features.
#include <torch/torch.h>

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
#include "biud/retrieval/TopK.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/Tasks.h"
#include "biud/train/TeacherFeatures.h"
#include "biud/train/TextBatch.h"
#include "biud/train/TextCache.h"

using namespace biud;

namespace {

torch::Tensor embedTexts(train::LoadedRun& t, const std::vector<std::string>& texts, const c10::Device& dev,
                         const std::string& label) {
  torch::NoGradGuard ng;
  if (t.cfg.model.text_encoder.frozen) {
    // The teacher's report encoder was frozen (e.g. a pretrained BERT): its features may already be
    // in the text-feature cache written while the teacher trained.
    auto cache = train::makeFrozenTextFeatures(t.cfg, t.clip->text_encoder, *t.tokenizer, dev, /*writer=*/true);
    cache->precompute(texts, label);
    return t.clip->text_proj->forward(cache->get(texts)).cpu();
  }
  std::vector<torch::Tensor> out;
  Progress bar(label, texts.size(), "report");
  for (size_t b = 0; b < texts.size(); b += 128) {
    std::vector<std::string> part(texts.begin() + static_cast<long>(b),
                                  texts.begin() + static_cast<long>(std::min(texts.size(), b + 128)));
    auto tb = train::tokenizeBatch(*t.tokenizer, part, t.cfg.text.max_length);
    out.push_back(t.clip->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu());
    bar.advance(part.size());
  }
  bar.finish();
  return torch::cat(out);
}

}  // namespace

int main(int argc, char** argv) {
  app::App app("biud-retrieve",
               "Language-guided retrieval: embed the CT reports (data.manifest) and the X-ray corpus reports\n"
               "(data.xray_manifest) with the frozen teacher's text encoder (model.teacher, a clip2d run), pair every\n"
               "CT with its top-K closest X-ray reports (blocked matrix multiply, bounded memory), and cache the\n"
               "teacher features h* of the best X-ray. Writes <out>/pairing.csv (ct_id, xray_id, score, rank),\n"
               "<out>/teacher_features.safetensors and <out>/retrieve.json.");
  app.addCommon(app::kConfig | app::kOut | app::kThreads | app::kDevice);
  std::string teacher;
  int topK = 5;
  std::int64_t block = 8192;
  app.cli().add_option("--teacher", teacher, "teacher run folder (default: model.teacher)");
  app.cli().add_option("--top-k", topK, "X-ray reports kept per CT in pairing.csv (rank 1 is used for h*)")->check(CLI::Range(1, 1000));
  app.cli().add_option("--block", block, "database rows scored per matrix multiply (memory bound)")->check(CLI::Range(1, 1 << 24));
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    train::absolutizePaths(cfg);
    if (teacher.empty()) teacher = cfg.model.teacher;
    BIUD_CHECK(!teacher.empty(), ConfigError, "no teacher: pass --teacher RUN or set model.teacher (a clip2d run folder)");
    BIUD_CHECK(!cfg.data.manifest.empty() && !cfg.data.xray_manifest.empty(), ConfigError,
               "biud-retrieve needs data.manifest (CT reports) and data.xray_manifest (the X-ray corpus)");
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    const std::string out = app.prepareOutDir("retrieve");
    auto t = train::loadRun(teacher, dev);
    BIUD_CHECK(t.cfg.task == "clip2d", ConfigError, "--teacher `{}` is a `{}` run; the teacher is a clip2d run", teacher, t.cfg.task);

    const auto ct = image::readManifest(cfg.data.manifest);
    const auto cxr = image::readManifest(cfg.data.xray_manifest);
    std::vector<std::string> ctText, cxrText;
    for (auto& it : ct.items) ctText.push_back(it.text(cfg.data.report_sections));
    for (auto& it : cxr.items) cxrText.push_back(it.text(cfg.data.report_sections));
    const auto e = embedTexts(t, cxrText, dev, "embed X-ray reports");
    const auto q = embedTexts(t, ctText, dev, "embed CT reports");

    retrieval::TopKOptions o;
    o.k = topK;
    o.dbBlock = block;
    Progress bar("retrieve", static_cast<std::uint64_t>(e.size(0)), "row");
    o.onBlock = [&](std::int64_t done) { bar.set(static_cast<std::uint64_t>(done)); };
    auto r = retrieval::blockedTopK(q, e, o);
    bar.finish();

    std::vector<std::vector<std::string>> rows;
    const auto k = r.indices.size(1);
    for (std::int64_t i = 0; i < r.indices.size(0); ++i)
      for (std::int64_t j = 0; j < k; ++j)
        rows.push_back({ct.items[static_cast<size_t>(i)].id,
                        cxr.items[static_cast<size_t>(r.indices[i][j].item<std::int64_t>())].id,
                        fmt::format("{:.6f}", r.scores[i][j].item<float>()), std::to_string(j + 1)});
    const auto pairing = (std::filesystem::path(out) / "pairing.csv").string();
    csv::write(pairing, {"ct_id", "xray_id", "score", "rank"}, rows);

    // Teacher image features of each CT's best X-ray (each distinct X-ray embedded once).
    std::map<std::int64_t, torch::Tensor> emb;
    {
      torch::NoGradGuard ng;
      auto best = r.indices.select(1, 0);
      Progress b2("teacher features", static_cast<std::uint64_t>(best.size(0)), "CT");
      for (std::int64_t i = 0; i < best.size(0); ++i) {
        const auto x = best[i].item<std::int64_t>();
        if (!emb.count(x)) {
          const auto& item = cxr.items[static_cast<size_t>(x)];
          auto img = image::preprocessXray(image::readImage2D(item.images.front()), t.cfg.data.xray);
          auto ten = torch::from_blob(img.data.data(), {1, 1, img.size[1], img.size[0]}, torch::kFloat32).clone();
          emb[x] = t.clip->encodeImage(ten.to(dev)).cpu().squeeze(0);
        }
        b2.advance();
      }
      b2.finish();
      train::TeacherFeatures tf;
      std::vector<torch::Tensor> h;
      for (std::int64_t i = 0; i < best.size(0); ++i) {
        tf.ids.push_back(ct.items[static_cast<size_t>(i)].id);
        h.push_back(emb[best[i].item<std::int64_t>()]);
      }
      tf.h_star = torch::stack(h);
      tf.report_embedding = q;
      tf.save(train::teacherFeaturesPath(pairing));
    }

    // Diagnostics: how often the paired X-ray's labels equal the CT's (shared label columns).
    nlohmann::json j;
    j["n_ct"] = ct.items.size();
    j["n_xray"] = cxr.items.size();
    j["top_k"] = k;
    j["mean_top1_score"] = r.scores.select(1, 0).mean().item<double>();
    j["distinct_xrays_used"] = emb.size();
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
    log::info("retrieve", "paired {} CTs with {} X-ray reports: mean top-1 score {:.3f}{}; wrote {}", ct.items.size(),
              cxr.items.size(), j["mean_top1_score"].get<double>(),
              compared ? fmt::format(", identical finding sets for {:.1f}% of pairs", 100.0 * agree / compared) : "",
              pairing);
    return app::kExitOk;
  });
}
