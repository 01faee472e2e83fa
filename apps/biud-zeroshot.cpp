// biud-zeroshot: prompt-ensemble zero-shot classification of every finding (METHOD §4) with one
// or more trained runs, on the labelled split of a manifest; metrics with bootstrap CIs, per-case
// probabilities, ROC and violin plots (evaluate/ZeroShotEval.h).
#include "biud/app/App.h"
#include "biud/core/Log.h"
#include "biud/core/RunList.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/ZeroShotEval.h"
#include "biud/tensor/Runtime.h"

using namespace biud;

int main(int argc, char** argv) {
  app::App app(
      "biud-zeroshot",
      "Zero-shot classification with prompt ensembles: for each finding, p = softmax([<x,e+>, <x,e->]/tau)[0]\n"
      "with e+/e- the averaged embeddings of its positive/negative prompts (eval.prompts). Runs on the\n"
      "labelled split of a manifest (CT for biud runs, X-ray for clip2d runs) and writes <out>/zeroshot.json\n"
      "(per_label.<finding>.auroc|ap|f1|..., macro.*, bootstrap CIs), probabilities.csv and plots/*.png.\n"
      "CTs are read from a cache with the run's preprocessing (data.cache_dir, the run's, or one built in\n"
      "<out>/cache-<hash> on the first call); a CT that cannot be read is left out, listed in\n"
      "<out>/failures.jsonl, and the exit code is 3.");
  app.addCommon(app::kConfig | app::kOut | app::kManifest | app::kThreads | app::kDevice | app::kSeed | app::kWeights);
  std::vector<std::string> runs;
  std::string split, prompts;
  app.cli()
      .add_option(
          "--run", runs,
          "trained run folder, or one made by biud-import-weights (CT-CLIP: docs/baselines.md); repeatable: NAME=DIR "
          "compares models side by side, each with its own preprocessing and tokenizer; DeLong vs the first")
      ->required();
  app.cli().add_option("--split", split, "split to evaluate (default: data.test_split of the first run, `test`)");
  app.cli().add_option("--prompts", prompts, "prompt sets YAML (default: eval.prompts of the first run)");
  std::string protocol;
  app.cli()
      .add_option(
          "--protocol", protocol,
          "biud (prompt ensembles of --prompts) or ct-clip: CT-CLIP's evaluation, one prompt pair per label column\n"
          "(\"<finding> is present.\" / \"<finding> is not present.\", <finding> = the `name` of the matching prompt\n"
          "finding, else the column name), plus its threshold rule, weighted F1, accuracy and precision under "
          "`ct_clip` in\n"
          "zeroshot.json (docs/eval.md) (default: eval.zeroshot_protocol)")
      ->check(CLI::IsMember({"biud", "ct-clip"}));
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    runtime::setThreads(cfg.threads);
    const auto dev = runtime::selectDevice(cfg.device);
    evaluate::ZeroShotOptions o;
    o.runs = app::parseRunList(runs);
    o.split = split;
    o.prompts = prompts;
    o.protocol = protocol;
    o.manifest = app.manifest();
    o.progress = !app.quiet();
    o.prepareOut = [&] { return app.prepareOutDir("zeroshot"); };
    const auto r = evaluate::runZeroShot(o, cfg, dev);
    log::info("zeroshot", "{} cases of split `{}` ({}):{}", r.cases, r.split, r.firstName,
              evaluate::classificationTable(r.json, r.findings));
    log::info("zeroshot", "wrote {}/zeroshot.json", r.out);
    if (!r.failures.empty()) {
      log::warn("zeroshot", "{} CT(s) of split `{}` could not be read and were left out; see {}/failures.jsonl",
                r.failures.size(), r.split, r.out);
      return app::kExitPartial;
    }
    return app::kExitOk;
  });
}
