#include "biud/evaluate/X2ctEval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"
#include "biud/data/TextBatch.h"
#include "biud/eval/Retrieval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/Prompts.h"

namespace biud::evaluate {

torch::Tensor embedXrays(RunModel& model, const data::XraySet& set, const c10::Device& device) {
  torch::NoGradGuard ng;
  model.module().eval();
  std::vector<torch::Tensor> parts;
  for (std::int64_t b = 0; b < set.size(); b += 64)
    parts.push_back(model.encodeXray(set.images.slice(0, b, std::min(set.size(), b + 64)).to(device)).cpu());
  return torch::cat(parts).to(torch::kFloat32);
}

namespace {
eval::Matrix toMatrix(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous().cpu();
  eval::Matrix m(static_cast<size_t>(c.size(0)), std::vector<double>(static_cast<size_t>(c.size(1))));
  const double* p = c.data_ptr<double>();
  for (size_t i = 0; i < m.size(); ++i) std::copy(p + i * m[i].size(), p + (i + 1) * m[i].size(), m[i].begin());
  return m;
}
}  // namespace

nlohmann::json x2ctRetrieval(const torch::Tensor& xray, const std::vector<std::string>& xrayIds,
                             const data::X2ctLatents& latents) {
  BIUD_CHECK(xray.size(0) == static_cast<std::int64_t>(xrayIds.size()) && !xrayIds.empty(), ValueError,
             "x2ctRetrieval: {} X-ray embeddings for {} ids", xray.size(0), xrayIds.size());
  std::vector<std::string> scans, gallery;
  std::vector<std::int64_t> rows;
  std::map<std::string, bool> seen;
  for (const auto& id : xrayIds) {
    scans.push_back(data::x2ctScanId(id));
    if (seen.emplace(scans.back(), true).second) {
      const auto r = latents.row(scans.back());
      BIUD_CHECK(r >= 0, DataError, "X-ray `{}`: its CT `{}` has no cached latents", id, scans.back());
      gallery.push_back(scans.back());
      rows.push_back(r);
    }
  }
  auto idx = torch::tensor(rows);
  auto rep = latents.report.index_select(0, idx), ct = latents.ct.index_select(0, idx);
  auto x2r = toMatrix(torch::matmul(xray, rep.t())), x2c = toMatrix(torch::matmul(xray, ct.t()));
  nlohmann::json j;
  j["xray_to_report"] = eval::retrievalScores(x2r, scans, gallery).toJson();
  j["report_to_xray"] = eval::retrievalScores(eval::transpose(x2r), gallery, scans).toJson();
  j["xray_to_ct"] = eval::retrievalScores(x2c, scans, gallery).toJson();
  j["ct_to_xray"] = eval::retrievalScores(eval::transpose(x2c), gallery, scans).toJson();
  // The frozen pair itself (the ceiling the X-ray tower is pulled towards): CT -> report.
  j["ct_to_report"] = eval::retrievalScores(toMatrix(torch::matmul(ct, rep.t())), gallery, gallery).toJson();
  j["gallery"] = gallery.size();
  j["chance_recall@5"] = std::min(1.0, 5.0 / static_cast<double>(gallery.size()));
  return j;
}

torch::Tensor linearProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                          double C, int maxIter) {
  BIUD_CHECK(C > 0, ValueError, "linearProbe: C must be > 0, got {}", C);
  BIUD_CHECK(
      xTrain.dim() == 2 && yTrain.dim() == 2 && xTrain.size(0) == yTrain.size(0) && xTest.size(1) == xTrain.size(1),
      ValueError, "linearProbe: shapes x {} y {} test {} do not fit", tensor::shapeStr(xTrain.sizes()),
      tensor::shapeStr(yTrain.sizes()), tensor::shapeStr(xTest.sizes()));
  torch::NoGradGuard outer;
  auto x = xTrain.to(torch::kFloat64), xt = xTest.to(torch::kFloat64);
  auto y = yTrain.to(torch::kFloat64);
  auto known = ~torch::isnan(y);
  auto yk = torch::where(known, y, torch::zeros_like(y)).gt(0.5).to(torch::kFloat64);
  auto kf = known.to(torch::kFloat64);
  const std::int64_t d = x.size(1), F = y.size(1);
  auto out = torch::empty({xt.size(0), F}, torch::kFloat64);
  for (std::int64_t f = 0; f < F; ++f) {
    const double n = kf.select(1, f).sum().item<double>();
    const double pos = (yk.select(1, f) * kf.select(1, f)).sum().item<double>();
    if (n == 0 || pos == 0 || pos == n) {
      // One class (or none) known: the best constant.
      out.select(1, f).fill_(n == 0 ? 0.5 : pos / n);
      continue;
    }
    auto w = torch::zeros({d}, torch::dtype(torch::kFloat64).requires_grad(true));
    auto b = torch::zeros({1}, torch::dtype(torch::kFloat64).requires_grad(true));
    auto mask = kf.select(1, f), target = yk.select(1, f);
    torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                        .max_iter(maxIter)
                                        .tolerance_grad(1e-10)
                                        .tolerance_change(1e-14)
                                        .history_size(20)
                                        .line_search_fn("strong_wolfe"));
    auto closure = [&] {
      opt.zero_grad();
      torch::AutoGradMode on(true);
      auto z = torch::mv(x, w) + b;
      // sklearn: C * sum logloss + 0.5 ||w||^2 (divided by C n for a well-scaled objective).
      auto ll = torch::nn::functional::binary_cross_entropy_with_logits(
          z, target, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
      auto loss = (ll * mask).sum() / n + 0.5 * w.dot(w) / (C * n);
      loss.backward();
      return loss;
    };
    {
      torch::AutoGradMode on(true);
      opt.step(closure);
    }
    out.select(1, f).copy_(torch::sigmoid(torch::mv(xt, w.detach()) + b.detach()));
  }
  return out.to(torch::kFloat32);
}

