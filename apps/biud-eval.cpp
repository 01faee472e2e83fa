// biud-eval: metrics from files — classification (AUROC/AP/F1/... with bootstrap CIs and plots),
// report generation (BLEU/METEOR/ROUGE-L/CIDEr-D), clinical efficacy, retrieval, DeLong, readers.
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/eval/Classification.h"
#include "biud/eval/Clinical.h"
#include "biud/eval/DeLong.h"
#include "biud/eval/EvalIo.h"
#include "biud/eval/Figures.h"
#include "biud/eval/Nlg.h"
#include "biud/eval/Plot.h"
#include "biud/eval/Protocols.h"
#include "biud/eval/Retrieval.h"

namespace ev = biud::eval;
namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

void writeJson(const std::string& dir, const json& j) {
  const auto path = stdfs::path(dir) / "eval.json";
  biud::fs::atomicWrite(path, j.dump(2) + "\n");
  biud::log::info("eval", "wrote {}", path.string());
}

/// `name=path` or `path` (name = file stem).
std::pair<std::string, std::string> namedPath(const std::string& s) {
  const auto eq = s.find('=');
  if (eq != std::string::npos && eq > 0 && !biud::fs::stdfs::exists(s)) return {s.substr(0, eq), s.substr(eq + 1)};
  return {stdfs::path(s).stem().string(), s};
}

/// Column `l` of the known labels: scores and 0/1 labels.
void column(const ev::LabeledPredictions& d, const std::vector<std::vector<double>>& probs, std::size_t l, std::vector<double>& s,
            std::vector<int>& y) {
  s.clear();
  y.clear();
  for (std::size_t i = 0; i < d.ids.size(); ++i)
    if (!std::isnan(d.labels[i][l])) {
      s.push_back(probs[i][l]);
      y.push_back(static_cast<int>(d.labels[i][l]));
    }
}

}  // namespace

