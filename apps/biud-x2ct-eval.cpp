// biud-x2ct-eval: evaluate X2CT-CLIP X-ray encoders (x2ct runs; METHOD §6, docs/x2ct.md):
// retrieval X-ray <-> report and X-ray <-> CT, zero-shot findings from X-rays, linear-probe
// few-shot at 1 ... 100 % of the labels, and the same on an external split; several runs side by
// side in one table (evaluate/X2ctEval.h).
#include "biud/app/App.h"
#include "biud/core/Log.h"
#include "biud/core/RunList.h"
#include "biud/evaluate/X2ctEval.h"
#include "biud/tensor/Runtime.h"

using namespace biud;

int main(int argc, char** argv) {
  app::App app(
      "biud-x2ct-eval",
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
  cli.add_option(
      "--external", external,
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
    evaluate::X2ctEvalOptions o;
    o.runs = app::parseRunList(runs);
    o.split = split;
    o.external = external;
    o.prompts = prompts;
    o.manifest = app.manifest();
    o.seeds = seeds;
    o.C = C;
    o.prepareOut = [&] { return app.prepareOutDir("x2ct-eval"); };
    const auto r = evaluate::runX2ctEval(o, cfg, dev);
    log::info("x2ct", "\n{}", r.markdown);
    log::info("x2ct", "wrote {}/x2ct-eval.json and x2ct-eval.md", r.out);
    return app::kExitOk;
  });
}
