// biud-embed: embed report texts (BERT) and CT tensors (CT encoder) with the networks of the
// config, or time a network's forward+backward (--bench) for scripts/bench/bench_models.py
// (evaluate/Embed.h).
#include <cstdio>
#include <string>
#include <vector>

#include "biud/app/App.h"
#include "biud/evaluate/Embed.h"
#include "biud/tensor/Runtime.h"

using namespace biud;

int main(int argc, char** argv) {
  app::App app("biud-embed",
               "Embed report texts with the text encoder (model.text_encoder) and CT tensors (.npy or .safetensors, "
               "[C,D,H,W] or [D,H,W]) with the CT encoder (model.ct_encoder). Writes <out>/embeddings.safetensors "
               "(without --run: text_pooled [N,D] pooled per model.text_encoder.pool, volume_pooled [M,D]; with --run: "
               "text_embedding, volume_embedding, volume_adapted (biud runs), xray_embedding; both: volume_index [M], "
               "which inputs the rows are — a volume that cannot be read is skipped, listed in <out>/failures.jsonl, "
               "and the exit code is 3; volume_tokens_<i> with --save-tokens) and <out>/biud-embed.json. With --bench, "
               "times forward+backward of one network instead.");
  app.addCommon(app::kConfig | app::kOut | app::kThreads | app::kDevice | app::kSeed | app::kWeights);
  std::string texts, textModel, tensorKey, benchNet = "ct", benchPrecision = "fp32", benchOptimizer = "none", runDir;
  std::vector<std::string> volumes, xrays;
  int maxLen = 128, batch = 8, benchBatch = 2, benchIters = 5, benchWarmup = 2, benchSeq = 128;
  std::vector<int> benchInput;
  bool bench = false, saveTokens = false;
  auto& cli = app.cli();
  cli.add_option("--texts", texts, "text file, one report per line (blank lines are skipped)")
      ->check(CLI::ExistingFile);
  cli.add_option(
      "--text-model", textModel,
      "HF BERT folder (config.json, model.safetensors, vocab.txt); same as --set model.text_encoder.weights=DIR");
  cli.add_option("--max-len", maxLen, "longest token sequence (longer reports are truncated)")
      ->check(CLI::Range(8, 4096));
  cli.add_option("--batch", batch, "texts per forward pass (volumes are embedded one at a time: sizes may differ)")
      ->check(CLI::Range(1, 4096));
  cli.add_option("--volumes", volumes, "CT tensors to embed (.npy or .safetensors), [C,D,H,W] or [D,H,W]")
      ->check(CLI::ExistingFile);
  cli.add_option("--tensor-key", tensorKey, "tensor name inside .safetensors volumes (needed when a file has several)");
  cli.add_option(
      "--run", runDir,
      "a trained biud or clip2d run folder: embed with its networks into the shared space (CT volumes as\n"
      "NIfTI/DICOM/MHA/NRRD are preprocessed with the run's data.ct; reports with its tokenizer). A finetune\n"
      "or report run embeds CT volumes only, with its fine-tuned CT encoder: volume_embedding = the encoder's\n"
      "pooled features (not projected or normalised; no volume_adapted), preprocessed with the data.ct of\n"
      "the BIUD run it started from");
  cli.add_option("--xrays", xrays, "X-ray images (PNG/JPEG/DICOM) to embed with a clip2d --run");
  cli.add_flag("--save-tokens", saveTokens, "also write the volume token features (volume_tokens_<i>)");
  cli.add_flag("--bench", bench, "time forward+backward of one network on random inputs and print JSON");
  cli.add_option("--bench-net", benchNet, "network to time: ct (model.ct_encoder), xray (model.xray_encoder), text")
      ->check(CLI::IsMember({"ct", "xray", "text"}));
  cli.add_option("--bench-input", benchInput, "input size: D,H,W (ct) or H,W (xray); default = the preset's")
      ->delimiter(',');
  cli.add_option("--bench-batch", benchBatch, "batch size for --bench")->check(CLI::Range(1, 1024));
  cli.add_option("--bench-seq", benchSeq, "sequence length for --bench-net text")->check(CLI::Range(1, 4096));
  cli.add_option("--bench-iters", benchIters, "timed iterations")->check(CLI::Range(1, 100000));
  cli.add_option("--bench-warmup", benchWarmup, "untimed warm-up iterations")->check(CLI::Range(0, 1000));
  cli.add_option("--bench-precision", benchPrecision,
                 "fp32, or bf16: forward under bf16 autocast as trainer.precision=bf16 trains (weights and "
                 "gradients stay fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cli.add_option("--bench-optimizer", benchOptimizer,
                 "none (forward+backward only), or adamw: a full training step, the optimizer that biud-train "
                 "builds from the config's optimizer: section (parameter groups, fused AdamW unless "
                 "BIUD_ADAMW=loop) stepped after each backward")
      ->check(CLI::IsMember({"none", "adamw"}));

  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    runtime::setThreads(cfg.threads);
    runtime::seedTorch(static_cast<std::uint64_t>(cfg.seed));
    const auto device = runtime::selectDevice(cfg.device);
    if (!textModel.empty()) cfg.model.text_encoder.weights = textModel;
    if (bench) {
      evaluate::BenchOptions b;
      b.net = benchNet;
      b.input = benchInput;
      b.batch = benchBatch;
      b.seq = benchSeq;
      b.iters = benchIters;
      b.warmup = benchWarmup;
      b.precision = benchPrecision;
      b.optimizer = benchOptimizer;
      std::printf("%s\n", evaluate::benchNetwork(b, cfg, device).dump().c_str());
      return app::kExitOk;
    }
    evaluate::EmbedOptions o;
    o.texts = texts;
    o.volumes = volumes;
    o.xrays = xrays;
    o.tensorKey = tensorKey;
    o.run = runDir;
    o.maxLen = maxLen;
    o.batch = batch;
    o.saveTokens = saveTokens;
    o.prepareOut = [&] { return app.prepareOutDir("embed"); };
    const auto r = evaluate::embed(o, cfg, device);
    return app::stopRequested() || !r.failures.empty() ? app::kExitPartial : app::kExitOk;
  });
}