int main(int argc, char** argv) {
  biud::app::App app("biud-eval",
                     "Evaluation metrics from files. Subcommands: classification, nlg, clinical, retrieval, delong, readers.\n"
                     "Each writes eval.json (and plots/ where relevant) into --out. See docs/eval.md for formats.");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kSeed);
  auto& cli = app.cli();
  cli.require_subcommand(1);

  // classification
  std::vector<std::string> preds;
  std::string labels, valPred, valLabels, threshold;
  int bootstrap = -1;
  double ci = -1;
  bool noPlots = false;
  auto* cls = cli.add_subcommand("classification", "per-finding AUROC, AP, F1, accuracy, sensitivity, specificity with bootstrap CIs");
  cls->add_option("--pred", preds,
                  "predictions CSV (id + one probability column per finding); repeat for several models, optionally NAME=FILE; "
                  "the first model fills per_label/macro, all models go to models.<name> and the ROC figure")
      ->required();
  cls->add_option("--labels", labels, "labels CSV (id + one column per finding: 1, 0, or empty = unknown)")->required()->check(CLI::ExistingFile);
  cls->add_option("--threshold", threshold,
                  "operating point: youden (per finding, on these data), val (Youden on --val-pred/--val-labels) or a number "
                  "(default: eval.threshold)");
  cls->add_option("--val-pred", valPred, "validation predictions CSV (for --threshold val)")->check(CLI::ExistingFile);
  cls->add_option("--val-labels", valLabels, "validation labels CSV (for --threshold val)")->check(CLI::ExistingFile);
  cls->add_option("--bootstrap", bootstrap, "bootstrap resamples for the CIs, 0 = none (default: eval.bootstrap = 1000)");
  cls->add_option("--ci", ci, "confidence level of the intervals (default: eval.ci = 0.95)");
  cls->add_flag("--no-plots", noPlots, "skip the PNG figures (default: eval.plots)");
  std::string clsProtocol;
  cls->add_option("--protocol", clsProtocol,
                  "biud, or ct-clip: also CT-CLIP's metrics of the first model under `ct_clip` (its threshold rule, weighted F1, "
                  "accuracy, precision; docs/eval.md) (default: eval.zeroshot_protocol)")
      ->check(CLI::IsMember({"biud", "ct-clip"}));

  // nlg
  std::string hyp, ref;
  auto* nlg = cli.add_subcommand("nlg", "BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of generated reports");
  nlg->add_option("--hyp", hyp, "generated reports: CSV with id,text or a text file with one report per line")->required()->check(CLI::ExistingFile);
  nlg->add_option("--ref", ref, "reference reports, same format (a CSV may repeat an id for several references)")
      ->required()
      ->check(CLI::ExistingFile);
  std::string nlgProtocol;
  nlg->add_option("--protocol", nlgProtocol,
                  "biud (one punctuation-free tokenisation, nltk BLEU) or ct2rep (CT2Rep's report cleaning, pycocoevalcap BLEU and "
                  "ROUGE-L; docs/eval.md) (default: eval.nlg_protocol)")
      ->check(CLI::IsMember({"biud", "ct2rep"}));

  // clinical
  std::string cePred, ceRef;
  auto* clin = cli.add_subcommand("clinical", "finding-level precision/recall/F1 (micro and macro) of extracted report labels");
  clin->add_option("--pred", cePred, "findings of the generated reports: CSV id + one 0/1 column per finding")->required()->check(CLI::ExistingFile);
  clin->add_option("--ref", ceRef, "findings of the reference reports: same layout (empty = unknown, excluded)")
      ->required()
      ->check(CLI::ExistingFile);

  // retrieval
  std::string sim, embA, embB;
  std::vector<int> ks = {1, 5, 10};
  auto* ret = cli.add_subcommand("retrieval", "Recall@K, mAP and median rank in both directions");
  ret->add_option("--sim", sim, "similarity matrix: CSV (optional id column, header = gallery ids) or .npy; row i matches the "
                               "column with the same id (or column i)")
      ->check(CLI::ExistingFile);
  ret->add_option("--emb-a", embA, "embeddings of modality A (CSV id + dims, or .npy rows); cosine similarity to --emb-b")
      ->check(CLI::ExistingFile);
  ret->add_option("--emb-b", embB, "embeddings of modality B, same ids/rows as --emb-a")->check(CLI::ExistingFile);
  ret->add_option("--k", ks, "K values for Recall@K (default 1 5 10)");

  // delong
  std::string dPred1, dPred2, dLabels;
  auto* dl = cli.add_subcommand("delong", "DeLong test of two correlated AUROCs per finding (same cases, two models)");
  dl->add_option("--pred1", dPred1, "predictions of model 1 (CSV id + findings)")->required()->check(CLI::ExistingFile);
  dl->add_option("--pred2", dPred2, "predictions of model 2 (same ids and findings)")->required()->check(CLI::ExistingFile);
  dl->add_option("--labels", dLabels, "labels CSV (id + 1/0/empty per finding)")->required()->check(CLI::ExistingFile);

  // readers
  std::string rPred, rLabels, rReaders;
  auto* rd = cli.add_subcommand("readers", "reader study: model sensitivity at each reader's specificity, with a ROC figure");
  rd->add_option("--pred", rPred, "model predictions CSV (id + findings)")->required()->check(CLI::ExistingFile);
  rd->add_option("--labels", rLabels, "labels CSV (id + findings)")->required()->check(CLI::ExistingFile);
  rd->add_option("--readers", rReaders, "readers CSV: reader, finding (optional when there is one finding), sensitivity, specificity")
      ->required()
      ->check(CLI::ExistingFile);

  // Common flags (--out, --config, --seed, ...) may follow the subcommand.
  for (auto* sc : {cls, nlg, clin, ret, dl, rd}) sc->fallthrough();

  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "--out DIR is required (eval.json and plots/ are written there)");
    const std::string out = app.out();
    biud::fs::makeDirs(out);
    const bool plots = cfg.eval.plots && !noPlots;

    if (cls->parsed()) {
      ev::ClassificationOptions opt;
      opt.bootstrap = bootstrap >= 0 ? bootstrap : cfg.eval.bootstrap;
      opt.ci = ci > 0 ? ci : cfg.eval.ci;
      opt.seed = static_cast<std::uint64_t>(cfg.seed);
      opt.progress = !app.quiet();
      const std::string mode = threshold.empty() ? cfg.eval.threshold : threshold;
      std::vector<std::pair<std::string, std::string>> models;
      for (const auto& p : preds) models.push_back(namedPath(p));
      const auto data = ev::loadLabeledPredictions(models[0].second, labels);
      if (mode == "youden") {
        opt.thresholdMode = "youden";
      } else if (mode == "val") {
        BIUD_CHECK(!valPred.empty() && !valLabels.empty(), biud::ConfigError,
                   "--threshold val needs --val-pred and --val-labels (validation predictions and labels)");
        opt.thresholdMode = "given";
        const auto val = ev::loadLabeledPredictions(valPred, valLabels);
        for (const auto& f : data.findings) {
          const auto it = std::find(val.findings.begin(), val.findings.end(), f);
          BIUD_CHECK(it != val.findings.end(), biud::DataError, "{}: column `{}` missing (needed for the validation threshold)",
                     valLabels, f);
          std::vector<double> s;
          std::vector<int> y;
          column(val, val.probs, static_cast<std::size_t>(it - val.findings.begin()), s, y);
          double t = s.empty() ? NAN : ev::youdenThreshold(s, y);
          if (std::isnan(t)) {
            biud::log::warn("eval", "finding `{}`: validation set has one class; threshold 0.5", f);
            t = 0.5;
          }
          opt.thresholds[f] = t;
        }
      } else {
        double t;
        BIUD_CHECK(ev::parseDouble(mode, t) && std::isfinite(t), biud::ConfigError,
                   "--threshold `{}`: use youden, val or a number such as 0.5", mode);
        opt.thresholdMode = "fixed";
        opt.fixedThreshold = t;
      }
      std::vector<ev::ModelPredictions> mps;
      for (std::size_t m = 0; m < models.size(); ++m)
        mps.push_back({models[m].first, m == 0 ? data.probs : ev::loadPredictionsLike(models[m].second, data)});
      biud::log::info("eval", "{} cases, {} findings, {} model(s)", data.ids.size(), data.findings.size(), mps.size());
      json j = ev::evaluateModels(mps, data.labels, data.findings, opt, plots ? (stdfs::path(out) / "plots").string() : "");
      j["task"] = "classification";
      j["n_cases"] = data.ids.size();
      const std::string protocol = clsProtocol.empty() ? cfg.eval.zeroshot_protocol : clsProtocol;
      j["protocol"] = protocol;
      if (protocol == "ct-clip") {
        const auto cc = ev::evaluateCtClip(data.probs, data.labels, data.findings);
        for (const auto& w : cc.warnings) biud::log::warn("eval", "{}", w);
        j["ct_clip"] = cc.toJson();
        biud::log::info("eval", "CT-CLIP protocol, macro: AUROC {:.4f}  F1 (weighted) {:.4f}  accuracy {:.4f}  precision {:.4f}",
                        cc.auroc, cc.f1, cc.accuracy, cc.precision);
      }
      writeJson(out, j);
      return 0;
    }

    if (nlg->parsed()) {
      const auto h = ev::readTexts(hyp), r = ev::readTexts(ref);
      std::map<std::string, std::size_t> refAt;
      for (std::size_t i = 0; i < r.ids.size(); ++i) refAt[r.ids[i]] = i;
      std::vector<std::string> hs;
      std::vector<std::vector<std::string>> rs;
      for (std::size_t i = 0; i < h.ids.size(); ++i) {
        auto it = refAt.find(h.ids[i]);
        BIUD_CHECK(it != refAt.end(), biud::DataError, "id `{}` is in {} but not in {} (every generated report needs a reference)",
                   h.ids[i], hyp, ref);
        BIUD_CHECK(h.texts[i].size() == 1, biud::DataError, "{}: id `{}` appears {} times (one generated report per id)", hyp, h.ids[i],
                   h.texts[i].size());
        hs.push_back(h.texts[i][0]);
        rs.push_back(r.texts[it->second]);
      }
      if (r.ids.size() != h.ids.size())
        biud::log::warn("eval", "{} has {} ids, {} has {}: only the generated reports' ids are scored", ref, r.ids.size(), hyp,
                        h.ids.size());
      const std::string protocol = nlgProtocol.empty() ? cfg.eval.nlg_protocol : nlgProtocol;
      const auto s = ev::evaluateNlgProtocol(protocol, hs, rs);
      json j = s.toJson();
      j["task"] = "nlg";
      j["protocol"] = protocol;
      j["tokenization"] = ev::nlgTokenization(protocol);
      j["meteor_note"] = "exact + Porter-stem METEOR 1.5 re-implementation (no synonyms/paraphrases); see docs/eval.md";
      biud::log::info("eval", "BLEU-4 {:.4f}  METEOR {:.4f}  ROUGE-L {:.4f}  CIDEr-D {:.4f}", s.bleu[3], s.meteor, s.rougeL, s.cider);
      writeJson(out, j);
      return 0;
    }

    if (clin->parsed()) {
      const auto p = ev::readNumericTable(cePred), r = ev::readNumericTable(ceRef);
      std::vector<std::vector<double>> pv, rv;
      for (std::size_t i = 0; i < r.ids.size(); ++i) {
        auto it = p.rowOf.find(r.ids[i]);
        BIUD_CHECK(it != p.rowOf.end(), biud::DataError, "id `{}` is in {} but not in {}", r.ids[i], ceRef, cePred);
        std::vector<double> row;
        for (const auto& f : r.columns) {
          const auto c = std::find(p.columns.begin(), p.columns.end(), f);
          BIUD_CHECK(c != p.columns.end(), biud::DataError, "{}: column `{}` missing (the references have it)", cePred, f);
          const double v = p.values[it->second][c - p.columns.begin()];
          BIUD_CHECK(v == 0 || v == 1, biud::DataError, "{}: id `{}`, column `{}`: {} must be 0 or 1", cePred, r.ids[i], f, v);
          row.push_back(v);
        }
        pv.push_back(row);
        rv.push_back(r.values[i]);
      }
      json j = ev::clinicalEfficacy(pv, rv, r.columns).toJson();
      j["task"] = "clinical";
      writeJson(out, j);
      return 0;
    }

    if (ret->parsed()) {
      ev::Matrix S;
      std::vector<std::string> qIds, gIds;
      if (!sim.empty()) {
        BIUD_CHECK(embA.empty() && embB.empty(), biud::ConfigError, "give either --sim or --emb-a/--emb-b, not both");
        S = ev::readMatrix(sim, &qIds, &gIds);
        if (gIds.empty() || gIds.size() != S[0].size()) {
          gIds.clear();
          for (std::size_t j = 0; j < S[0].size(); ++j) gIds.push_back(std::to_string(j));
          qIds.clear();
          for (std::size_t i = 0; i < S.size(); ++i) qIds.push_back(std::to_string(i));
        } else if (std::count_if(qIds.begin(), qIds.end(), [&](const std::string& q) {
                     return std::find(gIds.begin(), gIds.end(), q) != gIds.end();
                   }) == 0) {
          // Header names are not ids (e.g. c0, c1, ...): fall back to the diagonal.
          for (std::size_t i = 0; i < qIds.size(); ++i) qIds[i] = std::to_string(i);
          for (std::size_t j = 0; j < gIds.size(); ++j) gIds[j] = std::to_string(j);
        }
      } else {
        BIUD_CHECK(!embA.empty() && !embB.empty(), biud::ConfigError, "retrieval needs --sim, or both --emb-a and --emb-b");
        const auto A = ev::readMatrix(embA, &qIds), B = ev::readMatrix(embB, &gIds);
        S = ev::cosineSimilarity(A, B);
      }
      const auto ab = ev::retrievalScores(S, qIds, gIds, ks), ba = ev::retrievalScores(ev::transpose(S), gIds, qIds, ks);
      json j;
      j["task"] = "retrieval";
      j["a_to_b"] = ab.toJson();
      j["b_to_a"] = ba.toJson();
      j["ties"] = "pessimistic (equal scores rank ahead of the relevant item)";
      biud::log::info("eval", "A->B R@1 {:.4f} R@5 {:.4f} mAP {:.4f};  B->A R@1 {:.4f} mAP {:.4f}", ab.recall[0],
                      ab.recall.size() > 1 ? ab.recall[1] : NAN, ab.map, ba.recall[0], ba.map);
      writeJson(out, j);
      return 0;
    }

    if (dl->parsed()) {
      const auto data = ev::loadLabeledPredictions(dPred1, dLabels);
      const auto p2 = ev::loadPredictionsLike(dPred2, data);
      json per = json::object();
      for (std::size_t l = 0; l < data.findings.size(); ++l) {
        std::vector<double> s1, s2;
        std::vector<int> y;
        column(data, data.probs, l, s1, y);
        column(data, p2, l, s2, y);
        const bool two = std::count(y.begin(), y.end(), 1) > 0 && std::count(y.begin(), y.end(), 0) > 0;
        if (!two) {
          biud::log::warn("eval", "finding `{}`: one class only; DeLong test skipped (null)", data.findings[l]);
          per[data.findings[l]] = nullptr;
          continue;
        }
        const auto r = ev::delongTest(s1, s2, y, cfg.eval.ci);
        auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        per[data.findings[l]] = {{"auc1", r.auc1}, {"auc2", r.auc2}, {"diff", r.diff}, {"z", num(r.z)}, {"p", r.p},
                                 {"diff_ci", {r.ciLo, r.ciHi}}, {"n_pos", r.nPos}, {"n_neg", r.nNeg}};
      }
      writeJson(out, {{"task", "delong"}, {"model1", dPred1}, {"model2", dPred2}, {"ci", cfg.eval.ci}, {"per_label", per}});
      return 0;
    }

    if (rd->parsed()) {
      const auto data = ev::loadLabeledPredictions(rPred, rLabels);
      const auto readers = ev::readReaders(rReaders);
      std::map<std::string, std::vector<ev::plot::ReaderPoint>> byFinding;
      for (const auto& r : readers) {
        std::string f = r.finding;
        if (f.empty()) {
          BIUD_CHECK(data.findings.size() == 1, biud::DataError,
                     "{}: reader `{}` has no finding but {} has {} findings (add a `finding` column)", rReaders, r.reader, rLabels,
                     data.findings.size());
          f = data.findings[0];
        }
        BIUD_CHECK(std::find(data.findings.begin(), data.findings.end(), f) != data.findings.end(), biud::DataError,
                   "{}: reader `{}`: finding `{}` is not a column of {}", rReaders, r.reader, f, rLabels);
        byFinding[f].push_back({r.reader, r.sensitivity, r.specificity, NAN});
      }
      json per = json::object();
      for (auto& [f, pts] : byFinding) {
        const std::size_t l = static_cast<std::size_t>(std::find(data.findings.begin(), data.findings.end(), f) - data.findings.begin());
        std::vector<double> s;
        std::vector<int> y;
        column(data, data.probs, l, s, y);
        const auto roc = ev::rocCurve(s, y, false);
        const double auc = ev::rocAuc(s, y);
        BIUD_CHECK(std::isfinite(auc), biud::DataError, "finding `{}`: the labels have one class only; no ROC curve", f);
        json rs = json::array();
        for (auto& p : pts) {
          p.modelSensitivity = ev::sensitivityAtSpecificity(roc, p.specificity);
          rs.push_back({{"reader", p.reader}, {"sensitivity", p.sensitivity}, {"specificity", p.specificity},
                        {"model_sensitivity_at_reader_specificity", p.modelSensitivity},
                        {"model_minus_reader", p.modelSensitivity - p.sensitivity},
                        {"model_specificity_at_reader_sensitivity", ev::specificityAtSensitivity(roc, p.sensitivity)}});
        }
        per[f] = {{"auroc", auc}, {"readers", rs}};
        if (plots) {
          biud::fs::makeDirs(stdfs::path(out) / "plots");
          ev::plot::readerStudy((stdfs::path(out) / "plots" / ("readers_" + ev::safeFileName(f) + ".png")).string(), "Reader study: " + f,
                                ev::rocCurve(s, y), auc, pts);
        }
      }
      writeJson(out, {{"task", "readers"}, {"per_label", per}});
      return 0;
    }
    return biud::app::kExitUsage;
  });
}
