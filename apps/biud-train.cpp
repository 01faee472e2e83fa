// biud-train: train a task (clip2d, biud, x2ct, report, finetune) from a YAML recipe.
#include <torch/torch.h>

#include "biud/app/App.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/Rendezvous.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/Tasks.h"
#include "biud/train/Trainer.h"

int main(int argc, char** argv) {
  biud::app::App app("biud-train",
                     "Train a model from a YAML recipe (configs/). The task is the config key `task`:\n"
                     "  clip2d  the 2D X-ray expert (stage 0)      biud   CT pretraining (stage 1)\n"
                     "  x2ct    X-ray encoder from CT and reports  report / finetune  downstream heads\n"
                     "Writes a run folder (--out, or out_dir/<name>): config.resolved.yaml, log.txt, metrics.jsonl,\n"
                     "tensorboard/, checkpoints/step_*/ and checkpoints/latest. SIGINT/SIGTERM save a checkpoint\n"
                     "and exit with code 130; --resume latest continues exactly where it stopped.");
  app.addCommon(biud::app::kAll);
  std::string resume;
  app.cli().add_option("--resume", resume, "continue a run: a checkpoint folder, or `latest` (the newest in --out)");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    if (!resume.empty()) cfg.trainer.resume = resume;
    // The run folder must stay usable from any working directory (biud-retrieve, biud-zeroshot).
    biud::evaluate::absolutizePaths(cfg);
    biud::train::registerBuiltinTasks();
    biud::runtime::setThreads(cfg.threads);
    biud::runtime::seedTorch(static_cast<std::uint64_t>(cfg.seed));
    biud::train::TaskContext ctx;
    // One code path for 1 and N processes: torchrun/SLURM/biud-launch set the environment,
    // otherwise this is a single-process communicator.
    const auto rank = biud::dist::detectRankInfo();
    ctx.device = biud::runtime::selectDevice(cfg.device, rank.localRank);
    ctx.comm = biud::dist::initFromEnv(cfg.distributed, ctx.device);
    ctx.rank = ctx.comm->rank();
    ctx.world = ctx.comm->worldSize();
    biud::log::setRank(ctx.rank, ctx.world);
    if (ctx.world > 1) {
      biud::runtime::seedTorch(
          static_cast<std::uint64_t>(cfg.seed));    // same initial weights (rank 0's are broadcast too)
      if (ctx.rank != 0) cfg.logging.file = false;  // rank 0 writes log.txt
      if (!app.outGiven() && cfg.name.empty()) {
        // Every rank must pick the same run folder: rank 0's timestamp.
        const std::int64_t stamp = std::stoll(biud::fs::timestamp().erase(8, 1));
        auto t = torch::full({1}, stamp, torch::kInt64);
        ctx.comm->broadcast(t, 0);
        cfg.name = cfg.task + "-" + std::to_string(t.item().toLong());
      }
    }
    // Fail on an unknown task before creating the run folder.
    const auto names = biud::train::taskNames();
    if (std::find(names.begin(), names.end(), cfg.task) == names.end()) biud::train::makeTask(cfg.task, cfg, ctx);
    ctx.runDir = app.prepareOutDir(cfg.task, biud::app::App::OutKind::kTrainingRun);
    biud::log::info("train", "{} | run folder {} | {}", biud::app::versionString(), ctx.runDir,
                    biud::runtime::describe());
    biud::log::info("train", "resolved config:\n{}", biud::config::toYaml(cfg));
    auto task = biud::train::makeTask(cfg.task, cfg, ctx);
    biud::train::Trainer trainer(cfg, ctx.runDir, std::move(task), ctx);
    return trainer.train();
  });
}
