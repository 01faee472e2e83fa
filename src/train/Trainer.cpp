#include "biud/train/Trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Join.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/dist/CheckpointSync.h"
#include "biud/dist/Communicator.h"
#include "biud/dist/DataParallel.h"
#include "biud/dist/SyncBatchNorm.h"
#include "biud/tensor/Runtime.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Ema.h"
#include "biud/train/Optim.h"
#include "biud/train/Precision.h"
#include "biud/train/RunConfigJson.h"

namespace biud::train {

namespace {

/// Whether to stop now (SIGINT/SIGTERM). With several ranks the decision is collective: a
/// signal reaches the ranks at slightly different steps, and a rank that stops alone would
/// leave the others blocked in their next collective. One 1-element allreduce per step.
bool stopAgreed(dist::Communicator* comm) {
  const bool mine = app::stopRequested();
  if (!comm || !comm->distributed()) return mine;
  auto t = torch::full({1}, mine ? 1.0 : 0.0, torch::kFloat64);
  comm->allreduce(t);
  return t.item<double>() > 0;
}

/// Fault injection for the tests of failure handling: `BIUD_FAULT_KILL_RANK_AT_STEP=R:S` makes
/// rank R kill itself (SIGKILL, like the OOM killer or a lost node) right after optimizer step
/// S. Read once; malformed values are ignored with a warning.
struct FaultKill {
  int rank = -1;
  std::int64_t step = -1;
};
FaultKill faultKill() {
  FaultKill f;
  const char* v = std::getenv("BIUD_FAULT_KILL_RANK_AT_STEP");
  if (!v || !*v) return f;
  const std::string s = v;
  const auto colon = s.find(':');
  try {
    if (colon == std::string::npos) throw std::invalid_argument("no colon");
    f.rank = std::stoi(s.substr(0, colon));
    f.step = std::stoll(s.substr(colon + 1));
  } catch (const std::exception&) {
    log::warn("train", "ignoring BIUD_FAULT_KILL_RANK_AT_STEP=`{}`: expected RANK:STEP, e.g. 1:3", s);
    f = {};
  }
  return f;
}

/// Key of rank r's CPU generator in rng.pt: rank 0 keeps the single-process name.
std::string generatorKey(int rank) {
  return rank == 0 ? std::string("cpu_generator") : "cpu_generator_rank" + std::to_string(rank);
}

/// LibTorch's archive writer cannot report a failed write: its stream writer retries the write
/// in its destructor during unwinding and the process aborts (a full disk killed runs with
/// SIGABRT). Archives are therefore serialised into memory, which cannot fail that way, and
/// written by fs::atomicWrite, whose errors are ordinary exceptions naming the file.
void saveArchive(torch::serialize::OutputArchive& a, const stdfs::path& path) {
  std::string bytes;
  a.save_to([&bytes](const void* p, size_t n) -> size_t {
    bytes.append(static_cast<const char*>(p), n);
    return n;
  });
  fs::atomicWrite(path, bytes);
}

/// Read a LibTorch archive of a checkpoint; a truncated or corrupt file is one DataError naming
/// it and the checkpoints to fall back on.
void loadArchive(torch::serialize::InputArchive& a, const stdfs::path& path, const std::string& others,
                 std::optional<c10::Device> device = std::nullopt) {
  const std::string bytes = fs::readFile(path);
  try {
    a.load_from(bytes.data(), bytes.size(), device);
  } catch (const std::exception& e) {
    BIUD_THROW(DataError, "checkpoint file `{}` ({} bytes) is truncated or corrupt: {}. {}", path.string(),
               bytes.size(), firstLine(e.what()), others);
  }
}

}  // namespace

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
  // Every loss scores this rank's rows against the global batch (dist/GlobalBatch.h).
  BIUD_CHECK(cfg_.distributed.local_loss, ConfigError,
             "distributed.local_loss: false is not supported: each rank computes the loss of its own rows against the "
             "gathered batch, which gives exactly the single-process gradient; remove the key or set it to true");
  std::vector<ParamGroupInfo> groups;
  opt_ = buildOptimizer(task_->module(), cfg_.optimizer, &groups);
  if (ctx_.comm && ctx_.world > 1) {
    std::vector<torch::Tensor> trainable;
    for (auto& p : task_->module().parameters())
      if (p.requires_grad()) trainable.push_back(p);
    dp_ = std::make_unique<dist::DataParallel>(ctx_.comm, trainable, task_->module().buffers(),
                                               cfg_.distributed.bucket_mb);
    if (cfg_.distributed.sync_batchnorm) {
      const int synced = dist::syncBatchNorm(task_->module(), ctx_.comm);
      if (synced > 0)
        log::info("train", "SyncBatchNorm: {} BatchNorm layer(s) normalise over the global batch of {} ranks", synced,
                  ctx_.world);
    }
    // Every rank built its model from the same seed (and rank 0's weights were just broadcast).
    // From here on, torch's generators drive per-rank randomness (dropout, token dropout): ranks
    // other than 0 get their own streams, or they would draw the same masks as rank 0. Rank 0
    // keeps the single-process stream. Data order, augmentation and EFM masks do not use these
    // generators (they are keyed by seed, epoch and item).
    if (ctx_.rank > 0) runtime::seedTorch(static_cast<std::uint64_t>(cfg_.seed), ctx_.rank);
  }
  baseLrs_ = groupLrs(*opt_);
  if (cfg_.trainer.ema > 0)
    ema_ = std::make_unique<WeightEma>(task_->module(), cfg_.trainer.ema, cfg_.trainer.ema_warmup);
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
    if (cfg_.logging.tensorboard)
      sinks_.add(std::make_unique<TensorBoardSink>((stdfs::path(runDir_) / "tensorboard").string()));
  }
}

