/// Fuzzes the safetensors reader (src/tensor/Safetensors.cpp): the input is a .safetensors
/// file. A file that parses must serialise and parse back to the same bytes.
#include "biud/tensor/Safetensors.h"

#include <map>
#include <string>

#include "FuzzUtil.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  fuzz::guard([&] {
    std::map<std::string, std::string> meta;
    tensor::TensorMap t = tensor::parseSafetensors(bytes, "fuzz.safetensors", &meta);
    for (const auto& [name, x] : t) (void)tensor::shapeStr(x.sizes());
    const std::string once = tensor::serializeSafetensors(t, meta);
    std::map<std::string, std::string> meta2;
    std::string twice;
    try {
      twice = tensor::serializeSafetensors(tensor::parseSafetensors(once, "again.safetensors", &meta2), meta2);
    } catch (const biud::Error& e) {
      std::fprintf(stderr, "FUZZ FINDING: serialised tensors do not parse back: %s\n", e.what());
      std::abort();
    }
    if (twice != once || meta2 != meta) {
      std::fprintf(stderr, "FUZZ FINDING: safetensors round trip changed the bytes\n");
      std::abort();
    }
  });
  return 0;
}
