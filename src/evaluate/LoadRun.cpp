#include "biud/evaluate/LoadRun.h"

#include <torch/torch.h>

#include <filesystem>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/Ema.h"
#include "biud/train/TeacherFeatures.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

namespace {
void absolute(std::string& p) {
  if (!p.empty() && stdfs::path(p).is_relative() && stdfs::exists(p)) p = stdfs::absolute(p).lexically_normal().string();
}
}  // namespace

void absolutizePaths(Config& c) {
  for (std::string* p : {&c.data.manifest, &c.data.xray_manifest, &c.data.cache_dir, &c.data.pairing, &c.text.vocab,
                         &c.text.spm_model, &c.text.lexicon, &c.eval.prompts, &c.model.teacher, &c.model.ct_encoder.weights,
                         &c.model.xray_encoder.weights, &c.model.text_encoder.weights, &c.x2ct.pretrained,
                         &c.x2ct.xray_manifest, &c.x2ct.latent_cache, &c.finetune.run, &c.report.run})
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
    BIUD_CHECK(latest.has_value(), DataError, "`{}` holds no checkpoint (expected {}/checkpoints/step_*/): train it first",
               runDir, runDir);
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

/// A finetune/report run's model starts from the CT encoder of a BIUD run; that run's config
/// (not the downstream run's) describes the encoder, its input grid and the tokenizer.
void adoptPretrainedConfig(LoadedRun& r, const std::string& runRoot) {
  const std::string& pre = r.cfg.task == "finetune" ? r.cfg.finetune.run : r.cfg.report.run;
  const std::string key = r.cfg.task + ".run";
  BIUD_CHECK(!pre.empty(), DataError, "`{}` is a {} run without {} in its config.resolved.yaml: the pretrained BIUD run is "
             "needed for the CT encoder's architecture", runRoot, r.cfg.task, key);
  BIUD_CHECK(stdfs::is_directory(pre), DataError,
             "`{}` is a {} run started from `{}` ({}), which no longer exists; its config.resolved.yaml describes the CT "
             "encoder: restore that folder or set {} in {}/config.resolved.yaml to where it is now",
             runRoot, r.cfg.task, pre, key, key, runRoot);
  const auto loc = locateRun(pre);
  const auto cfgPath = loc.root / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(cfgPath), DataError, "`{}` ({} of {}) has no config.resolved.yaml", loc.root.string(), key, runRoot);
  const auto pc = config::parse<Config>(config::Document::fromFile(cfgPath.string()));
  BIUD_CHECK(pc.task == "biud", DataError, "`{}` ({} of {}) is a `{}` run, not a BIUD run", loc.root.string(), key, runRoot,
             pc.task);
  r.cfg.model.ct_encoder = pc.model.ct_encoder;
  dropInitialWeights(r.cfg.model.ct_encoder);
  r.cfg.model.ct_encoder.frozen = false;
  r.cfg.data.ct = pc.data.ct;  // the task feeds the encoder its pretraining grid
  r.cfg.text = pc.text;        // the decoder's vocabulary is the pretrained run's tokenizer
  r.pretrained = loc.root.string();
}

}  // namespace

std::shared_ptr<models::VisualEncoderImpl> LoadedRun::ctEncoder() const {
  if (biud) return biud->ct_encoder;
  if (finetune) return finetune->ct_encoder;
  if (report) return report->ct_encoder;
  return nullptr;
}