Trainer::~Trainer() { sinks_.close(); }

stdfs::path Trainer::saveCheckpoint() {
  // Every rank's CPU generator goes into the checkpoint (rank 0 writes it): per-rank random
  // streams (dropout, token dropout) continue exactly on resume. The data position is the same
  // on all ranks (the sampler cuts each global batch into rank slices), so one copy suffices.
  const torch::Tensor myGen = at::detail::getDefaultCPUGenerator().get_state();
  torch::Tensor allGens = myGen.unsqueeze(0);
  const bool multi = ctx_.comm && ctx_.comm->distributed();
  if (multi) allGens = ctx_.comm->allGather(myGen.unsqueeze(0));  // [world, state bytes]
  stdfs::path dir;
  auto write = [&] {
    dir = ckpt_.save(step_, [&](const stdfs::path& d) {
      // Weights as safetensors with the modules' names (HF/torchvision-compatible where a
      // public model exists), readable from Python; optimizer and RNG as LibTorch archives.
      tensor::saveModule(task_->module(), (d / "model.safetensors").string(), checkpointMetadata(cfg_, step_));
      if (ema_)
        tensor::writeSafetensors((d / "ema.safetensors").string(), ema_->state(), checkpointMetadata(cfg_, step_));
      writeCheckpointConfig(d, cfg_, task_->module(), step_);  // config.json + tokenizer files (RunConfigJson.h)
      {
        torch::serialize::OutputArchive a;
        opt_->save(a);
        saveArchive(a, d / "optimizer.pt");
      }
      {
        torch::serialize::OutputArchive a;
        for (int r = 0; r < allGens.size(0); ++r) a.write(generatorKey(r), allGens[r].clone());
        saveArchive(a, d / "rng.pt");
      }
      nlohmann::json s;
      s["step"] = step_;
      s["bad_streak"] = badStreak_;
      s["skipped"] = skipped_;
      if (ema_) s["ema_updates"] = ema_->updates();
      s["world_size"] = ctx_.world;
      s["task"] = cfg_.task;
      s["task_state"] = task_->state();
      s["config"] = config::toYaml(cfg_);
      fs::atomicWrite(d / "state.json", s.dump(2));
    });
  };
  if (multi) {
    // Rank 0 writes; if that fails, every rank stops with its message (no rank trains on).
    dist::writeOnMain(*ctx_.comm, write);
    if (ctx_.rank != 0) return {};
  } else {
    write();
  }
  log::info("train", "saved checkpoint {}", dir.string());
  return dir;
}

void Trainer::loadCheckpoint(const stdfs::path& dir) {
  // Where to go when this checkpoint is damaged: the other complete ones of the run.
  std::string others;
  for (const auto& p : ckpt_.list())
    if (p.filename() != dir.filename()) others += (others.empty() ? "" : ", ") + p.string();
  others = others.empty() ? "No other checkpoint exists in this run"
                          : fmt::format("Resume from another checkpoint with --resume <folder>: {}", others);
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(fs::readFile(dir / "state.json"));
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "checkpoint file `{}` is not valid JSON (truncated or edited?): {}. {}",
               (dir / "state.json").string(), e.what(), others);
  }
  BIUD_CHECK(s.value("task", std::string()) == cfg_.task, DataError,
             "checkpoint `{}` is from task `{}`, this run is task `{}`", dir.string(),
             s.value("task", std::string("?")), cfg_.task);
  const int world = s.value("world_size", 1);
  BIUD_CHECK(world == ctx_.world, DistError,
             "checkpoint `{}` was written with {} process(es); resuming with {} would change the data order and the "
             "batch size. Resume with --nproc {} (or start a new run from its weights)",
             dir.string(), world, ctx_.world, world);
  tensor::loadModule(task_->module(), (dir / "model.safetensors").string());
  {
    torch::serialize::InputArchive a;
    loadArchive(a, dir / "optimizer.pt", others, ctx_.device);
    try {
      opt_->load(a);
    } catch (const std::exception& e) {
      BIUD_THROW(DataError, "checkpoint file `{}` does not fit this run's optimizer ({}): {}. {}",
                 (dir / "optimizer.pt").string(), cfg_.optimizer.name, firstLine(e.what()), others);
    }
  }
  {
    torch::serialize::InputArchive a;
    loadArchive(a, dir / "rng.pt", others);
    torch::Tensor g;
    try {
      // This rank's stream; checkpoints from before per-rank streams hold rank 0's only.
      if (!a.try_read(generatorKey(ctx_.rank), g)) a.read("cpu_generator", g);
      auto gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(g);
    } catch (const std::exception& e) {
      BIUD_THROW(DataError, "checkpoint file `{}` holds no usable random-generator state for rank {}: {}. {}",
                 (dir / "rng.pt").string(), ctx_.rank, firstLine(e.what()), others);
    }
  }
  if (ema_) {
    const auto emaPath = dir / "ema.safetensors";
    if (stdfs::exists(emaPath)) {
      ema_->load(tensor::readSafetensors(emaPath.string()), s.value("ema_updates", std::int64_t{0}), emaPath.string());
    } else {
      ema_->reset();
      log::warn("train", "{} has no ema.safetensors (trained without trainer.ema): the average starts from its weights",
                dir.string());
    }
  }
  step_ = s.at("step").get<std::int64_t>();
  badStreak_ = s.value("bad_streak", 0);
  skipped_ = s.value("skipped", 0);
  task_->loadState(s.at("task_state"));
  log::info("train", "resumed from {} at step {}", dir.string(), step_);
}

