// biud-train: train a task (clip2d, biud, x2ct, report, finetune) from a YAML recipe.
#include "biud/core/App.h"
#include "biud/core/Log.h"

int main(int argc, char** argv) {
  biud::app::App app("biud-train",
                     "Train a model from a YAML recipe (configs/). The task (clip2d = X-ray teacher, biud = CT "
                     "pretraining, x2ct = X-ray encoder from CT) is the config key `task`.\n"
                     "Writes a run folder: config.resolved.yaml, log.txt, metrics.jsonl, checkpoints/.");
  app.addCommon(biud::app::kAll & ~biud::app::kManifest);
  std::string resume;
  app.cli().add_option("--resume", resume, "continue a run: a checkpoint folder, or `latest` (in --out)");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    if (!resume.empty()) cfg.trainer.resume = resume;
    biud::log::error("train", "task `{}`: the trainer is not built yet (see the open issues)", cfg.task);
    return biud::app::kExitError;
  });
}
