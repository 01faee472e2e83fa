#pragma once
/// \file ResNet.h
/// ResNet-18/34/50/101 in 2D (X-ray) or 3D (CT), with torchvision's parameter names
/// (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), so torchvision
/// weights load into the 2D model and can be inflated into the 3D one (I3D / Merlin).
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/models/Encoder.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

struct ResNetOptions {
  int spatial_dims = 2;                          ///< 2 = images, 3 = volumes
  std::string block = "bottleneck";              ///< basic (18/34) | bottleneck (50/101)
  std::vector<std::int64_t> layers{3, 4, 6, 3};  ///< blocks per stage
  std::int64_t width = 64;                       ///< channels of the stem (torchvision: 64)
  std::int64_t in_channels = 3;
  std::int64_t num_classes = 0;        ///< 0 = no `fc` head (encoder only)
  std::int64_t stem_kernel_depth = 7;  ///< 3D only: depth of the 7x7 stem kernel
  /// Global pooling of the last stage: `mean` (torchvision), `max` or `gem` (generalised mean
  /// (mean x^p)^(1/p), p learnable, init 3, Radenović et al.). Max and GeM keep a small lesion that
  /// a mean over the whole volume dilutes. The pooled width equals the token width in all three.
  std::string pool = "mean";
};
/// torch::conv3d(x, w, {}, /*stride=*/2, pad) computed as a stride-1 convolution over the 2x2x2
/// phases of the padded input ("space to depth"): out[i] = sum_k w[k] xp[2i + k] =
/// sum_{a, b} w[2a + b] phase_b[i + a], with the kernel zero-padded to even sizes. The same weights
/// and the same products, summed in another order (differences of float rounding). The 3D ResNet's
/// 1-channel stem runs this way: oneDNN (avx2) convolves 8 channels directly where it runs one
/// channel as an im2col GEMM (quickstart stem, 32 x 1 x 42x84x84, 7x7x7 -> 8 channels, forward +
/// backward on 2 cores: 0.28 -> 0.16 s). Opt-in: BIUD_STEM=phases (see ResNet.cpp).
torch::Tensor conv3dStride2ByPhases(const torch::Tensor& x, const torch::Tensor& w,
                                    const std::vector<std::int64_t>& pad);

/// Presets: resnet18 / resnet34 / resnet50 / resnet101 (torchvision layouts).
ResNetOptions resnetPreset(const std::string& name, int spatialDims);

/// One residual block (basic or bottleneck).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int dims, bool bottleneck, std::int64_t in, std::int64_t planes, std::int64_t stride, bool down);
  torch::Tensor forward(const torch::Tensor& x);
  std::vector<torch::nn::AnyModule> convs, bns;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(ResBlock);

class ResNetImpl : public VisualEncoderImpl {
 public:
  explicit ResNetImpl(ResNetOptions options = {});
  /// pooled = global pooling (`opt.pool`) of the last stage; tokens = its feature map flattened.
  EncoderOutput encode(const torch::Tensor& x) override;
  /// Logits when num_classes > 0, else the pooled features.
  torch::Tensor forward(const torch::Tensor& x);
  std::int64_t dim() const override { return out_channels; }
  int spatialDims() const override { return opt.spatial_dims; }

  ResNetOptions opt;
  torch::nn::AnyModule conv1, bn1;
  std::vector<torch::nn::Sequential> stages;
  torch::nn::Linear fc{nullptr};
  torch::Tensor gem_p;  ///< GeM exponent (pool = gem only)
  std::int64_t out_channels = 0;
};
TORCH_MODULE(ResNet);

/// Inflate 2D weights (a torchvision ResNet state dict) to the 3D ResNet `target`:
/// each k x k kernel is repeated over the kernel depth t and divided by t (I3D), so a volume of
/// identical slices gives the 2D activations; a 3-channel stem is summed to 1 channel when the
/// target has one input channel. Tensors with the same shape are copied; `fc.*` is dropped when
/// the target has no head. Returns a map ready for loadStateDict().
tensor::TensorMap inflate2dTo3d(const tensor::TensorMap& weights2d, const torch::nn::Module& target);

}  // namespace biud::models