namespace {
/// " in conv1.weight, layer1.0.bn1.bias, ... (3 more)": the parameters whose gradient holds a NaN
/// or an Inf, to say where a non-finite gradient norm comes from.
std::string nonFiniteGradients(torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters())
    if (p.value().grad().defined() && !torch::isfinite(p.value().grad()).all().item<bool>()) names.push_back(p.key());
  return names.empty() ? "" : " in " + joinFirst(names, 4);
}
}  // namespace

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
    const std::string where = std::isfinite(r.loss) ? nonFiniteGradients(task_->module()) : std::string();
    opt_->zero_grad(true);
    log::warn("train", "step {}: non-finite {} ({}){}; update skipped ({} in a row, limit {})", step_ + 1,
              std::isfinite(r.loss) ? "gradient norm" : "loss", std::isfinite(r.loss) ? gradNorm : r.loss, where,
              badStreak_, cfg_.trainer.max_bad_steps);
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
  if (ema_) {
    if (step_ <= cfg_.trainer.ema_start)
      ema_->reset();  // the average starts from the weights after trainer.ema_start steps
    else
      ema_->update();
  }
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
    if (ema_) ema_->swap();  // validate the averaged weights: the ones evaluation loads
    try {
      m = task_->validate();
    } catch (...) {
      if (ema_) ema_->swap();
      throw;
    }
    if (ema_) ema_->swap();
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
  // Temporary folders of saves that never finished (a crash, a kill, a full disk) are removed.
  if (ctx_.rank == 0) ckpt_.removeTemporaries();
  if (!cfg_.trainer.resume.empty()) loadCheckpoint(ckpt_.resolve(cfg_.trainer.resume));
  const std::int64_t total = cfg_.trainer.steps;
  Progress bar("train", static_cast<std::uint64_t>(total), "step");
  bar.set(static_cast<std::uint64_t>(step_));
  if (step_ >= total && !cfg_.trainer.resume.empty())
    log::warn("train",
              "the resumed run is already at step {} of trainer.steps = {}: nothing to train (raise "
              "trainer.steps to go on)",
              step_, total);
  const FaultKill kill = faultKill();
  while (step_ < total) {
    if (stopAgreed(ctx_.comm.get())) {
      log::warn("train", "stop requested at step {}: saving a checkpoint and exiting", step_);
      saveCheckpoint();
      sinks_.flush();
      return app::kExitInterrupted;
    }
    if (!stepOnce()) continue;
    if (kill.rank == ctx_.rank && kill.step == step_) {
      log::warn("train", "BIUD_FAULT_KILL_RANK_AT_STEP: rank {} kills itself after step {}", ctx_.rank, step_);
      std::raise(SIGKILL);
    }
    bar.set(static_cast<std::uint64_t>(step_), fmt::format("loss {:.4f}", last_["loss"]));
    if (step_ % cfg_.logging.every_steps == 0 || step_ == total) {
      sinks_.log(step_, last_);
      log::debug("train", "step {} loss {:.5f} lr {:.3g}", step_, last_["loss"], last_["lr"]);
      sinks_.flush();  // `tail -f metrics.jsonl` and TensorBoard see a run as it goes
      log::flush();
    }
    if (cfg_.trainer.val_every > 0 && step_ % cfg_.trainer.val_every == 0 && step_ < total) {
      runValidation();
      if (task_->done()) {
        log::info("train", "the task stopped early at step {} of {} (early stopping)", step_, total);
        break;
      }
    }
    if (cfg_.trainer.save_every > 0 && step_ % cfg_.trainer.save_every == 0 && step_ < total) saveCheckpoint();
  }
  bar.finish(last_.count("loss") ? fmt::format("loss {:.4f}", last_["loss"]) : std::string("no step taken"));
  runValidation();
  saveCheckpoint();
  task_->finish();
  sinks_.flush();
  return app::kExitOk;
}

}  // namespace biud::train
