#pragma once
/// \file Precision.h
/// Mixed precision for the training loop: `trainer.precision` resolved for a device, and an RAII
/// autocast scope (bf16 autocast on CUDA by default, fp32 on CPU). Weights, gradients and the
/// optimizer stay fp32; autocast runs matmuls/convolutions in bf16 and keeps softmax, norms and
/// losses in fp32 (PyTorch's autocast op lists), so no loss scaling is needed.
#include <string>

#include <c10/core/Device.h>

namespace biud::train {

/// "auto" -> "bf16" on CUDA, "fp32" on CPU; "bf16"/"fp32" as given (bf16 on CPU works but is
/// usually slower; it is logged once).
std::string resolvePrecision(const std::string& requested, const c10::Device& device);

/// While alive, autocast to bf16 on `device`'s type when `precision` is "bf16"; a no-op for "fp32".
/// Nested scopes are fine; the autocast weight cache is cleared when the outermost one ends.
class AutocastScope {
 public:
  AutocastScope(const std::string& precision, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool prevEnabled_ = false;
  c10::ScalarType prevDtype_ = c10::ScalarType::Float;
};

}  // namespace biud::train
