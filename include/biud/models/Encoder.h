#pragma once
/// \file Encoder.h
/// What every image/volume encoder returns, and the interface the registry hands out.
#include <torch/torch.h>

namespace biud::models {

/// Output of an encoder: one vector per sample and the token (or feature-map) sequence.
struct EncoderOutput {
  torch::Tensor pooled;  ///< [B, D]
  torch::Tensor tokens;  ///< [B, N, D] (patch tokens, CLS excluded; ResNets: flattened last feature map)
};

/// Base of the CT and X-ray encoders so that tasks can hold any of them.
class VisualEncoderImpl : public torch::nn::Module {
 public:
  /// x: [B, C, D, H, W] (3D encoders) or [B, C, H, W] (2D encoders).
  virtual EncoderOutput encode(const torch::Tensor& x) = 0;
  /// Width D of `pooled` and `tokens`.
  virtual std::int64_t dim() const = 0;
  /// Spatial dimensions of the input (2 or 3).
  virtual int spatialDims() const = 0;
};

}  // namespace biud::models
