// biud-train: train a task (clip2d, biud, x2ct, report, finetune) from a YAML recipe.
#include "biud/core/App.h"
#include "biud/core/Log.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/Trainer.h"

int main(int argc, char** argv) {
  biud::app::App app("biud-train",
                     "Train a model from a YAML recipe (configs/). The task is the config key `task`:\n"
                     "  clip2d  the 2D X-ray expert (stage 0)      biud   CT pretraining (stage 1)\n"
                     "  x2ct    X-ray encoder from CT and reports  report / finetune  downstream heads\n"
                     "Writes a run folder (--out, or out_dir/<name>): config.resolved.yaml, log.txt, metrics.jsonl,\n"
                     "tensorboard/, checkpoints/step_*/ and checkpoints/latest. SIGINT/SIGTERM save a checkpoint\n"
                     "and exit with code 130; --resume latest continues exactly where it stopped.");
  app.addCommon(biud::app::kAll & ~biud::app::kManifest);
  std::string resume;
  app.cli().add_option("--resume", resume, "continue a run: a checkpoint folder, or `latest` (the newest in --out)");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    if (!resume.empty()) cfg.trainer.resume = resume;
    biud::train::registerBuiltinTasks();
    biud::runtime::setThreads(cfg.threads);
    biud::runtime::seedTorch(static_cast<std::uint64_t>(cfg.seed));
    biud::train::TaskContext ctx;
    ctx.device = biud::runtime::selectDevice(cfg.device);
    // Fail on an unknown task before creating the run folder.
    const auto names = biud::train::taskNames();
    if (std::find(names.begin(), names.end(), cfg.task) == names.end()) biud::train::makeTask(cfg.task, cfg, ctx);
    ctx.runDir = app.prepareOutDir(cfg.task);
    biud::log::info("train", "{} | run folder {} | {}", biud::app::versionString(), ctx.runDir, biud::runtime::describe());
    biud::log::info("train", "resolved config:\n{}", biud::config::toYaml(cfg));
    auto task = biud::train::makeTask(cfg.task, cfg, ctx);
    biud::train::Trainer trainer(cfg, ctx.runDir, std::move(task), ctx);
    return trainer.train();
  });
}