LoadedRun loadRun(const std::string& runDir, const c10::Device& device, bool ema) {
  const auto loc = locateRun(runDir);
  const stdfs::path& ckpt = loc.checkpoint;
  const stdfs::path& runRoot = loc.root;
  const auto cfgPath = runRoot / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(cfgPath), DataError, "`{}` has no config.resolved.yaml: is it a biud run folder?", runRoot.string());
  LoadedRun r;
  r.cfg = config::parse<Config>(config::Document::fromFile(cfgPath.string()));
  r.checkpoint = ckpt.string();
  for (NetConfig* n : {&r.cfg.model.ct_encoder, &r.cfg.model.xray_encoder, &r.cfg.model.text_encoder,
                       &r.cfg.model.fusion, &r.cfg.model.decoder})
    dropInitialWeights(*n);
  if (r.cfg.task == "finetune" || r.cfg.task == "report") adoptPretrainedConfig(r, runRoot.string());
  r.tokenizer = text::makeTokenizer(r.cfg.text);
  const auto weights = (ckpt / "model.safetensors").string();
  if (stdfs::exists(ckpt / "ctclip.json")) {  // biud-import-weights ct-clip
    r.ctclip = models::CtClip(models::CtClipOptions::fromJsonFile((ckpt / "ctclip.json").string()));
    tensor::loadModule(*r.ctclip, weights);
    r.ctclip->to(device);
    models::freeze(*r.ctclip);
    log::info("run", "loaded {} (CT-CLIP, imported)", ckpt.string());
    return r;
  }
  // The raw weights, then (eval.ema) the moving average over the trained ones.
  auto average = [&](torch::nn::Module& m) {
    if (ema) r.ema = train::applyEma(m, (ckpt / "ema.safetensors").string());
  };
  if (r.cfg.task == "clip2d") {
    r.clip = models::ClipModel(r.cfg, r.cfg.model.xray_encoder, r.tokenizer->vocabSize());
    tensor::loadModule(*r.clip, weights);
    average(*r.clip);
    r.clip->to(device);
    models::freeze(*r.clip);
  } else if (r.cfg.task == "biud") {
    const auto tf = train::TeacherFeatures::load(train::teacherFeaturesPath(r.cfg.data.pairing));
    r.biud = models::BiudModel(r.cfg, r.tokenizer->vocabSize(), tf.h_star.size(1));
    tensor::loadModule(*r.biud, weights);
    average(*r.biud);
    r.biud->to(device);
    models::freeze(*r.biud);
  } else if (r.cfg.task == "x2ct") {
    // An X-ray CLIP: the trained X-ray tower and the frozen report tower (X2ctTask.h).
    r.clip = models::ClipModel(models::x2ctModelConfig(r.cfg), r.cfg.model.xray_encoder, r.tokenizer->vocabSize());
    tensor::loadModule(*r.clip, weights);
    average(*r.clip);
    r.clip->to(device);
    models::freeze(*r.clip);
  } else if (r.cfg.task == "finetune") {
    // The number of labels is the head's: the label columns came from a manifest that may have changed.
    const auto tensors = tensor::readSafetensors(weights);
    const auto it = tensors.find("head.weight");
    BIUD_CHECK(it != tensors.end() && it->second.dim() == 2, DataError,
               "`{}` has no 2-D `head.weight`: not the checkpoint of a finetune run", weights);
    r.finetune = models::FinetuneModel(models::makeVisualEncoder(r.cfg.model.ct_encoder), it->second.size(0), 0.0);
    tensor::loadStateDict(*r.finetune, tensors, {}, weights);
    average(*r.finetune);
    r.finetune->to(device);
    models::freeze(*r.finetune);
  } else if (r.cfg.task == "report") {
    auto enc = models::makeVisualEncoder(r.cfg.model.ct_encoder);
    const auto sp = r.tokenizer->specialIds();
    auto dec = models::makeReportDecoder(r.cfg.model.decoder, enc->dim(), r.tokenizer->vocabSize(),
                                         models::DecoderSpecialIds{sp.cls, sp.sep, sp.pad});
    r.report = models::ReportModel(enc, dec);
    tensor::loadModule(*r.report, weights);
    average(*r.report);
    r.report->to(device);
    models::freeze(*r.report);
  } else {
    BIUD_THROW(DataError, "run `{}` is task `{}`; loading it for inference is not supported yet", runRoot.string(), r.cfg.task);
  }
  log::info("run", "loaded {} ({}{})", ckpt.string(), r.cfg.task, r.ema ? ", averaged weights" : "");
  return r;
}

}  // namespace biud::evaluate