std::vector<std::int64_t> fewShotSubset(std::int64_t n, double fraction, std::uint64_t seed) {
  BIUD_CHECK(n > 0 && fraction > 0 && fraction <= 1, ValueError, "fewShotSubset: n {} fraction {}", n, fraction);
  const std::int64_t k =
      std::min<std::int64_t>(n, std::max<std::int64_t>(2, std::llround(fraction * static_cast<double>(n))));
  std::vector<std::int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  Rng rng(seed);
  std::shuffle(all.begin(), all.end(), rng.engine());
  all.resize(static_cast<size_t>(k));
  std::sort(all.begin(), all.end());
  return all;
}

namespace {

using nlohmann::json;
using AurocMap = std::map<std::string, double>;

/// Mean of the finite values of `m["auroc/<f>"]` over `fs`.
double macroOver(const AurocMap& m, const std::vector<std::string>& fs) {
  double s = 0;
  int n = 0;
  for (const auto& f : fs) {
    auto it = m.find("auroc/" + f);
    if (it != m.end() && std::isfinite(it->second)) s += it->second, ++n;
  }
  return n ? s / n : NAN;
}

struct Split {
  data::XraySet set;
  torch::Tensor emb;
};

}  // namespace

json x2ctAurocJson(const AurocMap& m, const std::vector<std::string>& findings,
                   const std::vector<std::string>& ctOnly) {
  json j;
  std::vector<std::string> visible, hidden;
  for (const auto& f : findings) {
    const double a = m.at("auroc/" + f);
    j["per_label"][f] = std::isfinite(a) ? json(a) : json(nullptr);
    (std::find(ctOnly.begin(), ctOnly.end(), f) != ctOnly.end() ? hidden : visible).push_back(f);
  }
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  j["macro"] = num(macroOver(m, findings));
  j["macro_ct_only"] = num(macroOver(m, hidden));
  j["macro_xray_visible"] = num(macroOver(m, visible));
  j["ct_only_findings"] = hidden;
  return j;
}

