#pragma once
// Precompiled header of the LibTorch-side library (src/CMakeLists.txt). Never include it
// directly; each file still includes what it uses.
#include <torch/torch.h>
