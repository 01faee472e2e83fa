// biud-import-weights: a public model's released weights -> a biud run folder that the evaluation
// apps load like a trained run (docs/baselines.md; evaluate/ImportWeights.h). One subcommand per model.
#include <string>
#include <vector>

#include "biud/app/App.h"
#include "biud/evaluate/ImportWeights.h"
#include "biud/models/CtClip.h"

using namespace biud;

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
  std::string loader = "zeroshot";
  auto* cc = cli.add_subcommand(
      "ct-clip",
      "CT-CLIP (Hamamci et al.; github.com/ibrahimethemhamamci/CT-CLIP; docs/baselines.md): its zero-shot checkpoint "
      "(CT-CLIP_v2.pt, a torch.save'd state dict with visual_transformer.*, text_transformer.*, "
      "to_visual_latent.weight, to_text_latent.weight, temperature) -> a run whose model is CTViT + CXR-BERT with "
      "CT-CLIP's latent projections (models/CtClip.h), whose data.ct is CT-CLIP's preprocessing (0.75 x 0.75 x 1.5 mm, "
      "torch resampling grid, clip [-1000, 1000] (before resampling with --loader zeroshot) / 1000, centre crop/pad to "
      "S x S x --frames with -1, S from the "
      "checkpoint) and whose tokenizer is CXR-BERT's WordPiece (lower case, 512 tokens). The architecture is read from "
      "the tensor shapes; what shapes cannot tell comes from the flags below (defaults: the released model).");
  cc->fallthrough();
  cc->add_option("--ckpt", ckpt,
                 "the CT-CLIP checkpoint: the released .pt (a torch.save'd state dict, read without Python; a package "
                 "nesting it under \"model\" works too) or a .safetensors file with the same keys")
      ->required()
      ->check(CLI::ExistingFile);
  cc->add_option(
        "--tokenizer", tokenizer,
        "CXR-BERT's WordPiece vocabulary: vocab.txt of microsoft/BiomedVLP-CXR-BERT-specialized, or the folder "
        "holding it (copied into the run)")
      ->required();
  cc->add_option("--text-heads", hints.text_heads, "attention heads of the text encoder (CXR-BERT: 12)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--patch-size", hints.patch_size, "CTViT's in-plane patch side (released: 20)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--temporal-patch-size", hints.temporal_patch_size, "CTViT's patch depth in slices (released: 10)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--frames", frames, "slices per volume after crop/pad, data.ct.size's z (released: 240)")
      ->check(CLI::PositiveNumber);
  cc->add_option("--spacing", spacing, "target voxel spacing x y z in mm (released: 0.75 0.75 1.5)")->expected(3);
  cc->add_option("--loader", loader,
                 "which of CT-CLIP's two preprocessings data.ct reproduces: zeroshot = scripts/data_inference_nii.py "
                 "(HU clipped before resampling; configs/data/ct_rate_ctclip_zeroshot.yaml, what CT-CLIP's zero-shot "
                 "numbers used) or train = scripts/data.py (clipped after; configs/data/ct_rate_ctclip.yaml)")
      ->check(CLI::IsMember({"zeroshot", "train"}));
  cc->add_option("--batch-size", batch,
                 "volumes per forward pass in evaluations (data.loader.batch_size; a 480 x 480 x 240 "
                 "volume needs ~2 GB of activations)")
      ->check(CLI::PositiveNumber);

  return app.run(argc, argv, [&] {
    evaluate::CtClipImportOptions o;
    o.ckpt = ckpt;
    o.tokenizer = tokenizer;
    o.hints = hints;
    o.frames = frames;
    o.batch = batch;
    o.spacing = spacing;
    o.loader = loader;
    if (app.outGiven()) o.givenOut = app.out();
    o.prepareOut = [&] { return app.prepareOutDir("ctclip", app::App::OutKind::kTrainingRun); };
    evaluate::importCtClip(o, app.config());
    return app::kExitOk;
  });
}
