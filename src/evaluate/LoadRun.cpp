#include "biud/evaluate/LoadRun.h"

#include <filesystem>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/evaluate/TaskSpec.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/Ema.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

namespace {
void absolute(std::string& p) {
  if (!p.empty() && stdfs::path(p).is_relative() && stdfs::exists(p))
    p = stdfs::absolute(p).lexically_normal().string();
}
}  // namespace

void absolutizePaths(Config& c) {
  for (std::string* p :
       {&c.data.manifest, &c.data.xray_manifest, &c.data.cache_dir, &c.data.pairing, &c.text.vocab, &c.text.spm_model,
        &c.text.lexicon, &c.eval.prompts, &c.model.teacher, &c.model.ct_encoder.weights, &c.model.xray_encoder.weights,
        &c.model.text_encoder.weights, &c.x2ct.pretrained, &c.x2ct.xray_manifest, &c.x2ct.latent_cache, &c.finetune.run,
        &c.report.run})
    absolute(*p);
}

namespace {

struct RunLocation {
  stdfs::path checkpoint, root;
};

/// The checkpoint folder and run folder of `runDir` (a run folder: its newest checkpoint; or a
/// checkpoint folder `run/checkpoints/step_*`).
RunLocation locateRun(const std::string& runDir) {
  const stdfs::path dir(runDir);
  RunLocation l;
  if (stdfs::exists(dir / "state.json")) {
    l.checkpoint = dir;
    l.root = dir.parent_path().parent_path();
  } else {
    train::CheckpointManager m(dir / "checkpoints", 1);
    auto latest = m.latest();
    BIUD_CHECK(latest.has_value(), DataError,
               "`{}` holds no checkpoint (expected {}/checkpoints/step_*/): train it first", runDir, runDir);
    l.checkpoint = *latest;
    l.root = dir;
  }
  return l;
}

/// The checkpoint holds every weight: initial weights are not read again (they may have moved),
/// except an HF folder, whose config.json also defines the architecture.
void dropInitialWeights(NetConfig& n) {
  if (!(stdfs::is_directory(n.weights) && stdfs::exists(stdfs::path(n.weights) / "config.json")))
    n.weights.clear(), n.weights_prefix.clear();
}

}  // namespace

void adoptPretrainedConfig(LoadedRun& r, const std::string& pre, const std::string& key) {
  const std::string& runRoot = r.root;
  BIUD_CHECK(!pre.empty(), DataError,
             "`{}` is a {} run without {} in its config.resolved.yaml: the pretrained BIUD run is "
             "needed for the CT encoder's architecture",
             runRoot, r.cfg.task, key);
  BIUD_CHECK(
      stdfs::is_directory(pre), DataError,
      "`{}` is a {} run started from `{}` ({}), which no longer exists; its config.resolved.yaml describes the CT "
      "encoder: restore that folder or set {} in {}/config.resolved.yaml to where it is now",
      runRoot, r.cfg.task, pre, key, key, runRoot);
  const auto loc = locateRun(pre);
  const auto cfgPath = loc.root / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(cfgPath), DataError, "`{}` ({} of {}) has no config.resolved.yaml", loc.root.string(), key,
             runRoot);
  const auto pc = config::parse<Config>(config::Document::fromFile(cfgPath.string()));
  BIUD_CHECK(pc.task == "biud", DataError, "`{}` ({} of {}) is a `{}` run, not a BIUD run", loc.root.string(), key,
             runRoot, pc.task);
  r.cfg.model.ct_encoder = pc.model.ct_encoder;
  dropInitialWeights(r.cfg.model.ct_encoder);
  r.cfg.model.ct_encoder.frozen = false;
  r.cfg.data.ct = pc.data.ct;  // the task feeds the encoder its pretraining grid
  r.cfg.text = pc.text;        // the decoder's vocabulary is the pretrained run's tokenizer
  r.pretrained = loc.root.string();
}

void loadRunWeights(torch::nn::Module& m, LoadedRun& r, const c10::Device& device, bool ema,
                    const tensor::TensorMap* tensors) {
  const auto ckpt = stdfs::path(r.checkpoint);
  const auto weights = (ckpt / "model.safetensors").string();
  if (tensors)
    tensor::loadStateDict(m, *tensors, {}, weights);
  else
    tensor::loadModule(m, weights);
  // The raw weights, then (eval.ema) the moving average over the trained ones.
  if (ema) r.ema = train::applyEma(m, (ckpt / "ema.safetensors").string());
  m.to(device);
  models::freeze(m);
}

LoadedRun loadRun(const std::string& runDir, const c10::Device& device, bool ema) {
  const auto loc = locateRun(runDir);
  const auto cfgPath = loc.root / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(cfgPath), DataError, "`{}` has no config.resolved.yaml: is it a biud run folder?",
             loc.root.string());
  LoadedRun r;
  r.cfg = config::parse<Config>(config::Document::fromFile(cfgPath.string()));
  r.root = loc.root.string();
  r.checkpoint = loc.checkpoint.string();
  for (NetConfig* n : {&r.cfg.model.ct_encoder, &r.cfg.model.xray_encoder, &r.cfg.model.text_encoder,
                       &r.cfg.model.fusion, &r.cfg.model.decoder})
    dropInitialWeights(*n);
  // CT-CLIP folders imported before the config recorded `task: ct-clip` are known by ctclip.json.
  const std::string task = stdfs::exists(loc.checkpoint / "ctclip.json") ? "ct-clip" : r.cfg.task;
  const auto& spec = taskSpec(task, fmt::format("`{}`", cfgPath.string()));
  BIUD_CHECK(spec.load, ConfigError, "run `{}` is task `{}`; loading it for inference is not supported", r.root, task);
  r.model = spec.load(r, device, ema);
  log::info("run", "loaded {} ({}{})", r.checkpoint, task, r.ema ? ", averaged weights" : "");
  return r;
}

}  // namespace biud::evaluate
