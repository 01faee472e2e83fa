#include "biud/train/Precision.h"

#include <ATen/autocast_mode.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::train {

std::string resolvePrecision(const std::string& requested, const c10::Device& device) {
  if (requested == "auto") return device.is_cuda() ? "bf16" : "fp32";
  BIUD_CHECK(requested == "bf16" || requested == "fp32", ConfigError, "trainer.precision `{}`: use auto, bf16 or fp32",
             requested);
  if (requested == "bf16" && !device.is_cuda()) {
    static bool once = false;
    if (!once)
      log::warn("train",
                "trainer.precision = bf16 on {}: CPU bf16 autocast is supported but usually slower than fp32, and on "
                "an AVX512-BF16 CPU (LibTorch 2.11, oneDNN 3.10) the weight gradients of 3D convolutions came out "
                "non-finite in some steps (those steps are skipped); fp32 is the tested precision on CPU "
                "(docs/performance.md)",
                device.str());
    once = true;
  }
  return requested;
}

AutocastScope::AutocastScope(const std::string& precision, const c10::Device& device) {
  if (precision != "bf16") return;
  active_ = true;
  type_ = device.type();
  prevEnabled_ = at::autocast::is_autocast_enabled(type_);
  prevDtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, prevEnabled_);
  at::autocast::set_autocast_dtype(type_, prevDtype_);
}

}  // namespace biud::train
