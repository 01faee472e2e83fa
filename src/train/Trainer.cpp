#include "biud/train/Trainer.h"

#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <unistd.h>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/DataParallel.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Optim.h"
#include "biud/train/Precision.h"

namespace biud::train {

double residentMemoryMb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, rss = 0;
  in >> pages >> rss;
  return static_cast<double>(rss) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

Trainer::Trainer(const Config& cfg, std::string runDir, std::unique_ptr<Task> task, TaskContext ctx)
    : cfg_(cfg),
      runDir_(std::move(runDir)),
      task_(std::move(task)),
      ctx_(ctx),
      ckpt_(stdfs::path(runDir_) / "checkpoints", cfg.trainer.keep_last) {
  std::vector<ParamGroupInfo> groups;
  opt_ = buildOptimizer(task_->module(), cfg_.optimizer, &groups);
  if (ctx_.comm && ctx_.world > 1) {
    std::vector<torch::Tensor> trainable;
    for (auto& p : task_->module().parameters())
      if (p.requires_grad()) trainable.push_back(p);
    dp_ = std::make_unique<dist::DataParallel>(ctx_.comm, trainable, task_->module().buffers(), cfg_.distributed.bucket_mb);
  }
  baseLrs_ = groupLrs(*opt_);
  precision_ = resolvePrecision(cfg_.trainer.precision, ctx_.device);
  std::int64_t nParams = 0, nTrain = 0;
  for (const auto& p : task_->module().parameters()) {
    nParams += p.numel();
    if (p.requires_grad()) nTrain += p.numel();
  }
  log::info("train", "task {}: {:.2f}M parameters ({:.2f}M trainable) in {} optimizer group(s) on {}, {}", cfg_.task,
            nParams / 1e6, nTrain / 1e6, groups.size(), ctx_.device.str(), precision_);
  if (ctx_.rank == 0) {
    if (cfg_.logging.jsonl) sinks_.add(std::make_unique<JsonlSink>((stdfs::path(runDir_) / "metrics.jsonl").string()));
    if (cfg_.logging.tensorboard) sinks_.add(std::make_unique<TensorBoardSink>((stdfs::path(runDir_) / "tensorboard").string()));
  }
}

Trainer::~Trainer() { sinks_.close(); }

stdfs::path Trainer::saveCheckpoint() {
  if (ctx_.rank != 0) return {};
  const auto dir = ckpt_.save(step_, [&](const stdfs::path& d) {
    // Weights as safetensors with the modules' names (HF/torchvision-compatible where a
    // public model exists), readable from Python; optimizer and RNG as LibTorch archives.
    tensor::saveModule(task_->module(), (d / "model.safetensors").string());
    {
      torch::serialize::OutputArchive a;
      opt_->save(a);
      a.save_to((d / "optimizer.pt").string());
    }
    {
      torch::serialize::OutputArchive a;
      a.write("cpu_generator", at::detail::getDefaultCPUGenerator().get_state());
      a.save_to((d / "rng.pt").string());
    }
    nlohmann::json s;
    s["step"] = step_;
    s["bad_streak"] = badStreak_;
    s["skipped"] = skipped_;
    s["world_size"] = ctx_.world;
    s["task"] = cfg_.task;
    s["task_state"] = task_->state();
    s["config"] = config::toYaml(cfg_);
    fs::atomicWrite(d / "state.json", s.dump(2));
  });
  log::info("train", "saved checkpoint {}", dir.string());
  return dir;
}

void Trainer::loadCheckpoint(const stdfs::path& dir) {
  const auto s = nlohmann::json::parse(fs::readFile(dir / "state.json"));
  BIUD_CHECK(s.value("task", std::string()) == cfg_.task, DataError,
             "checkpoint `{}` is from task `{}`, this run is task `{}`", dir.string(), s.value("task", std::string("?")),
             cfg_.task);
  const int world = s.value("world_size", 1);
  BIUD_CHECK(world == ctx_.world, DistError,
             "checkpoint `{}` was written with {} process(es); resuming with {} would change the data order and the "
             "batch size. Resume with --nproc {} (or start a new run from its weights)",
             dir.string(), world, ctx_.world, world);
  tensor::loadModule(task_->module(), (dir / "model.safetensors").string());
  {
    torch::serialize::InputArchive a;
    a.load_from((dir / "optimizer.pt").string(), ctx_.device);
    opt_->load(a);
  }
  {
    torch::serialize::InputArchive a;
    a.load_from((dir / "rng.pt").string());
    torch::Tensor g;
    a.read("cpu_generator", g);
    auto gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(g);
  }
  step_ = s.at("step").get<std::int64_t>();
  badStreak_ = s.value("bad_streak", 0);
  skipped_ = s.value("skipped", 0);
  task_->loadState(s.at("task_state"));
  log::info("train", "resumed from {} at step {}", dir.string(), step_);
}

bool Trainer::stepOnce() {
  const auto t0 = std::chrono::steady_clock::now();
  applyLr(*opt_, baseLrs_, lrFactor(step_, cfg_.trainer.steps, cfg_.schedule));
  opt_->zero_grad(/*set_to_none=*/true);
  StepContext sc;
  sc.accum = cfg_.trainer.grad_accum;
  sc.step = step_;
  if (dp_) sc.setSync = [this](bool on) { dp_->setSync(on); };
  StepResult r;
  {
    AutocastScope amp(precision_, ctx_.device);  // forward and backward of the step; weights stay fp32
    r = task_->trainStep(sc);
  }
  if (dp_) dp_->finalize();

  std::vector<torch::Tensor> params;
  for (auto& g : opt_->param_groups())
    for (auto& p : g.params())
      if (p.grad().defined()) params.push_back(p);
  const double maxNorm = cfg_.trainer.clip_grad_norm > 0 ? cfg_.trainer.clip_grad_norm : INFINITY;
  const double gradNorm = params.empty() ? 0.0 : torch::nn::utils::clip_grad_norm_(params, maxNorm);

  bool bad = !std::isfinite(r.loss) || !std::isfinite(gradNorm);
  if (dp_) {
    // Every rank must take the same decision, and the logged loss is the mean over ranks.
    auto t = torch::tensor({bad ? 0.0 : r.loss, bad ? 1.0 : 0.0}, torch::kFloat64);
    ctx_.comm->allreduce(t);
    bad = t[1].item<double>() > 0;
    if (!bad) r.loss = t[0].item<double>() / ctx_.world;
  }
  if (bad) {
    ++badStreak_;
    ++skipped_;
    opt_->zero_grad(true);
    log::warn("train", "step {}: non-finite {} ({}); update skipped ({} in a row, limit {})", step_ + 1,
              std::isfinite(r.loss) ? "gradient norm" : "loss", std::isfinite(r.loss) ? gradNorm : r.loss, badStreak_,
              cfg_.trainer.max_bad_steps);
    if (badStreak_ >= cfg_.trainer.max_bad_steps) {
      const auto l = ckpt_.latest();
      BIUD_THROW(ValueError,
                 "{} steps in a row had a non-finite loss or gradient; stopping. Last good checkpoint: {}. Try a lower "
                 "optimizer.lr, a shorter schedule.warmup_steps or trainer.clip_grad_norm, and check the data",
                 badStreak_, l ? l->string() : std::string("none"));
    }
    return false;
  }
  opt_->step();
  ++step_;
  badStreak_ = 0;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  last_ = r.metrics;
  last_["loss"] = r.loss;
  last_["lr"] = opt_->param_groups().front().options().get_lr();
  last_["grad_norm"] = gradNorm;
  last_["samples_per_s"] = secs > 0 ? static_cast<double>(r.samples) * ctx_.world / secs : 0.0;
  last_["memory_mb"] = residentMemoryMb();
  last_["skipped_steps"] = static_cast<double>(skipped_);
  return true;
}

Metrics Trainer::runValidation() {
  Metrics m;
  {
    AutocastScope amp(precision_, ctx_.device);
    m = task_->validate();
  }
  if (m.empty()) return m;
  Metrics prefixed;
  for (auto& [k, v] : m) prefixed["val/" + k] = v;
  sinks_.log(step_, prefixed);
  std::string line;
  for (auto& [k, v] : m) line += fmt::format("{}={:.4f} ", k, v);
  log::info("train", "validation at step {}: {}", step_, line);
  return prefixed;
}

int Trainer::train() {
  if (!cfg_.trainer.resume.empty()) loadCheckpoint(ckpt_.resolve(cfg_.trainer.resume));
  const std::int64_t total = cfg_.trainer.steps;
  Progress bar("train", static_cast<std::uint64_t>(total), "step");
  bar.set(static_cast<std::uint64_t>(step_));
  while (step_ < total) {
    if (app::stopRequested()) {
      log::warn("train", "stop requested at step {}: saving a checkpoint and exiting", step_);
      saveCheckpoint();
      sinks_.flush();
      return app::kExitInterrupted;
    }
    if (!stepOnce()) continue;
    bar.set(static_cast<std::uint64_t>(step_), fmt::format("loss {:.4f}", last_["loss"]));
    if (step_ % cfg_.logging.every_steps == 0 || step_ == total) {
      sinks_.log(step_, last_);
      log::debug("train", "step {} loss {:.5f} lr {:.3g}", step_, last_["loss"], last_["lr"]);
    }
    if (cfg_.trainer.val_every > 0 && step_ % cfg_.trainer.val_every == 0 && step_ < total) runValidation();
    if (cfg_.trainer.save_every > 0 && step_ % cfg_.trainer.save_every == 0 && step_ < total) saveCheckpoint();
  }
  bar.finish(fmt::format("loss {:.4f}", last_.count("loss") ? last_["loss"] : NAN));
  runValidation();
  saveCheckpoint();
  task_->finish();
  sinks_.flush();
  return app::kExitOk;
}

}  // namespace biud::train
