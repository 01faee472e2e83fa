/// Fuzzes the .npz reader (src/image/Npz.cpp: zip container, deflate, .npy header): the input
/// is a .npz file; every key is read, then the file as a CT volume.
#include "biud/image/Npz.h"

#include "FuzzUtil.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  const auto& dir = fuzz::TempDir::get().fresh();
  const std::string path = (dir / "fuzz.npz").string();
  fuzz::writeFile(path, std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::guard([&] {
    for (const auto& k : image::npzKeys(path)) fuzz::guard([&] { (void)image::readNpz(path, k); });
  });
  fuzz::guard([&] { (void)image::readNpzVolume(path); });
  return 0;
}
