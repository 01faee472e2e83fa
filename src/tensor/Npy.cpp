#include "biud/tensor/Npy.h"

#include <cstring>
#include <regex>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::tensor {

torch::Tensor parseNpy(const std::string& b, const std::string& name) {
  BIUD_CHECK(b.size() >= 10 && b.compare(0, 6, "\x93NUMPY") == 0, IoError, "{}: not a .npy file (bad magic)", name);
  const int major = static_cast<unsigned char>(b[6]);
  std::size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(b[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(b[9])) << 8);
    start = 10;
  } else {
    BIUD_CHECK(b.size() >= 12, IoError, "{}: truncated .npy header", name);
    for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | static_cast<unsigned char>(b[8 + static_cast<std::size_t>(i)]);
    start = 12;
  }
  BIUD_CHECK(start + hlen <= b.size(), IoError, "{}: truncated .npy header", name);
  const std::string h = b.substr(start, hlen);
  std::smatch m;
  BIUD_CHECK(std::regex_search(h, m, std::regex("'descr':\\s*'([<>|=])([a-z])(\\d+)'")), IoError,
             "{}: .npy header without a simple dtype: {}", name, h);
  const char endian = m[1].str()[0], kind = m[2].str()[0];
  const int size = std::stoi(m[3].str());
  BIUD_CHECK(endian != '>' || size == 1, IoError, "{}: big-endian .npy arrays are not supported (save with '<' dtype)",
             name);
  BIUD_CHECK(h.find("'fortran_order': False") != std::string::npos, IoError,
             "{}: Fortran-order .npy arrays are not supported (np.ascontiguousarray before saving)", name);
  torch::Dtype dt;
  if (kind == 'f' && size == 2)
    dt = torch::kFloat16;
  else if (kind == 'f' && size == 4)
    dt = torch::kFloat32;
  else if (kind == 'f' && size == 8)
    dt = torch::kFloat64;
  else if (kind == 'i' && size == 1)
    dt = torch::kInt8;
  else if (kind == 'i' && size == 2)
    dt = torch::kInt16;
  else if (kind == 'i' && size == 4)
    dt = torch::kInt32;
  else if (kind == 'i' && size == 8)
    dt = torch::kInt64;
  else if (kind == 'u' && size == 1)
    dt = torch::kUInt8;
  else if (kind == 'b' && size == 1)
    dt = torch::kBool;
  else
    BIUD_THROW(IoError, "{}: .npy dtype `{}{}` is not supported (f2 f4 f8 i1 i2 i4 i8 u1 b1)", name, kind, size);
  BIUD_CHECK(std::regex_search(h, m, std::regex("'shape':\\s*\\(([^)]*)\\)")), IoError, "{}: .npy header without shape",
             name);
  std::vector<std::int64_t> shape;
  std::string dims = m[1].str();
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  const std::size_t bytes = static_cast<std::size_t>(n) * static_cast<std::size_t>(size);
  BIUD_CHECK(start + hlen + bytes <= b.size(), IoError, "{}: .npy data is truncated ({} bytes expected, {} present)",
             name, bytes, b.size() - start - hlen);
  auto t = torch::empty(shape, torch::TensorOptions().dtype(dt));
  if (bytes) std::memcpy(t.data_ptr(), b.data() + start + hlen, bytes);
  return t;
}

torch::Tensor readNpy(const std::string& path) {
  fs::requireFile(path, ".npy array");
  return parseNpy(fs::readFile(path), path);
}

}  // namespace biud::tensor
