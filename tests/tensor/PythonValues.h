#pragma once
// Compare a tensor biud read with the description tests/reference/tensor_malformed.py wrote of
// what the reference reader (safetensors / numpy) made of the same file.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace biud::test {

/// `desc` = {"shape": [...], "values": [float64 or "nan"/"inf"/"-inf"], ...}: same shape and the
/// same values bit for bit once widened to float64 (NaN matches NaN).
inline void expectSameAsPython(const torch::Tensor& got, const nlohmann::json& desc, const std::string& what) {
  EXPECT_EQ(std::vector<std::int64_t>(got.sizes().begin(), got.sizes().end()),
            desc.at("shape").get<std::vector<std::int64_t>>())
      << what;
  const auto flat = got.to(torch::kFloat64).contiguous().reshape({-1});
  const auto& values = desc.at("values");
  ASSERT_EQ(static_cast<std::size_t>(flat.numel()), values.size()) << what;
  const double* p = flat.data_ptr<double>();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].is_string()) {
      const auto s = values[i].get<std::string>();
      if (s == "nan")
        EXPECT_TRUE(std::isnan(p[i])) << what << " [" << i << "]";
      else
        EXPECT_EQ(p[i], s == "inf" ? INFINITY : -INFINITY) << what << " [" << i << "]";
    } else {
      EXPECT_EQ(p[i], values[i].get<double>()) << what << " [" << i << "]";
    }
  }
}

/// Little-endian bytes of an unsigned integer.
inline std::string le(std::uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

}  // namespace biud::test
