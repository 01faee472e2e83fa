#include "biud/eval/EvalJob.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/eval/Clinical.h"
#include "biud/eval/DeLong.h"
#include "biud/eval/Figures.h"
#include "biud/eval/Nlg.h"
#include "biud/eval/Plot.h"
#include "biud/eval/Protocols.h"
#include "biud/eval/Retrieval.h"

namespace biud::eval {

namespace stdfs = std::filesystem;
using nlohmann::json;

void knownColumn(const LabeledPredictions& d, const std::vector<std::vector<double>>& probs, std::size_t finding,
                 std::vector<double>& scores, std::vector<int>& labels) {
  scores.clear();
  labels.clear();
  for (std::size_t i = 0; i < d.ids.size(); ++i)
    if (!std::isnan(d.labels[i][finding])) {
      scores.push_back(probs[i][finding]);
      labels.push_back(static_cast<int>(d.labels[i][finding]));
    }
}

// --- classification --------------------------------------------------------------------------

void applyThresholdRule(const std::string& rule, const std::string& valPred, const std::string& valLabels,
                        const std::vector<std::string>& findings, ClassificationOptions& opt) {
  if (rule == "youden") {
    opt.thresholdMode = "youden";
    return;
  }
  if (rule == "val") {
    BIUD_CHECK(!valPred.empty() && !valLabels.empty(), ConfigError,
               "--threshold val needs --val-pred and --val-labels (validation predictions and labels)");
    const auto val = loadLabeledPredictions(valPred, valLabels);
    // The validation columns of `findings`, in their order.
    std::vector<std::vector<double>> p(val.ids.size()), y(val.ids.size());
    for (const auto& f : findings) {
      const auto it = std::find(val.findings.begin(), val.findings.end(), f);
      BIUD_CHECK(it != val.findings.end(), DataError, "{}: column `{}` missing (needed for the validation threshold)",
                 valLabels, f);
      const auto c = static_cast<std::size_t>(it - val.findings.begin());
      for (std::size_t i = 0; i < val.ids.size(); ++i) {
        p[i].push_back(val.probs[i][c]);
        y[i].push_back(val.labels[i][c]);
      }
    }
    std::vector<std::string> warnings;
    opt.thresholdMode = "given";
    opt.thresholds = validationThresholds(p, y, findings, &warnings);
    for (const auto& w : warnings) log::warn("eval", "{}", w);
    return;
  }
  double t;
  BIUD_CHECK(parseDouble(rule, t) && std::isfinite(t), ConfigError,
             "--threshold `{}`: use youden, val or a number such as 0.5", rule);
  opt.thresholdMode = "fixed";
  opt.fixedThreshold = t;
}

json runClassificationEval(const ClassificationJob& job) {
  BIUD_CHECK(!job.models.empty(), ConfigError, "classification needs at least one --pred file");
  const auto data = loadLabeledPredictions(job.models[0].path, job.labels);
  ClassificationOptions opt = job.options;
  applyThresholdRule(job.threshold, job.valPred, job.valLabels, data.findings, opt);
  std::vector<ModelPredictions> mps;
  for (std::size_t m = 0; m < job.models.size(); ++m)
    mps.push_back({job.models[m].name, m == 0 ? data.probs : loadPredictionsLike(job.models[m].path, data)});
  log::info("eval", "{} cases, {} findings, {} model(s)", data.ids.size(), data.findings.size(), mps.size());
  json j = evaluateModels(mps, data.labels, data.findings, opt, job.plotDir);
  j["task"] = "classification";
  j["n_cases"] = data.ids.size();
  j["protocol"] = job.protocol;
  if (job.protocol == "ct-clip") {
    const auto cc = evaluateCtClip(data.probs, data.labels, data.findings);
    for (const auto& w : cc.warnings) log::warn("eval", "{}", w);
    j["ct_clip"] = cc.toJson();
    log::info("eval", "CT-CLIP protocol, macro: AUROC {:.4f}  F1 (weighted) {:.4f}  accuracy {:.4f}  precision {:.4f}",
              cc.auroc, cc.f1, cc.accuracy, cc.precision);
  }
  return j;
}

// --- report generation and clinical efficacy -------------------------------------------------

AlignedReports alignReports(const Texts& h, const Texts& r, const std::string& hypPath, const std::string& refPath) {
  std::map<std::string, std::size_t> refAt;
  for (std::size_t i = 0; i < r.ids.size(); ++i) refAt[r.ids[i]] = i;
  AlignedReports a;
  for (std::size_t i = 0; i < h.ids.size(); ++i) {
    auto it = refAt.find(h.ids[i]);
    BIUD_CHECK(it != refAt.end(), DataError,
               "id `{}` is in {} but not in {} (every generated report needs a reference)", h.ids[i], hypPath, refPath);
    BIUD_CHECK(h.texts[i].size() == 1, DataError, "{}: id `{}` appears {} times (one generated report per id)", hypPath,
               h.ids[i], h.texts[i].size());
    a.hyps.push_back(h.texts[i][0]);
    a.refs.push_back(r.texts[it->second]);
  }
  if (r.ids.size() != h.ids.size())
    log::warn("eval", "{} has {} ids, {} has {}: only the generated reports' ids are scored", refPath, r.ids.size(),
              hypPath, h.ids.size());
  return a;
}

json runNlgEval(const std::string& hypPath, const std::string& refPath, const std::string& protocol) {
  const auto a = alignReports(readTexts(hypPath), readTexts(refPath), hypPath, refPath);
  const auto s = evaluateNlgProtocol(protocol, a.hyps, a.refs);
  json j = s.toJson();
  j["task"] = "nlg";
  j["protocol"] = protocol;
  j["tokenization"] = nlgTokenization(protocol);
  j["meteor_note"] = "exact + Porter-stem METEOR 1.5 re-implementation (no synonyms/paraphrases); see docs/eval.md";
  log::info("eval", "BLEU-4 {:.4f}  METEOR {:.4f}  ROUGE-L {:.4f}  CIDEr-D {:.4f}", s.bleu[3], s.meteor, s.rougeL,
            s.cider);
  return j;
}

AlignedFindings alignFindings(const NumericTable& p, const NumericTable& r) {
  AlignedFindings a;
  a.findings = r.columns;
  for (std::size_t i = 0; i < r.ids.size(); ++i) {
    auto it = p.rowOf.find(r.ids[i]);
    BIUD_CHECK(it != p.rowOf.end(), DataError, "id `{}` is in {} but not in {}", r.ids[i], r.source, p.source);
    std::vector<double> row;
    for (const auto& f : r.columns) {
      const auto c = std::find(p.columns.begin(), p.columns.end(), f);
      BIUD_CHECK(c != p.columns.end(), DataError, "{}: column `{}` missing (the references have it)", p.source, f);
      const double v = p.values[it->second][static_cast<std::size_t>(c - p.columns.begin())];
      BIUD_CHECK(v == 0 || v == 1, DataError, "{}: id `{}`, column `{}`: {} must be 0 or 1", p.source, r.ids[i], f, v);
      row.push_back(v);
    }
    a.pred.push_back(row);
    a.ref.push_back(r.values[i]);
  }
  return a;
}

json runClinicalEval(const std::string& predPath, const std::string& refPath) {
  NumericTable p = readNumericTable(predPath), r = readNumericTable(refPath);
  p.source = predPath;
  r.source = refPath;
  const auto a = alignFindings(p, r);
  json j = clinicalEfficacy(a.pred, a.ref, a.findings).toJson();
  j["task"] = "clinical";
  return j;
}

// --- retrieval -------------------------------------------------------------------------------

void matchMatrixIds(const Matrix& S, std::vector<std::string>& qIds, std::vector<std::string>& gIds) {
  const std::size_t cols = S.empty() ? 0 : S[0].size();
  const bool shared = std::any_of(qIds.begin(), qIds.end(), [&](const std::string& q) {
    return std::find(gIds.begin(), gIds.end(), q) != gIds.end();
  });
  // No header, a header of the wrong width, or header names that are not ids (c0, c1, ...):
  // row i matches column i.
  if (gIds.empty() || gIds.size() != cols || !shared) {
    qIds.clear();
    gIds.clear();
    for (std::size_t i = 0; i < S.size(); ++i) qIds.push_back(std::to_string(i));
    for (std::size_t j = 0; j < cols; ++j) gIds.push_back(std::to_string(j));
  }
}

json runRetrievalEval(const RetrievalJob& job) {
  Matrix S;
  std::vector<std::string> qIds, gIds;
  if (!job.sim.empty()) {
    BIUD_CHECK(job.embA.empty() && job.embB.empty(), ConfigError, "give either --sim or --emb-a/--emb-b, not both");
    S = readMatrix(job.sim, &qIds, &gIds);
    matchMatrixIds(S, qIds, gIds);
  } else {
    BIUD_CHECK(!job.embA.empty() && !job.embB.empty(), ConfigError,
               "retrieval needs --sim, or both --emb-a and --emb-b");
    const auto A = readMatrix(job.embA, &qIds), B = readMatrix(job.embB, &gIds);
    S = cosineSimilarity(A, B);
  }
  const auto ab = retrievalScores(S, qIds, gIds, job.ks), ba = retrievalScores(transpose(S), gIds, qIds, job.ks);
  json j;
  j["task"] = "retrieval";
  j["a_to_b"] = ab.toJson();
  j["b_to_a"] = ba.toJson();
  j["ties"] = "pessimistic (equal scores rank ahead of the relevant item)";
  log::info("eval", "A->B R@1 {:.4f} R@5 {:.4f} mAP {:.4f};  B->A R@1 {:.4f} mAP {:.4f}", ab.recall[0],
            ab.recall.size() > 1 ? ab.recall[1] : NAN, ab.map, ba.recall[0], ba.map);
  return j;
}

// --- DeLong and reader study -----------------------------------------------------------------

json runDeLongEval(const std::string& pred1, const std::string& pred2, const std::string& labels, double ci) {
  const auto data = loadLabeledPredictions(pred1, labels);
  const auto p2 = loadPredictionsLike(pred2, data);
  json per = json::object();
  for (std::size_t l = 0; l < data.findings.size(); ++l) {
    std::vector<double> s1, s2;
    std::vector<int> y;
    knownColumn(data, data.probs, l, s1, y);
    knownColumn(data, p2, l, s2, y);
    const bool two = std::count(y.begin(), y.end(), 1) > 0 && std::count(y.begin(), y.end(), 0) > 0;
    if (!two) {
      log::warn("eval", "finding `{}`: one class only; DeLong test skipped (null)", data.findings[l]);
      per[data.findings[l]] = nullptr;
      continue;
    }
    const auto r = delongTest(s1, s2, y, ci);
    auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    per[data.findings[l]] = {{"auc1", r.auc1},  {"auc2", r.auc2}, {"diff", r.diff},
                             {"z", num(r.z)},   {"p", r.p},       {"diff_ci", {r.ciLo, r.ciHi}},
                             {"n_pos", r.nPos}, {"n_neg", r.nNeg}};
  }
  return {{"task", "delong"}, {"model1", pred1}, {"model2", pred2}, {"ci", ci}, {"per_label", per}};
}

json runReaderStudy(const std::string& predPath, const std::string& labelsPath, const std::string& readersPath,
                    const std::string& plotDir) {
  const auto data = loadLabeledPredictions(predPath, labelsPath);
  const auto readers = readReaders(readersPath);
  std::map<std::string, std::vector<plot::ReaderPoint>> byFinding;
  for (const auto& r : readers) {
    std::string f = r.finding;
    if (f.empty()) {
      BIUD_CHECK(data.findings.size() == 1, DataError,
                 "{}: reader `{}` has no finding but {} has {} findings (add a `finding` column)", readersPath,
                 r.reader, labelsPath, data.findings.size());
      f = data.findings[0];
    }
    BIUD_CHECK(std::find(data.findings.begin(), data.findings.end(), f) != data.findings.end(), DataError,
               "{}: reader `{}`: finding `{}` is not a column of {}", readersPath, r.reader, f, labelsPath);
    byFinding[f].push_back({r.reader, r.sensitivity, r.specificity, NAN});
  }
  json per = json::object();
  for (auto& [f, pts] : byFinding) {
    const auto l =
        static_cast<std::size_t>(std::find(data.findings.begin(), data.findings.end(), f) - data.findings.begin());
    std::vector<double> s;
    std::vector<int> y;
    knownColumn(data, data.probs, l, s, y);
    const auto roc = rocCurve(s, y, false);
    const double auc = rocAuc(s, y);
    BIUD_CHECK(std::isfinite(auc), DataError, "finding `{}`: the labels have one class only; no ROC curve", f);
    json rs = json::array();
    for (auto& p : pts) {
      p.modelSensitivity = sensitivityAtSpecificity(roc, p.specificity);
      rs.push_back({{"reader", p.reader},
                    {"sensitivity", p.sensitivity},
                    {"specificity", p.specificity},
                    {"model_sensitivity_at_reader_specificity", p.modelSensitivity},
                    {"model_minus_reader", p.modelSensitivity - p.sensitivity},
                    {"model_specificity_at_reader_sensitivity", specificityAtSensitivity(roc, p.sensitivity)}});
    }
    per[f] = {{"auroc", auc}, {"readers", rs}};
    if (!plotDir.empty()) {
      fs::makeDirs(plotDir);
      plot::readerStudy((stdfs::path(plotDir) / ("readers_" + safeFileName(f) + ".png")).string(), "Reader study: " + f,
                        rocCurve(s, y), auc, pts);
    }
  }
  return {{"task", "readers"}, {"per_label", per}};
}

}  // namespace biud::eval
