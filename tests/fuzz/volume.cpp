/// Fuzzes the volume reader (src/image/VolumeIO.cpp readVolume, ITK underneath): the first input
/// byte picks the format (modulo 4), the rest is the file: 0 .nii, 1 .nii.gz, 2 .mha, 3 .nrrd.
/// readImageInfo reads the same file first (BIUD_FUZZ_NO_INFO=1 leaves it out, to fuzz
/// readVolume alone while readImageInfo's findings are open: docs/reliability-fuzz.md). DICOM has its own target
/// (dicom.cpp): GDCM's own assertions abort on many damaged files, which would leave this one little time for the rest.
#include <string>

#include "FuzzUtil.h"
#include "biud/image/VolumeIO.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  if (size < 1) return 0;
  static const char* kExt[] = {".nii", ".nii.gz", ".mha", ".nrrd"};
  const int kind = data[0] % 4;
  const auto& dir = fuzz::TempDir::get().fresh();
  const std::string path = (dir / "vol").string() + kExt[kind];
  fuzz::writeFile(path, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  static const bool info = std::getenv("BIUD_FUZZ_NO_INFO") == nullptr;
  if (info) fuzz::guard([&] { (void)image::readImageInfo(path); });
  fuzz::guard([&] { (void)image::readVolume(path); });
  return 0;
}
