#pragma once
#include "biud/core/Config.h"

namespace biud {

/// One network: an architecture name from the registry, a preset, and overrides.
/// Zero / empty values mean "take it from the preset".
struct NetConfig {
  std::string arch;
  std::string preset = "tiny";
  std::string weights;        ///< safetensors file or HF folder to initialise from
  int dim = 0, depth = 0, heads = 0;
  std::vector<int> patch;     ///< 3D/2D patch size
  std::string pool;           ///< cls | mean
  double dropout = 0.0;
  double token_dropout = 0.0;
  bool checkpointing = false; ///< activation checkpointing
  bool frozen = false;

  void visit(config::Visitor& v) {
    v.field("arch", arch, "architecture name in the model registry");
    v.field("preset", preset, "size preset", config::oneOf({"tiny", "small", "base", "large"}));
    v.field("weights", weights, "initial weights: .safetensors file or HF folder (config.json + model.safetensors)");
    v.field("dim", dim, "hidden size (0 = preset)", config::atLeast(0));
    v.field("depth", depth, "layers (0 = preset)", config::atLeast(0));
    v.field("heads", heads, "attention heads (0 = preset)", config::atLeast(0));
    v.field("patch", patch, "patch size (empty = preset)");
    v.field("pool", pool, "pooling (empty = preset)");
    v.field("dropout", dropout, "dropout", config::range(0, 1, false, true));
    v.field("token_dropout", token_dropout, "fraction of patch tokens dropped while training (speed)", config::range(0, 1, false, true));
    v.field("checkpointing", checkpointing, "recompute activations in backward to save memory");
    v.field("frozen", frozen, "no gradients, eval mode");
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
  std::string teacher;  ///< stage-0 checkpoint folder (clip2d run) or TorchScript file

  void visit(config::Visitor& v) {
    v.field("embed_dim", embed_dim, "shared embedding size d", config::atLeast(1));
    v.section("ct_encoder", ct_encoder, "3D CT encoder (vit3d, resnet3d18, resnet3d50)");
    v.section("xray_encoder", xray_encoder, "2D X-ray encoder (resnet50, vit_b16)");
    v.section("text_encoder", text_encoder, "BERT text encoder");
    v.section("fusion", fusion, "fusion encoder for entity-focused masking");
    v.section("decoder", decoder, "report decoder");
    v.field("teacher", teacher, "frozen X-ray expert: a clip2d run/checkpoint folder or a TorchScript file");
  }
};

}  // namespace biud
