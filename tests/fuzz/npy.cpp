/// Fuzzes both .npy parsers: src/tensor/Npy.cpp (tensor::parseNpy, LibTorch) and the torch-free
/// one of src/image/Npz.cpp (image::parseNpy). The input is a .npy file. When both read it,
/// they must agree on the shape and (for the C-order little-endian dtypes both read) the values.
#include "biud/tensor/Npy.h"

#include <cmath>
#include <string>

#include "FuzzUtil.h"
#include "biud/image/Npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  bool haveT = false, haveI = false;
  torch::Tensor t;
  image::NpyArray a;
  fuzz::guard([&] {
    t = tensor::parseNpy(bytes, "fuzz.npy");
    haveT = true;
  });
  fuzz::guard([&] {
    a = image::parseNpy(bytes, "fuzz.npy");
    haveI = true;
  });
  if (haveT && haveI) {
    bool same = t.dim() == static_cast<int64_t>(a.shape.size());
    for (int64_t d = 0; same && d < t.dim(); ++d) same = t.size(d) == a.shape[static_cast<size_t>(d)];
    if (!same) {
      std::fprintf(stderr, "FUZZ FINDING: the two .npy parsers disagree on the shape\n");
      std::abort();
    }
    if (t.scalar_type() != torch::kFloat16 && t.scalar_type() != torch::kInt64 && t.scalar_type() != torch::kFloat64 &&
        t.scalar_type() != torch::kBool) {
      torch::Tensor f = t.to(torch::kFloat32).contiguous().reshape({-1});
      const float* p = f.data_ptr<float>();
      if (static_cast<size_t>(f.numel()) != a.values.size()) {
        std::fprintf(stderr, "FUZZ FINDING: the two .npy parsers disagree on the element count\n");
        std::abort();
      }
      for (size_t i = 0; i < a.values.size(); ++i)
        if (!(p[i] == a.values[i] || (std::isnan(p[i]) && std::isnan(a.values[i])))) {
          std::fprintf(stderr, "FUZZ FINDING: the two .npy parsers disagree on element %zu: %g vs %g\n", i,
                       static_cast<double>(p[i]), static_cast<double>(a.values[i]));
          std::abort();
        }
    }
  }
  return 0;
}
