#pragma once
/// \file CtClip.h
/// CT-CLIP (Hamamci et al., ibrahimethemhamamci/CT-CLIP, CT_CLIP/ct_clip/ct_clip.py at commit
/// a2a155c) as its zero-shot model runs: CTViT (CtVit.h) for the volume, CXR-BERT (a BERT,
/// Bert.h) for the text, and CT-CLIP's latent projections. Parameter names are CT-CLIP's state
/// dict keys (`visual_transformer.*`, `text_transformer.*`, `to_visual_latent.weight`,
/// `to_text_latent.weight`, `temperature`), so its released checkpoint loads by name.
///
///   image latent = l2norm(to_visual_latent(flatten_hwd(mean_t(CTViT(video)))))   [B, latent]
///   text latent  = l2norm(to_text_latent(BERT(ids, mask).last_hidden_state[:, 0]))  [B, latent]
///   zero-shot    = softmax(exp(temperature) * [<text+, image>, <text-, image>])[0]
///
/// biud's CT cache stores a volume as [z, y, x] = [k, j, i] for CT-RATE's axial files, CT-CLIP's
/// loader gives [k, i, j] (docs/data.md): encodeImage() swaps the two in-plane axes of a cached
/// volume first (CtClipOptions::biud_layout).
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/models/Bert.h"
#include "biud/models/CtVit.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

struct CtClipOptions {
  CtVitOptions image;
  BertOptions text;  ///< CXR-BERT-specialized: BERT-base, vocabulary 30522
  std::int64_t latent_dim = 512;
  /// Inputs are biud cache volumes [B, 1, z, y, x]: swap y and x into CT-CLIP's [k, i, j].
  bool biud_layout = true;

  /// ctclip.json of an imported run (every field; unknown keys are an error naming the file).
  std::string toJson() const;
  static CtClipOptions fromJsonFile(const std::string& path);
};

class CtClipImpl : public torch::nn::Module {
 public:
  explicit CtClipImpl(CtClipOptions options = {});
  /// volume [B, 1, D, H, W] (biud layout, or CT-CLIP's with biud_layout false) -> the flattened
  /// time-averaged CTViT tokens [B, h * w * dim] that to_visual_latent projects.
  torch::Tensor imageFeatures(const torch::Tensor& volume);
  /// L2-normalised image latents [B, latent].
  torch::Tensor encodeImage(const torch::Tensor& volume);
  /// L2-normalised text latents [B, latent] from token ids [B, L] and mask [B, L] (1 = token).
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask);
  /// exp(temperature): the factor CT-CLIP multiplies the cosine similarities by.
  double logitScale() const;

  CtClipOptions opt;
  CtVit visual_transformer{nullptr};
  BertModel text_transformer{nullptr};
  torch::nn::Linear to_visual_latent{nullptr}, to_text_latent{nullptr};
  torch::Tensor temperature;
};
TORCH_MODULE(CtClip);

/// A CT-CLIP checkpoint as tensors: a `.safetensors` file, or a torch.save'd (zip) state dict
/// (`.pt`/`.pth`/`.bin`: the released CT-CLIP_v2.pt) read by readTorchStateDict(). A `module.`
/// prefix on every key is removed. IoError naming the file for anything else.
tensor::TensorMap readCtClipCheckpoint(const std::string& path);

/// The tensors of a torch.save'd zip archive holding a dict of tensors (an OrderedDict state dict,
/// or a package nesting one under "model" / "state_dict"), without Python: a small pickle
/// machine (CtClipCheckpoint.cpp) for what torch.save writes, because LibTorch's own unpickler
/// (torch::pickle_load) turns collections.OrderedDict into None. IoError naming the file and the
/// unsupported opcode or global for anything else (legacy non-zip files, custom classes).
tensor::TensorMap readTorchStateDict(const std::string& path);

/// What cannot be read from the tensor shapes: CXR-BERT's head count and how CTViT's patch
/// volume splits into (temporal_patch x patch x patch). Defaults are the released model's.
struct CtClipHints {
  std::int64_t text_heads = 12;
  std::int64_t patch_size = 20, temporal_patch_size = 10;
  double text_layer_norm_eps = 1e-12;
};

/// The architecture of a CT-CLIP state dict, read from its shapes (CTViT width, depths, heads,
/// head width, codebook, image size from to_visual_latent; BERT vocabulary, width, layers,
/// feed-forward width, positions). ValueError naming `source` and the key for a missing or
/// inconsistent tensor.
CtClipOptions inferCtClipOptions(const tensor::TensorMap& sd, const CtClipHints& hints, const std::string& source);

/// The tensors of `sd` that CtClip uses, under its names, checked against `model`'s shapes.
/// Keys CT-CLIP's zero-shot forward never reads (the VQ-VAE decoder heads, the first-frame patch
/// embedding, codebook statistics, the CLOOB `*_extra` projections, the BERT pooler, empty
/// null key/value tables, unused context norms, position_ids buffers) are listed in `dropped`;
/// any other key is a ValueError naming it (the checkpoint is not CT-CLIP's zero-shot layout).
tensor::TensorMap selectCtClipTensors(const tensor::TensorMap& sd, CtClip& model, const std::string& source,
                                      std::vector<std::string>* dropped = nullptr);

}  // namespace biud::models
