// biud-finetune: multi-label classification of CT volumes from a pretrained BIUD run — linear
// probe or full fine-tuning (layer-wise lr decay) on a fraction of the labelled training cases,
// early stopping on the validation split, then the test metrics of biud-zeroshot (AUROC, AP,
// accuracy, F1, sensitivity, specificity with bootstrap CIs, ROC and violin plots).
#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/eval/Classification.h"
#include "biud/eval/Figures.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/FinetuneTask.h"

using namespace biud;
namespace stdfs = std::filesystem;

int main(int argc, char** argv) {
  app::App app("biud-finetune",
               "Fine-tune a pretrained BIUD CT encoder for multi-label classification of the label columns of a CT\n"
               "manifest: a linear head on the pooled encoder features, trained as a linear probe (--mode linear,\n"
               "encoder frozen) or end to end (--mode full, layer-wise lr decay optimizer.layer_decay), BCE with\n"
               "per-label pos_weight, on a stratified seeded fraction of the training cases (--label-fraction),\n"
               "keeping the best validation checkpoint (early stopping: finetune.patience). Then evaluates the\n"
               "test split. Writes into --out: the run (config.resolved.yaml, log.txt, metrics.jsonl,\n"
               "checkpoints/, best/, train_subset.csv), finetune.json (per_label.<label>.auroc|ap|accuracy|f1|\n"
               "sensitivity|specificity with bootstrap CIs, macro.*), probabilities.csv and plots/*.png.\n"
               "Config section finetune: (see --help-config); recipe: configs/finetune.yaml.");
  app.addCommon(app::kAll);
  std::string run, resume, split, mode;
  double fraction = -1;
  std::vector<std::string> labels;
  app.cli().add_option("--run", run,
                       "pretrained BIUD run folder (or checkpoint folder) whose CT encoder is fine-tuned "
                       "(default: finetune.run)");
  app.cli()
      .add_option("--mode", mode, "linear (probe, encoder frozen) or full (default: finetune.mode)")
      ->check(CLI::IsMember({"linear", "full"}));
  app.cli()
      .add_option("--label-fraction", fraction,
                  "fraction of the labelled training cases used, e.g. 0.01, 0.1, 1 "
                  "(default: finetune.label_fraction)")
      ->check(CLI::Range(0.0, 1.0));
  app.cli().add_option("--label-columns", labels,
                       "label columns to predict (repeatable; default: finetune.labels, else every "
                       "label column of the manifest)");
  app.cli().add_option("--split", split, "split evaluated after training (default: data.test_split)");
  app.cli().add_option("--resume", resume, "continue the run in --out: a checkpoint folder, or `latest`");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    cfg.task = "finetune";
    if (!run.empty()) cfg.finetune.run = run;
    if (!mode.empty()) cfg.finetune.mode = mode;
    if (fraction >= 0) {
      BIUD_CHECK(fraction > 0, ConfigError,
                 "--label-fraction must be in (0, 1], got {}: at least one labelled case is needed", fraction);
      cfg.finetune.label_fraction = fraction;
    }
    if (!labels.empty()) cfg.finetune.labels = labels;
    if (!app.manifest().empty()) cfg.data.manifest = app.manifest();
    if (!resume.empty()) cfg.trainer.resume = resume;
    evaluate::checkPretrainedRun(cfg.finetune.run);
    cfg.finetune.run = stdfs::absolute(cfg.finetune.run).lexically_normal().string();
    evaluate::absolutizePaths(cfg);
    if (split.empty()) split = cfg.data.test_split;
    runtime::setThreads(cfg.threads);
    runtime::seedTorch(static_cast<std::uint64_t>(cfg.seed));
    const auto dev = runtime::selectDevice(cfg.device);
    const std::string out = app.prepareOutDir("finetune", biud::app::App::OutKind::kTrainingRun);
    log::info("finetune", "{} | run folder {} | {}", app::versionString(), out, runtime::describe());

    // Read from a cache (data.cache_dir, or one built now in <out>/cache); unreadable CTs are
    // left out and listed in <out>/failures.jsonl (exit code 3).
    const size_t failed = evaluate::useEvalCache(cfg, out, {cfg.data.train_split, cfg.data.val_split, split});
    auto [trainer, taskPtr] = train::makeFinetuneTrainer(cfg, out, dev);
    const int rc = trainer->train();
    if (rc != app::kExitOk) return rc;
    auto& task = *taskPtr;
    const auto bestStep = task.restoreBest();
    const auto& names = task.labelNames();
    auto pred = task.predict(split);
    BIUD_CHECK(torch::isfinite(pred.probs).all().item<bool>(), ValueError,
               "the fine-tuned model gave non-finite probabilities on split `{}`; check the run's metrics.jsonl",
               split);

    eval::ClassificationOptions co;
    co.bootstrap = cfg.eval.bootstrap;
    co.ci = cfg.eval.ci;
    co.seed = static_cast<std::uint64_t>(cfg.seed);
    if (cfg.eval.threshold == "val" && !task.hasValidation()) {
      log::warn("finetune", "eval.threshold is `val` but `{}` has no `{}` split: Youden's point of split `{}` is used",
                cfg.data.manifest, cfg.data.val_split, split);
      cfg.eval.threshold = "youden";
    }
    if (cfg.eval.threshold == "0.5") {
      co.thresholdMode = "fixed";
    } else if (cfg.eval.threshold == "val") {
      // Operating point chosen where it may be: Youden's J on the validation split.
      auto val = task.predict(cfg.data.val_split);
      std::vector<std::string> warnings;
      co.thresholdMode = "given";
      co.thresholds =
          eval::validationThresholds(evaluate::toRows(val.probs), evaluate::toRows(val.labels), names, &warnings);
      for (const auto& w : warnings) log::warn("finetune", "{}", w);
    }
    eval::ModelPredictions mp;
    mp.name = "finetune";
    mp.probs = evaluate::toRows(pred.probs);
    auto j = eval::evaluateModels({mp}, evaluate::toRows(pred.labels), names, co,
                                  cfg.eval.plots ? (stdfs::path(out) / "plots").string() : "");
    evaluate::writeProbabilities((stdfs::path(out) / "probabilities.csv").string(), pred.ids, names, mp.probs);
    j["split"] = split;
    j["manifest"] = cfg.data.manifest;
    j["failed"] = failed;
    j["pretrained"] = task.pretrainedCheckpoint();
    j["mode"] = cfg.finetune.mode;
    j["label_fraction"] = cfg.finetune.label_fraction;
    j["n_train"] = task.trainIds().size();
    j["n_eval"] = pred.ids.size();
    j["best_step"] = bestStep;
    j["steps"] = trainer->step();
    j["threshold"] = cfg.eval.threshold;
    auto pw = task.posWeight();
    for (size_t l = 0; l < names.size(); ++l)
      j["pos_weight"][names[l]] = pw[static_cast<std::int64_t>(l)].item<double>();
    fs::atomicWrite(stdfs::path(out) / "finetune.json", j.dump(2));
    log::info("finetune", "{} cases of split `{}` ({} mode, {} training cases, weights of step {}):{}", pred.ids.size(),
              split, cfg.finetune.mode, task.trainIds().size(), bestStep >= 0 ? bestStep : trainer->step(),
              evaluate::classificationTable(j, names));
    log::info("finetune", "wrote {}/finetune.json", out);
    if (failed > 0) {
      log::warn("finetune", "{} CT(s) could not be read and were left out; see {}/failures.jsonl", failed, out);
      return app::kExitPartial;
    }
    return app::kExitOk;
  });
}
