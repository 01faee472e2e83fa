// biud-x2ct-eval: evaluate X2CT-CLIP X-ray encoders (x2ct runs; METHOD §6, docs/x2ct.md):
// retrieval X-ray <-> report and X-ray <-> CT, zero-shot findings from X-rays, linear-probe
// few-shot at 1 ... 100 % of the labels, and the same on an external split; several runs side by
// side in one table.
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/core/Rng.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/X2ctEval.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/tensor/Runtime.h"
#include "biud/text/Prompts.h"
#include "biud/train/MetricSink.h"
#include "biud/train/TextBatch.h"

using namespace biud;
namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

/// Mean of the finite values of `m["auroc/<f>"]` over `fs`.
double macroOver(const train::Metrics& m, const std::vector<std::string>& fs) {
  double s = 0;
  int n = 0;
  for (const auto& f : fs) {
    auto it = m.find("auroc/" + f);
    if (it != m.end() && std::isfinite(it->second)) s += it->second, ++n;
  }
  return n ? s / n : NAN;
}

json aurocJson(const train::Metrics& m, const std::vector<std::string>& findings, const std::vector<std::string>& ctOnly) {
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

struct Split {
  train::XraySet set;
  torch::Tensor emb;
};

}  // namespace

int main(int argc, char** argv) {
  app::App app("biud-x2ct-eval",
               "Evaluate X2CT-CLIP runs (task x2ct) on simulated X-rays: retrieval Recall@1/5/10 for X-ray->report,\n"
               "report->X-ray, X-ray->CT and CT->X-ray against the run's cached CT/report latents; zero-shot AUROC of\n"
               "every finding that has prompts (eval.prompts), with macros over all findings, the CT-only findings\n"
               "(x2ct.ct_only_findings) and the others; linear-probe few-shot AUROC (logistic regression on frozen X-ray\n"
               "embeddings of x2ct.fewshot_fractions of the training labels); and zero-shot + retrieval on the external\n"
               "split. Writes <out>/x2ct-eval.json and <out>/x2ct-eval.md (one table, runs side by side).");
  app.addCommon(app::kConfig | app::kOut | app::kManifest | app::kThreads | app::kDevice | app::kSeed | app::kWeights);
  std::vector<std::string> runs;
  std::string split, external, prompts;
  int seeds = 3;
  double C = 1.0;
  auto& cli = app.cli();
  cli.add_option("--run", runs, "x2ct run folder; repeatable as NAME=DIR to compare runs side by side")->required();
  cli.add_option("--split", split, "split to evaluate (default: data.test_split of the first run)");
  cli.add_option("--external", external,
                 "external validation split (default: x2ct.external_split of the first run, `external`; skipped when the "
                 "manifest has none; `none` skips it)");
  cli.add_option("--prompts", prompts, "prompt sets YAML (default: eval.prompts of the first run)");
  cli.add_option("--fewshot-seeds", seeds, "label subsets drawn per few-shot fraction below 100 % (AUROC averaged)")
      ->check(CLI::Range(1, 100));
  cli.add_option("--probe-c", C, "inverse L2 strength of the logistic-regression probe (scikit-learn's C)")
      ->check(CLI::PositiveNumber);
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    std::vector<std::pair<std::string, std::string>> named;
    for (const auto& r : runs) {
      const auto eq = r.find('=');
      if (eq != std::string::npos && !stdfs::exists(r))
        named.emplace_back(r.substr(0, eq), r.substr(eq + 1));
      else
        named.emplace_back(stdfs::path(r).lexically_normal().filename().string(), r);
    }
    const std::string out = app.prepareOutDir("x2ct-eval");
    json result;
    std::vector<std::string> findings;
    for (auto& [name, dir] : named) {
      auto run = evaluate::loadRun(dir, dev, cfg.eval.ema);
      BIUD_CHECK(run.cfg.task == "x2ct" && run.clip, ConfigError,
                 "--run `{}` is a `{}` run; biud-x2ct-eval takes x2ct runs (use biud-zeroshot for the others)", dir,
                 run.cfg.task);
      const auto& rc = run.cfg;
      const std::string sp = split.empty() ? rc.data.test_split : split;
      const std::string ext = external.empty() ? rc.x2ct.external_split : external;
      const std::string ps = prompts.empty() ? rc.eval.prompts : prompts;
      const std::string manifestPath = app.manifest().empty() ? train::x2ctXrayManifest(rc) : app.manifest();
      const auto latentPath = train::x2ctLatentPath(rc, dir);
      BIUD_CHECK(stdfs::exists(latentPath), DataError,
                 "run `{}` has no cached latents at `{}` (written by the x2ct task at its start)", dir, latentPath);
      const auto latents = train::readX2ctLatents(latentPath);
      const auto manifest = image::readManifest(manifestPath);
      auto load = [&](const std::string& s) {
        Split x;
        x.set = train::loadXraySet(manifest, s, rc.data, rc.threads);
        x.emb = evaluate::embedXrays(run.clip, x.set, dev);
        return x;
      };
      json j;
      j["run"] = dir;
      j["manifest"] = manifestPath;
      j["split"] = sp;
      j["loss"] = {{"alpha", rc.loss.trimodal.alpha}, {"beta", rc.loss.trimodal.beta}, {"gamma", rc.loss.trimodal.gamma}};
      Split test = load(sp);
      j["retrieval"] = evaluate::x2ctRetrieval(test.emb, test.set.ids, latents);

      // Zero-shot from X-rays with the frozen report tower's prompt embeddings.
      const auto promptSet = text::PromptSet::load(ps);
      const auto pc = evaluate::promptedColumns(test.set.labelNames, promptSet, fmt::format("`{}`", manifestPath));
      if (findings.empty()) findings = pc.findings;
      auto pe = evaluate::embedPrompts(promptSet, pc.findings, [&](const std::vector<std::string>& t) {
        auto tb = train::tokenizeBatch(*run.tokenizer, t, rc.text.max_length);
        return run.clip->encodeText(tb.ids.to(dev), tb.mask.to(dev)).cpu();
      });
      const double tau = run.clip->temperature->forward().item<double>();
      const auto cols = torch::tensor(pc.columns);
      auto zeroShot = [&](const Split& s) {
        train::Metrics m;
        evaluate::addAurocMetrics(evaluate::zeroShotProbabilities(s.emb, pe, tau), s.set.labels.index_select(1, cols),
                               pc.findings, m);
        return aurocJson(m, pc.findings, rc.x2ct.ct_only_findings);
      };
      j["zeroshot"] = zeroShot(test);
      {
        // Reference: zero-shot from the frozen CT latents of the same scans (AUROC does not depend on tau).
        std::vector<std::int64_t> rows;
        for (const auto& id : test.set.ids) rows.push_back(latents.row(train::x2ctScanId(id)));
        Split ctRef;
        ctRef.set.labels = test.set.labels;
        ctRef.emb = latents.ct.index_select(0, torch::tensor(rows));
        j["ct_reference"]["zeroshot"] = zeroShot(ctRef);
      }

      // Linear probe on frozen X-ray embeddings with a fraction of the training labels.
      Split tr = load(rc.data.train_split);
      auto yTrain = tr.set.labels.index_select(1, cols);
      Progress bar("linear probe " + name, rc.x2ct.fewshot_fractions.size(), "fraction");
      for (double f : rc.x2ct.fewshot_fractions) {
        const int reps = f >= 1.0 ? 1 : seeds;
        std::map<std::string, double> sum;
        std::map<std::string, int> cnt;
        std::int64_t used = 0;
        for (int s = 0; s < reps; ++s) {
          const auto sub = evaluate::fewShotSubset(tr.set.size(), f, deriveSeed(static_cast<std::uint64_t>(cfg.seed),
                                                                              fmt::format("fewshot-{}-{}", f, s)));
          used = static_cast<std::int64_t>(sub.size());
          auto idx = torch::tensor(sub);
          auto probs = evaluate::linearProbe(tr.emb.index_select(0, idx), yTrain.index_select(0, idx), test.emb, C);
          train::Metrics m;
          evaluate::addAurocMetrics(probs, test.set.labels.index_select(1, cols), pc.findings, m);
          for (auto& [k, v] : m)
            if (std::isfinite(v)) sum[k] += v, ++cnt[k];
        }
        train::Metrics mean;
        for (const auto& fi : pc.findings) {
          const auto k = "auroc/" + fi;
          mean[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
        }
        json fj = aurocJson(mean, pc.findings, rc.x2ct.ct_only_findings);
        fj["labelled_xrays"] = used;
        fj["subsets"] = reps;
        j["fewshot"][fmt::format("{:g}", f)] = fj;
        bar.advance();
      }
      bar.finish();

      // External validation.
      if (ext != "none" && !manifest.indicesOf(ext).empty()) {
        Split ex = load(ext);
        j["external"]["split"] = ext;
        j["external"]["zeroshot"] = zeroShot(ex);
        j["external"]["retrieval"] = evaluate::x2ctRetrieval(ex.emb, ex.set.ids, latents);
      } else if (ext != "none") {
        log::warn("x2ct", "`{}` has no `{}` split: external validation skipped", manifestPath, ext);
      }
      result["models"][name] = j;
    }
    fs::atomicWrite(stdfs::path(out) / "x2ct-eval.json", result.dump(2) + "\n");

    // One markdown table, runs as columns.
    auto cell = [](const json& v) { return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : std::string("–"); };
    std::string md = "| metric |";
    std::string sep = "|---|";
    for (auto& [name, dir] : named) md += " " + name + " |", sep += "---|";
    md += "\n" + sep + "\n";
    auto row = [&](const std::string& label, const std::function<json(json)>& get) {
      md += "| " + label + " |";
      for (auto& [name, dir] : named) {
        json v;
        try {
          v = get(result["models"][name]);
        } catch (const json::exception&) {
        }
        md += " " + cell(v) + " |";
      }
      md += "\n";
    };
    const auto& first = result["models"][named.front().first];
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
    for (const auto& f : findings)
      row("zero-shot AUROC " + f, [=](json m) { return m["zeroshot"]["per_label"][f]; });
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
    fs::atomicWrite(stdfs::path(out) / "x2ct-eval.md", md);
    log::info("x2ct", "\n{}", md);
    log::info("x2ct", "wrote {}/x2ct-eval.json and x2ct-eval.md", out);
    return app::kExitOk;
  });
}