json fewShotProbe(const torch::Tensor& xTrain, const torch::Tensor& yTrain, const torch::Tensor& xTest,
                  const torch::Tensor& yTest, const std::vector<std::string>& findings, const FewShotOptions& opt) {
  json out = json::object();
  std::unique_ptr<Progress> bar;
  if (!opt.label.empty()) bar = std::make_unique<Progress>(opt.label, opt.fractions.size(), "fraction");
  for (double f : opt.fractions) {
    const int reps = f >= 1.0 ? 1 : opt.subsets;
    std::map<std::string, double> sum;
    std::map<std::string, int> cnt;
    std::int64_t used = 0;
    for (int s = 0; s < reps; ++s) {
      const auto sub = fewShotSubset(xTrain.size(0), f, deriveSeed(opt.seed, fmt::format("fewshot-{}-{}", f, s)));
      used = static_cast<std::int64_t>(sub.size());
      auto idx = torch::tensor(sub);
      auto probs = linearProbe(xTrain.index_select(0, idx), yTrain.index_select(0, idx), xTest, opt.C);
      AurocMap m;
      addAurocMetrics(probs, yTest, findings, m);
      for (auto& [k, v] : m)
        if (std::isfinite(v)) sum[k] += v, ++cnt[k];
    }
    AurocMap mean;
    for (const auto& fi : findings) {
      const auto k = "auroc/" + fi;
      mean[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
    }
    json fj = x2ctAurocJson(mean, findings, opt.ctOnly);
    fj["labelled_xrays"] = used;
    fj["subsets"] = reps;
    out[fmt::format("{:g}", f)] = fj;
    if (bar) bar->advance();
  }
  if (bar) bar->finish();
  return out;
}

X2ctEvalResult runX2ctEval(const X2ctEvalOptions& opt, const Config& cfg, const c10::Device& dev) {
  namespace stdfs = std::filesystem;
  X2ctEvalResult res;
  res.out = opt.prepareOut ? opt.prepareOut() : std::string(".");
  json& result = res.json;
  std::vector<std::string> findings, names;
  for (const auto& [name, dir] : opt.runs) {
    names.push_back(name);
    auto run = loadRun(dir, dev, cfg.eval.ema);
    BIUD_CHECK(run.model->can(Capability::kXray), ConfigError,
               "--run `{}` is a `{}` run; biud-x2ct-eval takes x2ct runs (use biud-zeroshot for the others)", dir,
               run.model->task());
    const auto& rc = run.cfg;
    const std::string sp = opt.split.empty() ? rc.data.test_split : opt.split;
    const std::string ext = opt.external.empty() ? rc.x2ct.external_split : opt.external;
    const std::string ps = opt.prompts.empty() ? rc.eval.prompts : opt.prompts;
    const std::string manifestPath = opt.manifest.empty() ? data::x2ctXrayManifest(rc) : opt.manifest;
    const auto latentPath = data::x2ctLatentPath(rc, dir);
    BIUD_CHECK(
        stdfs::exists(latentPath), DataError,
        "run `{}` has no cached latents at `{}` (written by the x2ct task at its start; biud-x2ct-eval takes x2ct "
        "runs, use biud-zeroshot for the others)",
        dir, latentPath);
    const auto latents = data::readX2ctLatents(latentPath);
    const auto manifest = image::readManifest(manifestPath);
    auto load = [&](const std::string& s) {
      Split x;
      x.set = data::loadXraySet(manifest, s, rc.data, rc.threads);
      x.emb = embedXrays(*run.model, x.set, dev);
      return x;
    };
    json j;
    j["run"] = dir;
    j["manifest"] = manifestPath;
    j["split"] = sp;
    j["loss"] = {{"alpha", rc.loss.trimodal.alpha}, {"beta", rc.loss.trimodal.beta}, {"gamma", rc.loss.trimodal.gamma}};
    Split test = load(sp);
    j["retrieval"] = x2ctRetrieval(test.emb, test.set.ids, latents);

    // Zero-shot from X-rays with the frozen report tower's prompt embeddings.
    const auto promptSet = text::PromptSet::load(ps);
    const auto pc = promptedColumns(test.set.labelNames, promptSet, fmt::format("`{}`", manifestPath));
    if (findings.empty()) findings = pc.findings;
    auto pe = embedPrompts(promptSet, pc.findings, [&](const std::vector<std::string>& t) {
      auto tb = data::tokenizeBatch(*run.tokenizer, t, rc.text.max_length);
      return run.model->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
    });
    const double tau = run.model->temperature();
    const auto cols = torch::tensor(pc.columns);
    auto zeroShot = [&](const Split& s) {
      AurocMap m;
      addZeroShotAuroc(s.emb, s.set.labels.index_select(1, cols), pe, tau, m);
      return x2ctAurocJson(m, pc.findings, rc.x2ct.ct_only_findings);
    };
    j["zeroshot"] = zeroShot(test);
    {
      // Reference: zero-shot from the frozen CT latents of the same scans (AUROC does not depend on tau).
      std::vector<std::int64_t> rows;
      for (const auto& id : test.set.ids) rows.push_back(latents.row(data::x2ctScanId(id)));
      Split ctRef;
      ctRef.set.labels = test.set.labels;
      ctRef.emb = latents.ct.index_select(0, torch::tensor(rows));
      j["ct_reference"]["zeroshot"] = zeroShot(ctRef);
    }

    // Linear probe on frozen X-ray embeddings with a fraction of the training labels.
    Split tr = load(rc.data.train_split);
    FewShotOptions fo;
    fo.fractions = rc.x2ct.fewshot_fractions;
    fo.subsets = opt.seeds;
    fo.C = opt.C;
    fo.seed = static_cast<std::uint64_t>(cfg.seed);
    fo.ctOnly = rc.x2ct.ct_only_findings;
    fo.label = "linear probe " + name;
    const json few = fewShotProbe(tr.emb, tr.set.labels.index_select(1, cols), test.emb,
                                  test.set.labels.index_select(1, cols), pc.findings, fo);
    if (!few.empty()) j["fewshot"] = few;

    // External validation.
    if (ext != "none" && !manifest.indicesOf(ext).empty()) {
      Split ex = load(ext);
      j["external"]["split"] = ext;
      j["external"]["zeroshot"] = zeroShot(ex);
      j["external"]["retrieval"] = x2ctRetrieval(ex.emb, ex.set.ids, latents);
    } else if (ext != "none") {
      log::warn("x2ct", "`{}` has no `{}` split: external validation skipped", manifestPath, ext);
    }
    result["models"][name] = j;
  }
  fs::atomicWrite(stdfs::path(res.out) / "x2ct-eval.json", result.dump(2) + "\n");
  res.markdown = x2ctMarkdown(result, names, findings);
  fs::atomicWrite(stdfs::path(res.out) / "x2ct-eval.md", res.markdown);
  return res;
}

std::string x2ctMarkdown(const json& result, const std::vector<std::string>& names,
                         const std::vector<std::string>& findings) {
  auto cell = [](const json& v) { return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : std::string("–"); };
  json models = result.contains("models") ? result["models"] : json::object();
  std::string md = "| metric |";
  std::string sep = "|---|";
  for (const auto& name : names) md += " " + name + " |", sep += "---|";
  md += "\n" + sep + "\n";
  auto row = [&](const std::string& label, const std::function<json(json)>& get) {
    md += "| " + label + " |";
    for (const auto& name : names) {
      json v;
      try {
        v = get(models[name]);
      } catch (const json::exception&) {
      }
      md += " " + cell(v) + " |";
    }
    md += "\n";
  };
  const json first = names.empty() ? json::object() : models[names.front()];
  row("loss weight alpha (CT-report)", [](json m) { return m["loss"]["alpha"]; });
  row("loss weight beta (X-ray-report)", [](json m) { return m["loss"]["beta"]; });
  row("loss weight gamma (X-ray-CT)", [](json m) { return m["loss"]["gamma"]; });
  for (const char* dirn : {"xray_to_report", "report_to_xray", "xray_to_ct", "ct_to_xray"})
    for (const char* k : {"recall@1", "recall@5", "recall@10"})
      row(fmt::format("{} {}", dirn, k), [=](json m) { return m["retrieval"][dirn][k]; });
  row("chance recall@5", [](json m) { return m["retrieval"]["chance_recall@5"]; });
  row("reference: frozen CT -> report recall@5", [](json m) { return m["retrieval"]["ct_to_report"]["recall@5"]; });
  row("zero-shot AUROC macro", [](json m) { return m["zeroshot"]["macro"]; });
  row("zero-shot AUROC CT-only findings", [](json m) { return m["zeroshot"]["macro_ct_only"]; });
  row("zero-shot AUROC X-ray-visible findings", [](json m) { return m["zeroshot"]["macro_xray_visible"]; });
  row("reference: zero-shot AUROC macro from the frozen CT latents",
      [](json m) { return m["ct_reference"]["zeroshot"]["macro"]; });
  row("reference: zero-shot AUROC CT-only from the frozen CT latents",
      [](json m) { return m["ct_reference"]["zeroshot"]["macro_ct_only"]; });
  for (const auto& f : findings) row("zero-shot AUROC " + f, [=](json m) { return m["zeroshot"]["per_label"][f]; });
  if (first.contains("fewshot"))
    for (auto it = first["fewshot"].begin(); it != first["fewshot"].end(); ++it) {
      const std::string k = it.key();
      row(fmt::format("linear probe {} % labels: AUROC macro", std::stod(k) * 100),
          [=](json m) { return m["fewshot"][k]["macro"]; });
      row(fmt::format("linear probe {} % labels: AUROC CT-only", std::stod(k) * 100),
          [=](json m) { return m["fewshot"][k]["macro_ct_only"]; });
    }
  row("external: zero-shot AUROC macro", [](json m) { return m["external"]["zeroshot"]["macro"]; });
  row("external: zero-shot AUROC CT-only", [](json m) { return m["external"]["zeroshot"]["macro_ct_only"]; });
  row("external: xray_to_report recall@5",
      [](json m) { return m["external"]["retrieval"]["xray_to_report"]["recall@5"]; });
  row("external: xray_to_ct recall@5", [](json m) { return m["external"]["retrieval"]["xray_to_ct"]["recall@5"]; });
  return md;
}

}  // namespace biud::evaluate
