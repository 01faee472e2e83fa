// biud-import-weights: a public model's released weights -> a biud run folder that the evaluation
// apps load like a trained run (docs/baselines.md). One subcommand per model.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/models/CtClip.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/Checkpoint.h"

using namespace biud;
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

int main(int argc, char** argv) {
  app::App app("biud-import-weights",
               "Import a public model's released weights into a biud run folder (<out>/config.resolved.yaml,\n"
               "<out>/checkpoints/step_000000/{model.safetensors, state.json, <model>.json}) that biud-zeroshot,\n"
               "biud-embed-style tools and loadRun() read like a trained run, with the model's own preprocessing\n"
               "and tokenizer settings in the config. Summary in <out>/biud-import-weights.json.");
  app.addCommon(app::kConfig | app::kOut | app::kWeights);
  auto& cli = app.cli();
  cli.require_subcommand(1);

  std::string ckpt, tokenizer;
  models::CtClipHints hints;
  std::int64_t frames = 240;
  int batch = 1;
  std::vector<double> spacing{0.75, 0.75, 1.5};
  auto* cc = cli.add_subcommand(
      "ct-clip",
      "CT-CLIP (Hamamci et al.; github.com/ibrahimethemhamamci/CT-CLIP; docs/baselines.md): its zero-shot checkpoint "
      "(CT-CLIP_v2.pt, a torch.save'd state dict with visual_transformer.*, text_transformer.*, "
      "to_visual_latent.weight, to_text_latent.weight, temperature) -> a run whose model is CTViT + CXR-BERT with "
      "CT-CLIP's latent projections (models/CtClip.h), whose data.ct is CT-CLIP's preprocessing (0.75 x 0.75 x 1.5 mm, "
      "torch resampling grid, clip [-1000, 1000] / 1000, centre crop/pad to S x S x --frames with -1, S from the "
      "checkpoint) and whose tokenizer is CXR-BERT's WordPiece (lower case, 512 tokens). The architecture is read from "
      "the tensor shapes; what shapes cannot tell comes from the flags below (defaults: the released model).");
  cc->fallthrough();
  cc->add_option("--ckpt", ckpt,
                 "the CT-CLIP checkpoint: the released .pt (a torch.save'd state dict, read without Python; a package "
                 "nesting it under \"model\" works too) or a .safetensors file with the same keys")
      ->required()
      ->check(CLI::ExistingFile);
  cc->add_option("--tokenizer", tokenizer,
                 "CXR-BERT's WordPiece vocabulary: vocab.txt of microsoft/BiomedVLP-CXR-BERT-specialized, or the folder "
                 "holding it (copied into the run)")
      ->required();
  cc->add_option("--text-heads", hints.text_heads, "attention heads of the text encoder (CXR-BERT: 12)")->check(CLI::PositiveNumber);
  cc->add_option("--patch-size", hints.patch_size, "CTViT's in-plane patch side (released: 20)")->check(CLI::PositiveNumber);
  cc->add_option("--temporal-patch-size", hints.temporal_patch_size, "CTViT's patch depth in slices (released: 10)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--frames", frames, "slices per volume after crop/pad, data.ct.size's z (released: 240)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--spacing", spacing, "target voxel spacing x y z in mm (released: 0.75 0.75 1.5)")->expected(3);
  cc->add_option("--batch-size", batch, "volumes per forward pass in evaluations (data.loader.batch_size; a 480 x 480 x 240 "
                 "volume needs ~2 GB of activations)")
      ->check(CLI::PositiveNumber);

  return app.run(argc, argv, [&] {
    stdfs::path vocab = tokenizer;
    if (stdfs::is_directory(vocab)) vocab /= "vocab.txt";
    BIUD_CHECK(stdfs::is_regular_file(vocab), ConfigError,
               "--tokenizer `{}`: no vocab.txt (pass CXR-BERT's vocab.txt or the folder holding it)", tokenizer);
    BIUD_CHECK(frames % hints.temporal_patch_size == 0, ConfigError,
               "--frames {} is not a multiple of --temporal-patch-size {}", frames, hints.temporal_patch_size);
    BIUD_CHECK(!app.outGiven() || !stdfs::exists(stdfs::path(app.out()) / "checkpoints"), ConfigError,
               "--out `{}` already holds checkpoints: import into a new folder", app.out());

    log::info("import", "reading {}", ckpt);
    auto sd = models::readCtClipCheckpoint(ckpt);
    auto opts = models::inferCtClipOptions(sd, hints, ckpt);
    models::CtClip model(opts);
    std::vector<std::string> dropped;
    auto tensors = models::selectCtClipTensors(sd, model, ckpt, &dropped);
    sd.clear();
    tensor::loadStateDict(*model, tensors, {}, ckpt);  // every key, every shape
    const auto vocabLines = countLines(vocab.string());
    BIUD_CHECK(vocabLines <= opts.text.vocab_size, ConfigError,
               "--tokenizer `{}` has {} tokens, the checkpoint's text encoder {}: not this model's vocabulary",
               vocab.string(), vocabLines, opts.text.vocab_size);
    if (vocabLines != opts.text.vocab_size)
      log::warn("import", "`{}` has {} tokens, the text encoder's embedding table {} rows", vocab.string(), vocabLines,
                opts.text.vocab_size);

    auto& cfg = app.config();
    auto& ct = cfg.data.ct;
    ct.spacing = spacing;
    ct.size = {static_cast<int>(opts.image.image_size), static_cast<int>(opts.image.image_size), static_cast<int>(frames)};
    ct.grid = "torch";
    ct.hu_min = -1000, ct.hu_max = 1000, ct.scale = 1000, ct.pad_value = -1;
    ct.crop = "center";
    ct.window = "default";
    cfg.data.loader.batch_size = batch;
    cfg.data.augment = {};
    cfg.eval.zeroshot_protocol = "ct-clip";
    cfg.eval.ema = false;
    // CT-CLIP is a CT-RATE model: its prompt names are CT-RATE's label columns.
    if (cfg.eval.prompts == EvalConfig{}.prompts) cfg.eval.prompts = "configs/prompts/ct_rate.yaml";
    evaluate::absolutizePaths(cfg);
    const std::string out = app.prepareOutDir("ctclip", app::App::OutKind::kTrainingRun);
    const auto runVocab = stdfs::path(out) / "vocab.txt";
    fs::atomicWrite(runVocab, fs::readFile(vocab));
    cfg.text.tokenizer = "wordpiece";
    cfg.text.vocab = stdfs::absolute(runVocab).string();
    cfg.text.lowercase = true;
    cfg.text.max_length = 512;
    fs::atomicWrite(stdfs::path(out) / "config.resolved.yaml",
                    "# " + app::versionString() + "\n# CT-CLIP weights imported by biud-import-weights ct-clip from " + ckpt +
                        ".\n# The model is described by checkpoints/step_000000/ctclip.json (`task` and `model` are not "
                        "used);\n# data.ct is CT-CLIP's preprocessing and text its CXR-BERT tokenizer.\n" +
                        config::toYaml(cfg, /*comments=*/false));

    train::CheckpointManager cm(stdfs::path(out) / "checkpoints", 1);
    const auto dir = cm.save(0, [&](const stdfs::path& d) {
      tensor::writeSafetensors((d / "model.safetensors").string(), tensors,
                               {{"format", "biud-ctclip-1"}, {"source", stdfs::path(ckpt).filename().string()}});
      fs::atomicWrite(d / "ctclip.json", opts.toJson());
      nlohmann::json s;
      s["step"] = 0;
      s["task"] = "ct-clip";
      s["imported_from"] = stdfs::absolute(ckpt).string();
      fs::atomicWrite(d / "state.json", s.dump(2));
    });

    nlohmann::ordered_json j;
    j["model"] = "ct-clip";
    j["checkpoint"] = stdfs::absolute(ckpt).string();
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
              "CT-CLIP: CTViT dim {} ({} + {} layers, {} heads x {}, {} codes, {} px / {} x {} x {} patches), text BERT {} x {} "
              "layers, latent {}; {} tensors ({:.1f} M parameters), {} unused dropped -> {}",
              opts.image.dim, opts.image.spatial_depth, opts.image.temporal_depth, opts.image.heads, opts.image.dim_head,
              opts.image.codebook_size, opts.image.image_size, opts.image.temporal_patch_size, opts.image.patch_size,
              opts.image.patch_size, opts.text.hidden_size, opts.text.num_hidden_layers, opts.latent_dim, tensors.size(),
              static_cast<double>(params) / 1e6, dropped.size(), dir.string());
    return app::kExitOk;
  });
}
