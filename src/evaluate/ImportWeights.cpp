#include "biud/evaluate/ImportWeights.h"

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

namespace {

std::int64_t countLines(const std::string& path) {
  std::ifstream in(path);
  std::int64_t n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

}  // namespace

nlohmann::ordered_json importCtClip(const CtClipImportOptions& opt, Config& cfg) {
  stdfs::path vocab = opt.tokenizer;
  if (stdfs::is_directory(vocab)) vocab /= "vocab.txt";
  BIUD_CHECK(stdfs::is_regular_file(vocab), ConfigError,
             "--tokenizer `{}`: no vocab.txt (pass CXR-BERT's vocab.txt or the folder holding it)", opt.tokenizer);
  BIUD_CHECK(opt.frames % opt.hints.temporal_patch_size == 0, ConfigError,
             "--frames {} is not a multiple of --temporal-patch-size {}", opt.frames, opt.hints.temporal_patch_size);
  BIUD_CHECK(opt.givenOut.empty() || !stdfs::exists(stdfs::path(opt.givenOut) / "checkpoints"), ConfigError,
             "--out `{}` already holds checkpoints: import into a new folder", opt.givenOut);

  log::info("import", "reading {}", opt.ckpt);
  auto sd = models::readCtClipCheckpoint(opt.ckpt);
  auto opts = models::inferCtClipOptions(sd, opt.hints, opt.ckpt);
  models::CtClip model(opts);
  std::vector<std::string> dropped;
  auto tensors = models::selectCtClipTensors(sd, model, opt.ckpt, &dropped);
  sd.clear();
  tensor::loadStateDict(*model, tensors, {}, opt.ckpt);  // every key, every shape
  const auto vocabLines = countLines(vocab.string());
  BIUD_CHECK(vocabLines <= opts.text.vocab_size, ConfigError,
             "--tokenizer `{}` has {} tokens, the checkpoint's text encoder {}: not this model's vocabulary",
             vocab.string(), vocabLines, opts.text.vocab_size);
  if (vocabLines != opts.text.vocab_size)
    log::warn("import", "`{}` has {} tokens, the text encoder's embedding table {} rows", vocab.string(), vocabLines,
              opts.text.vocab_size);

  auto& ct = cfg.data.ct;
  ct.spacing = opt.spacing;
  ct.size = {static_cast<int>(opts.image.image_size), static_cast<int>(opts.image.image_size),
             static_cast<int>(opt.frames)};
  ct.grid = "torch";
  BIUD_CHECK(opt.loader == "zeroshot" || opt.loader == "train", ConfigError,
             "--loader `{}`: zeroshot (CT-CLIP's scripts/data_inference_nii.py) or train (its scripts/data.py)",
             opt.loader);
  ct.clip_before_resample = opt.loader == "zeroshot";
  ct.hu_min = -1000, ct.hu_max = 1000, ct.scale = 1000, ct.pad_value = -1;
  ct.crop = "center";
  ct.window = "default";
  cfg.data.loader.batch_size = opt.batch;
  cfg.data.augment = {};
  cfg.eval.zeroshot_protocol = "ct-clip";
  cfg.eval.ema = false;
  // CT-CLIP is a CT-RATE model: its prompt names are CT-RATE's label columns.
  if (cfg.eval.prompts == EvalConfig{}.prompts) cfg.eval.prompts = "configs/prompts/ct_rate.yaml";
  absolutizePaths(cfg);
  const std::string out = opt.prepareOut ? opt.prepareOut() : std::string(".");
  const auto runVocab = stdfs::path(out) / "vocab.txt";
  fs::atomicWrite(runVocab, fs::readFile(vocab));
  cfg.text.tokenizer = "wordpiece";
  cfg.text.vocab = stdfs::absolute(runVocab).string();
  cfg.text.lowercase = true;
  cfg.text.max_length = 512;
  fs::atomicWrite(stdfs::path(out) / "config.resolved.yaml",
                  "# " + app::versionString() + "\n# CT-CLIP weights imported by biud-import-weights ct-clip from " +
                      opt.ckpt +
                      ".\n# The model is described by checkpoints/step_000000/ctclip.json (`task` and `model` are not "
                      "used);\n# data.ct is CT-CLIP's preprocessing and text its CXR-BERT tokenizer.\n" +
                      config::toYaml(cfg, /*comments=*/false));

  train::CheckpointManager cm(stdfs::path(out) / "checkpoints", 1);
  const auto dir = cm.save(0, [&](const stdfs::path& d) {
    tensor::writeSafetensors((d / "model.safetensors").string(), tensors,
                             {{"format", "biud-ctclip-1"}, {"source", stdfs::path(opt.ckpt).filename().string()}});
    fs::atomicWrite(d / "ctclip.json", opts.toJson());
    nlohmann::json s;
    s["step"] = 0;
    s["task"] = "ct-clip";
    s["imported_from"] = stdfs::absolute(opt.ckpt).string();
    fs::atomicWrite(d / "state.json", s.dump(2));
  });

  nlohmann::ordered_json j;
  j["model"] = "ct-clip";
  j["checkpoint"] = stdfs::absolute(opt.ckpt).string();
  j["run"] = stdfs::absolute(out).string();
  j["tensors"] = tensors.size();
  std::int64_t params = 0;
  for (const auto& [k, t] : tensors) params += t.numel();
  j["parameters"] = params;
  j["dropped"] = dropped;
  j["architecture"] = nlohmann::json::parse(opts.toJson());
  j["vocab_tokens"] = vocabLines;
  fs::atomicWrite(stdfs::path(out) / "biud-import-weights.json", j.dump(2));
  log::info("import",
            "CT-CLIP: CTViT dim {} ({} + {} layers, {} heads x {}, {} codes, {} px / {} x {} x {} patches), text BERT "
            "{} x {} "
            "layers, latent {}; {} tensors ({:.1f} M parameters), {} unused dropped -> {}",
            opts.image.dim, opts.image.spatial_depth, opts.image.temporal_depth, opts.image.heads, opts.image.dim_head,
            opts.image.codebook_size, opts.image.image_size, opts.image.temporal_patch_size, opts.image.patch_size,
            opts.image.patch_size, opts.text.hidden_size, opts.text.num_hidden_layers, opts.latent_dim, tensors.size(),
            static_cast<double>(params) / 1e6, dropped.size(), dir.string());
  return j;
}

TaskSpec ctClipTaskSpec() {
  TaskSpec s;
  s.name = "ct-clip";
  s.cannotTrain = "ct-clip runs are imported by biud-import-weights; they cannot be trained";
  s.load = [](LoadedRun& r, const c10::Device& device, bool) {
    const auto ckpt = stdfs::path(r.checkpoint);
    r.tokenizer = text::makeTokenizer(r.cfg.text);
    models::CtClip m(models::CtClipOptions::fromJsonFile((ckpt / "ctclip.json").string()));
    loadRunWeights(*m, r, device, /*ema=*/false);  // an import has no moving average
    return ctClipRunModel(m, r.root, "ct-clip");
  };
  return s;
}

}  // namespace biud::evaluate
