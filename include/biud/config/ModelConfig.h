#pragma once
#include <set>

#include "biud/core/Schema.h"

namespace biud {

/// One network: an architecture name from the registry, a preset, and overrides.
/// Zero / empty values mean "take it from the preset".
struct NetConfig {
  std::string arch;
  std::string preset = "tiny";
  std::string weights;         ///< safetensors file, HF folder or biud run/checkpoint folder to initialise from
  std::string weights_prefix;  ///< take only this tower of the weights file (e.g. `text_encoder.`)
  int dim = 0, depth = 0, heads = 0;
  std::vector<int> patch;  ///< 3D/2D patch size
  std::string pool;        ///< cls | mean (ViT, BERT), pooler (BERT); mean | max | gem (ResNet)
  double dropout = 0.0;
  double token_dropout = 0.0;
  bool checkpointing = false;  ///< activation checkpointing
  bool frozen = false;
  std::vector<int> image_size;  ///< input size the position table is made for (empty = preset)
  int in_channels = 0;          ///< input channels (0 = 1 for CT, 3 for X-ray)
  std::string pos_embedding;    ///< vit3d: learned | sincos (empty = learned)
  int vocab_size = 0;           ///< text/fusion/decoder vocabulary (0 = the text encoder's, or 30522)
  int max_len = 0;              ///< decoder: longest report in tokens (0 = preset 256)
  int stem_kernel_depth = 0;    ///< 3D ResNet: slices of the (depth x 7 x 7) stem kernel (0 = 7)

  void visit(config::Visitor& v) {
    v.field("arch", arch, "architecture name in the model registry");
    v.field("preset", preset, "size preset", config::oneOf({"tiny", "small", "base", "large"}));
    v.field("weights", weights,
            "initial weights: .safetensors file, HF folder (config.json + model.safetensors), or a biud run/checkpoint "
            "folder (its newest checkpoint)");
    v.field("weights_prefix", weights_prefix,
            "load only the keys under this prefix, with it removed: one tower of a biud checkpoint, e.g. "
            "`text_encoder.` to start from the X-ray teacher's text encoder");
    v.field("dim", dim, "hidden size (0 = preset)", config::atLeast(0));
    v.field("depth", depth, "layers (0 = preset)", config::atLeast(0));
    v.field("heads", heads, "attention heads (0 = preset)", config::atLeast(0));
    v.field("patch", patch, "patch size (empty = preset)");
    v.field("pool", pool,
            "pooling (empty = preset): cls | mean for a ViT; cls | mean | pooler for BERT; mean | max | gem for a "
            "ResNet (max and gem keep small lesions that a mean dilutes)");
    v.field("dropout", dropout, "dropout", config::range(0, 1, false, true));
    v.field("token_dropout", token_dropout, "fraction of patch tokens dropped while training (speed)",
            config::range(0, 1, false, true));
    v.field("checkpointing", checkpointing, "recompute activations in backward to save memory");
    v.field("frozen", frozen, "no gradients, eval mode");
    v.field("image_size", image_size, "input size the position embeddings are made for (D,H,W or H,W; empty = preset)");
    v.field("in_channels", in_channels, "input channels (0 = 1 for CT, 3 for X-ray)", config::atLeast(0));
    v.field("pos_embedding", pos_embedding, "vit3d position embedding: learned | sincos (empty = learned)");
    v.field("vocab_size", vocab_size, "vocabulary size (0 = from the text encoder / weights / 30522)",
            config::atLeast(0));
    v.field("max_len", max_len, "report decoder: longest sequence in tokens (0 = preset)", config::atLeast(0));
    v.field("stem_kernel_depth", stem_kernel_depth,
            "3D ResNet: depth in slices of its (depth x 7 x 7) stem kernel, odd (0 = 7, the inflated torchvision "
            "stem); 3 covers 12 x 14 x 14 mm at 4 x 2 x 2 mm voxels instead of 28 x 14 x 14",
            config::atLeast(0));
    if (v.reading()) {
      static const std::set<std::string> pools{"cls", "mean", "pooler", "max", "gem"};
      if (!pool.empty() && !pools.count(pool))
        v.fail("pool", "must be cls, mean, pooler (BERT), max or gem (ResNet), got `" + pool + "`");
      if (!pos_embedding.empty() && pos_embedding != "learned" && pos_embedding != "sincos")
        v.fail("pos_embedding", "must be learned or sincos, got `" + pos_embedding + "`");
      if (stem_kernel_depth % 2 == 0 && stem_kernel_depth != 0)
        v.fail("stem_kernel_depth",
               "must be odd (the stem pads depth / 2 slices on each side), got " + std::to_string(stem_kernel_depth));
    }
  }
};

/// `model:` — the networks of the method.
struct ModelConfig {
  int embed_dim = 512;
  NetConfig ct_encoder{"vit3d"};
  NetConfig xray_encoder{"resnet50"};
  NetConfig text_encoder{"bert"};
  NetConfig fusion{"fusion"};
  NetConfig decoder{"report_decoder"};
  std::string teacher;             ///< stage-0 checkpoint folder (clip2d run) or TorchScript file
  std::string text_init = "none";  ///< biud task: `teacher` = start g from the teacher's text encoder
  bool adapter_bias = false;       ///< biud task: the distillation adapter A has a trained bias

  void visit(config::Visitor& v) {
    v.field("embed_dim", embed_dim, "shared embedding size d", config::atLeast(1));
    v.section("ct_encoder", ct_encoder, "3D CT encoder (vit3d, resnet3d18, resnet3d34, resnet3d50)");
    v.section("xray_encoder", xray_encoder, "2D X-ray encoder (resnet50, resnet18, vit_b16, vit2d)");
    v.section("text_encoder", text_encoder, "BERT text encoder");
    v.section("fusion", fusion, "fusion encoder for entity-focused masking");
    v.section("decoder", decoder, "report decoder");
    v.field("teacher", teacher, "frozen X-ray expert: a clip2d run/checkpoint folder or a TorchScript file");
    v.field("text_init", text_init,
            "biud task: `teacher` starts the CT model's text encoder from the X-ray teacher's (a clip2d run with the "
            "same tokenizer and text_encoder size; like starting from a pretrained BERT); `none` = "
            "text_encoder.weights or random",
            config::oneOf({"none", "teacher"}));
    v.field("adapter_bias", adapter_bias,
            "biud task: give the distillation adapter A (d -> d_X) a trained bias. METHOD §3 says linear: false. "
            "Without it the checkpoint still holds `adapter.proj.bias` (zeros, not trained), so runs made before this "
            "key, whose adapter had a bias, load and evaluate as trained; resume such a run with adapter_bias: true");
  }
};

}  // namespace biud
