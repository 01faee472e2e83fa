// Issue 21's fixes of the biud task: semantic anchors from prompts, fingerprinted teacher
// features, the linear distillation adapter, the teacher-shuffle control, findings-only EFM and
// the diagnostics logged per step (relation entropies, RoCo false-negative precision/recall).
#include <cmath>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/data/TextBatch.h"
#include "biud/evaluate/Teacher.h"
#include "biud/image/Manifest.h"
#include "biud/models/MethodModels.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/Entities.h"
#include "biud/train/Task.h"
#include "biud/train/Tasks.h"
#include "common/TestUtil.h"
#include "train/TinyWorld.h"

namespace biud::test {
namespace {

using torch::Tensor;

/// A clip2d expert with random weights: `<dir>/<name>/config.resolved.yaml` and one checkpoint.
/// Writing it again with another seed is "the expert was retrained".
std::string writeExpert(const TinyWorld& w, const std::string& name, int seed) {
  Config ec = w.cfg;
  ec.task = "clip2d";
  ec.model.teacher = "";
  torch::manual_seed(static_cast<std::uint64_t>(seed));
  auto tok = text::makeTokenizer(ec.text);
  models::ClipModel m(ec, ec.model.xray_encoder, tok->vocabSize());
  const auto run = w.dir / name;
  const auto ck = run / "checkpoints/step_000001";
  stdfs::create_directories(ck);
  tensor::saveModule(*m, (ck / "model.safetensors").string());
  writeText(ck / "state.json", "{}");
  writeText(run / "checkpoints/latest", "step_000001");
  writeText(run / "config.resolved.yaml", config::toYaml(ec));
  return run.string();
}

/// Teacher features of width d for the TinyWorld CTs in `dir` (rows from `rows`, or random).
std::string writeFeatures(const TinyWorld& w, const std::string& dir, std::int64_t d, Tensor rows = {}) {
  data::TeacherFeatures tf;
  for (int n = 0; n < kCts; ++n) tf.ids.push_back(fmt::format("ct{:02d}", n));
  tf.h_star = rows.defined() ? rows
                             : torch::nn::functional::normalize(torch::randn({kCts, d}),
                                                                torch::nn::functional::NormalizeFuncOptions().dim(1));
  tf.report_embedding = tf.h_star.clone();
  const auto pairing = (w.dir / dir / "pairing.csv").string();
  stdfs::create_directories(w.dir / dir);
  tf.save(data::teacherFeaturesPath(pairing));
  return pairing;
}

std::unique_ptr<train::Task> makeBiud(const TinyWorld& w, const Config& cfg) {
  train::TaskContext ctx;
  ctx.runDir = (w.dir / "run").string();
  stdfs::create_directories(ctx.runDir);
  train::registerBuiltinTasks();
  return train::makeTask("biud", cfg, ctx);
}

const char* kPrompts = R"(name: tiny
findings:
  - id: lung_nodule
    positive: ["nodule right lung small .", "nodule left lung large ."]
    negative: ["no nodule ."]
  - id: emphysema
    positive: ["emphysema lung ."]
    negative: ["no emphysema .", "normal lung ."]
)";

// loss.sem.anchors: prompts passed validation and then threw at the first step (no anchors were
// ever set). Now the anchors are the expert's text tower on each finding's prompt ensembles:
// checked against the expert model loaded here, each prompt encoded on its own (no batch, no
// padding), ensembles averaged and normalised by hand; the step then has a semantic term over
// the 4 anchors (the loss itself against PyTorch: test_losses BiudTotalWithPromptAnchors).
TEST(BiudFixes, SemanticAnchorsFromPromptsAreTheExpertsPromptEmbeddings) {
  TinyWorld w;
  const auto expert = writeExpert(w, "expert", 3);
  const auto promptsFile = (w.dir / "prompts.yaml").string();
  writeText(promptsFile, kPrompts);
  const auto anchors = evaluate::promptAnchors(expert, promptsFile, torch::kCPU);
  ASSERT_EQ(anchors.sizes(), (std::vector<std::int64_t>{4, w.cfg.model.embed_dim}));

  Config ec = w.cfg;
  ec.task = "clip2d";
  auto tok = text::makeTokenizer(ec.text);
  models::ClipModel m(ec, ec.model.xray_encoder, tok->vocabSize());
  tensor::loadModule(*m, (stdfs::path(expert) / "checkpoints/step_000001/model.safetensors").string());
  m->eval();
  auto one = [&](const std::string& p) {
    torch::NoGradGuard ng;
    auto tb = data::tokenizeBatch(*tok, {p}, ec.text.max_length);
    return m->encodeText(tb.ids, tb.mask)[0];
  };
  auto ensemble = [&](std::vector<std::string> ps) {
    Tensor s = torch::zeros({ec.model.embed_dim});
    for (const auto& p : ps) s = s + one(p) / one(p).norm();
    return s / s.norm();
  };
  const std::vector<Tensor> want = {ensemble({"nodule right lung small .", "nodule left lung large ."}),
                                    ensemble({"emphysema lung ."}), ensemble({"no nodule ."}),
                                    ensemble({"no emphysema .", "normal lung ."})};
  for (size_t r = 0; r < want.size(); ++r)
    EXPECT_LT((anchors[static_cast<std::int64_t>(r)] - want[r]).abs().max().item<double>(), 1e-5) << "anchor " << r;

  Config cfg = w.cfg;
  cfg.task = "biud";
  cfg.model.teacher = expert;
  cfg.data.pairing = writeFeatures(w, "ret", cfg.model.embed_dim);
  cfg.loss.efm.weight = 0;
  cfg.loss.sem.weight = 1.0;
  cfg.loss.sem.anchors = "prompts";
  cfg.loss.sem.prompts = promptsFile;
  auto task = makeBiud(w, cfg);
  train::StepContext sc;
  const auto r = task->trainStep(sc);
  EXPECT_TRUE(std::isfinite(r.loss));
  ASSERT_TRUE(r.metrics.count("sem"));
  EXPECT_TRUE(std::isfinite(r.metrics.at("sem")));
  // p* is a distribution over the 4 anchors (not over the 4 reports of the batch: same count
  // here, so check the entropy bound of K = 4 and that it is not uniform by construction).
  EXPECT_LE(r.metrics.at("sem/entropy_teacher"), std::log(4.0) + 1e-6);
}

// The teacher-features file records the expert and the manifests it was made from; training
// refuses it when the data were regenerated or the expert retrained since (both fingerprints and
// the fix in the message). Through the real biud-retrieve.
TEST(BiudFixes, TeacherFeaturesCarryFingerprintsAndTrainingRefusesStaleOnes) {
  TinyWorld w;
  const auto expert = writeExpert(w, "expert", 3);
  Config cfg = w.cfg;
  cfg.task = "biud";
  cfg.model.teacher = expert;
  cfg.data.xray_manifest = (w.dir / "xr.csv").string();
  cfg.loss.efm.weight = 0;
  const auto cfgFile = w.dir / "cfg.yaml";
  writeText(cfgFile, config::toYaml(cfg));
  const auto out = w.dir / "ret";
  const auto res = run(app("biud-retrieve") + " --config " + quote(cfgFile.string()) + " --out " + quote(out.string()) +
                       " --top-k 1 --threads 1 --quiet 2>&1");
  ASSERT_EQ(res.rc, 0) << res.out;
  cfg.data.pairing = (out / "pairing.csv").string();
  const auto tfPath = data::teacherFeaturesPath(cfg.data.pairing);
  const auto tf = data::TeacherFeatures::load(tfPath);
  const auto ct = image::readManifest(cfg.data.manifest);
  const auto xr = image::readManifest(cfg.data.xray_manifest);
  EXPECT_EQ(tf.fingerprint.expert, evaluate::expertFingerprint(expert));
  EXPECT_EQ(tf.fingerprint.ct_manifest, data::manifestFingerprint(ct, cfg.data.report_sections));
  EXPECT_EQ(tf.fingerprint.xray_manifest, data::manifestFingerprint(xr, cfg.data.report_sections));
  EXPECT_EQ(tf.fingerprint.expert.size(), 16u);
  EXPECT_NO_THROW(makeBiud(w, cfg));  // matching data and expert

  // Regenerated CT data: one report differs, the ids are the same.
  std::string csv = readText(cfg.data.manifest);
  const auto at = csv.find("nodule right lung small");
  ASSERT_NE(at, std::string::npos);
  csv.replace(at, 6, "emphysema");
  Config changed = cfg;
  changed.data.manifest = (w.dir / "ct_regenerated.csv").string();
  writeText(changed.data.manifest, csv);
  const auto nowCt = data::manifestFingerprint(image::readManifest(changed.data.manifest), cfg.data.report_sections);
  ASSERT_NE(nowCt, tf.fingerprint.ct_manifest);
  try {
    makeBiud(w, changed);
    ADD_FAILURE() << "training accepted teacher features of other CT data";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ct_manifest"), std::string::npos) << msg;
    EXPECT_NE(msg.find(tf.fingerprint.ct_manifest), std::string::npos) << msg;
    EXPECT_NE(msg.find(nowCt), std::string::npos) << msg;
    EXPECT_NE(msg.find("re-run biud-retrieve"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("expert: the file"), std::string::npos) << msg;  // the expert did not change
  }

  // Retrained expert: same run folder, other weights.
  writeExpert(w, "expert", 4);
  const auto nowExpert = evaluate::expertFingerprint(expert);
  ASSERT_NE(nowExpert, tf.fingerprint.expert);
  try {
    makeBiud(w, cfg);
    ADD_FAILURE() << "training accepted teacher features of another expert";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("expert"), std::string::npos) << msg;
    EXPECT_NE(msg.find(tf.fingerprint.expert), std::string::npos) << msg;
    EXPECT_NE(msg.find(nowExpert), std::string::npos) << msg;
    EXPECT_NE(msg.find("re-run biud-retrieve"), std::string::npos) << msg;
  }
}

// model.adapter_bias (METHOD §3: A is linear). Default: no trained bias, A x = W x exactly; a
// checkpoint of an affine adapter (older runs) still loads strictly and keeps its bias; a linear
// checkpoint loads into an affine adapter with a zero bias.
TEST(BiudFixes, AdapterIsLinearByDefaultAndAffineCheckpointsStillLoad) {
  EXPECT_FALSE(Config{}.model.adapter_bias);
  TinyWorld w;
  Config c = w.cfg;
  c.task = "biud";
  c.loss.efm.weight = 0;
  auto tok = text::makeTokenizer(c.text);
  torch::manual_seed(5);
  models::BiudModel linear(c, tok->vocabSize(), 6);
  std::set<std::string> params, buffers;
  for (const auto& p : linear->named_parameters()) params.insert(p.key());
  for (const auto& b : linear->named_buffers()) buffers.insert(b.key());
  EXPECT_TRUE(params.count("adapter.proj.weight"));
  EXPECT_FALSE(params.count("adapter.proj.bias")) << "the adapter has a trained bias by default";
  ASSERT_TRUE(buffers.count("adapter.proj.bias"));
  const auto x = torch::randn({3, c.model.embed_dim});
  torch::NoGradGuard ng;
  const auto W = linear->adapter->proj->weight.detach();
  EXPECT_LT((linear->adapter->forward(x) - torch::matmul(x, W.t())).abs().max().item<double>(), 1e-6);

  Config ca = c;
  ca.model.adapter_bias = true;
  models::BiudModel affine(ca, tok->vocabSize(), 6);
  affine->adapter->proj->bias.copy_(torch::randn({6}));
  params.clear();
  for (const auto& p : affine->named_parameters()) params.insert(p.key());
  EXPECT_TRUE(params.count("adapter.proj.bias"));
  const auto affineFile = (w.dir / "affine.safetensors").string();
  tensor::saveModule(*affine, affineFile);
  tensor::loadModule(*linear, affineFile);  // strict
  const auto Wa = affine->adapter->proj->weight.detach(), ba = affine->adapter->proj->bias.detach();
  EXPECT_LT((linear->adapter->forward(x) - (torch::matmul(x, Wa.t()) + ba)).abs().max().item<double>(), 1e-6);

  models::BiudModel fresh(c, tok->vocabSize(), 6);
  const auto linearFile = (w.dir / "linear.safetensors").string();
  tensor::saveModule(*fresh, linearFile);
  tensor::loadModule(*affine, linearFile);  // strict
  EXPECT_EQ(affine->adapter->proj->bias.abs().max().item<double>(), 0.0);
}

// loss.distill.teacher_shuffle: row i gets the h*, candidates and scores of row perm[i]; the
// CTs' own report embeddings stay; the permutation depends on the seed only.
TEST(BiudFixes, TeacherShufflePermutesTheFeatureRows) {
  data::TeacherFeatures tf;
  const int n = 10;
  for (int i = 0; i < n; ++i) tf.ids.push_back("ct" + std::to_string(i));
  tf.candidates = torch::randn({n, 2, 3});
  tf.h_star = tf.candidates.select(1, 0);
  tf.scores = torch::rand({n, 2});
  tf.report_embedding = torch::randn({n, 3});
  const auto cand = tf.candidates.clone(), sc = tf.scores.clone(), rep = tf.report_embedding.clone();
  data::TeacherFeatures again = tf;
  const auto perm = tf.shuffleRows(7);
  auto sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < n; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  int fixed = 0;
  for (int i = 0; i < n; ++i) {
    const auto p = perm[static_cast<size_t>(i)];
    fixed += p == i;
    EXPECT_TRUE(torch::equal(tf.candidates[i], cand[p]));
    EXPECT_TRUE(torch::equal(tf.h_star[i], cand[p][0]));
    EXPECT_TRUE(torch::equal(tf.scores[i], sc[p]));
  }
  EXPECT_LT(fixed, n / 2);
  EXPECT_TRUE(torch::equal(tf.report_embedding, rep));
  again.candidates = cand.clone(), again.scores = sc.clone();
  EXPECT_EQ(again.shuffleRows(7), perm);
  EXPECT_NE(again.shuffleRows(8), perm);
}

// loss.efm.entities: findings. Each TinyWorld report is "<finding> <right|left> lung <small|large> ."
// (the lexicon: one finding word, the anatomy "right/left lung" = 2 tokens, a severity word).
// With p_entity = 1 and p_other = 0 exactly the entity tokens are masked: 4 per report with all
// kinds, 1 (the finding word) with findings only.
TEST(BiudFixes, EfmFindingsOnlyMasksOnlyFindingMentions) {
  TinyWorld w;
  Config cfg = w.cfg;
  cfg.task = "biud";
  cfg.loss.efm.weight = 0.5;
  cfg.loss.efm.p_entity = 1.0;
  cfg.loss.efm.p_other = 0.0;
  cfg.loss.efm.mask_token_frac = 1.0;
  cfg.loss.efm.random_token_frac = 0.0;
  const double b = cfg.data.loader.batch_size;
  for (const std::string kinds : {"all", "findings"}) {
    cfg.loss.efm.entities = kinds;
    auto task = makeBiud(w, cfg);
    train::StepContext sc;
    const auto r = task->trainStep(sc);
    ASSERT_TRUE(r.metrics.count("efm/n_masked"));
    EXPECT_EQ(r.metrics.at("efm/n_masked"), (kinds == "all" ? 4.0 : 1.0) * b) << kinds;
    EXPECT_EQ(r.metrics.at("efm/n_masked_other"), 0.0) << kinds;
  }
}

// The step logs the entropies of the expert's relation distributions P* (pairwise) and p*
// (semantic) and RoCo's false-negative precision/recall against the data set's finding sets.
// Hand-worked: every h* and every teacher report embedding equal -> P* uniform over the B - 1
// other CTs (entropy log 3) and p* uniform over the B = 4 anchors (log 4); every CT labelled
// alike -> every pair is a true false negative (rate 1), so every flagged pair is one
// (precision 1, or NaN when none is flagged).
TEST(BiudFixes, StepLogsRelationEntropiesAndFalseNegativePrecisionRecall) {
  TinyWorld w;
  Config cfg = w.cfg;
  cfg.task = "biud";
  cfg.loss.efm.weight = 0;
  cfg.loss.pair.weight = 1.0;
  cfg.loss.sem.weight = 1.0;
  cfg.loss.roco.fn_by_similarity = false;  // entities only: the reports' finding words differ
  auto same = torch::zeros({kCts, 16});
  same.select(1, 0).fill_(1.0);
  cfg.data.pairing = writeFeatures(w, "same", 16, same);
  std::string csv = readText(cfg.data.manifest), relabelled;
  for (size_t s = 0, e; s < csv.size(); s = e + 1) {
    e = csv.find('\n', s);
    std::string line = csv.substr(s, e - s);
    if (s > 0 && !line.empty()) line.back() = '1';  // lung_nodule = 1 for every CT
    relabelled += line + "\n";
  }
  cfg.data.manifest = (w.dir / "ct_all1.csv").string();
  writeText(cfg.data.manifest, relabelled);
  auto task = makeBiud(w, cfg);
  train::StepContext sc;
  const auto r = task->trainStep(sc);
  for (const char* k : {"pair/entropy_teacher", "pair/entropy_student", "sem/entropy_teacher", "sem/entropy_student",
                        "roco/fn_rate_true", "roco/fn_precision", "roco/fn_recall"})
    ASSERT_TRUE(r.metrics.count(k)) << k;
  EXPECT_NEAR(r.metrics.at("pair/entropy_teacher"), std::log(3.0), 1e-5);
  EXPECT_NEAR(r.metrics.at("sem/entropy_teacher"), std::log(4.0), 1e-5);
  EXPECT_LE(r.metrics.at("pair/entropy_student"), std::log(3.0) + 1e-5);
  EXPECT_EQ(r.metrics.at("roco/fn_rate_true"), 1.0);
  const double p = r.metrics.at("roco/fn_precision");
  EXPECT_TRUE(std::isnan(p) || p == 1.0) << p;
  EXPECT_NEAR(r.metrics.at("roco/fn_recall"), r.metrics.at("roco/fn_rate"), 1e-9);  // all pairs true
}

}  // namespace
}  // namespace biud::test
