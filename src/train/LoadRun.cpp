#include <torch/torch.h>

#include <filesystem>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"
#include "biud/train/Tasks.h"
#include "biud/train/TeacherFeatures.h"
#include "biud/train/X2ctTask.h"

namespace biud::train {

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

LoadedRun loadRun(const std::string& runDir, const c10::Device& device) {
  stdfs::path dir(runDir);
  stdfs::path ckpt;
  stdfs::path runRoot;
  if (stdfs::exists(dir / "state.json")) {
    ckpt = dir;
    runRoot = dir.parent_path().parent_path();
  } else {
    CheckpointManager m(dir / "checkpoints", 1);
    auto l = m.latest();
    BIUD_CHECK(l.has_value(), DataError, "`{}` holds no checkpoint (expected {}/checkpoints/step_*/): train it first",
               runDir, runDir);
    ckpt = *l;
    runRoot = dir;
  }
  const auto cfgPath = runRoot / "config.resolved.yaml";
  BIUD_CHECK(stdfs::exists(cfgPath), DataError, "`{}` has no config.resolved.yaml: is it a biud run folder?", runRoot.string());
  LoadedRun r;
  r.cfg = config::parse<Config>(config::Document::fromFile(cfgPath.string()));
  r.checkpoint = ckpt.string();
  // The checkpoint holds every weight: initial weights are not read again (they may have moved),
  // except an HF folder, whose config.json also defines the architecture.
  for (NetConfig* n : {&r.cfg.model.ct_encoder, &r.cfg.model.xray_encoder, &r.cfg.model.text_encoder,
                       &r.cfg.model.fusion, &r.cfg.model.decoder})
    if (!(stdfs::is_directory(n->weights) && stdfs::exists(stdfs::path(n->weights) / "config.json")))
      n->weights.clear(), n->weights_prefix.clear();
  r.tokenizer = text::makeTokenizer(r.cfg.text);
  const auto weights = (ckpt / "model.safetensors").string();
  if (r.cfg.task == "clip2d") {
    r.clip = ClipModel(r.cfg, r.cfg.model.xray_encoder, r.tokenizer->vocabSize());
    tensor::loadModule(*r.clip, weights);
    r.clip->to(device);
    models::freeze(*r.clip);
  } else if (r.cfg.task == "biud") {
    const auto tf = TeacherFeatures::load(teacherFeaturesPath(r.cfg.data.pairing));
    r.biud = BiudModel(r.cfg, r.tokenizer->vocabSize(), tf.h_star.size(1));
    tensor::loadModule(*r.biud, weights);
    r.biud->to(device);
    models::freeze(*r.biud);
  } else if (r.cfg.task == "x2ct") {
    // An X-ray CLIP: the trained X-ray tower and the frozen report tower (X2ctTask.h).
    r.clip = ClipModel(x2ctModelConfig(r.cfg), r.cfg.model.xray_encoder, r.tokenizer->vocabSize());
    tensor::loadModule(*r.clip, weights);
    r.clip->to(device);
    models::freeze(*r.clip);
  } else {
    BIUD_THROW(DataError, "run `{}` is task `{}`; loading it for inference is not supported yet", runRoot.string(), r.cfg.task);
  }
  log::info("run", "loaded {} ({})", ckpt.string(), r.cfg.task);
  return r;
}

}  // namespace biud::train
