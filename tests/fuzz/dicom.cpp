/// Fuzzes the DICOM side of the volume reader (src/image/VolumeIO.cpp readVolume, GDCM through
/// ITK): the first input byte picks (modulo 2) 0 a DICOM folder, the rest split at lines
/// `%%slice` into up to 8 files, or 1 a single (multi-frame) DICOM file; readImageInfo reads
/// the file first.
#include <string>

#include "FuzzUtil.h"
#include "biud/image/VolumeIO.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  if (size < 1) return 0;
  const bool folder = data[0] % 2 == 0;
  const auto& dir = fuzz::TempDir::get().fresh();
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string path;
  if (folder) {
    std::filesystem::create_directory(dir / "vol");
    for (int i = 0; i < 8 && !rest.empty(); ++i)
      fuzz::writeFile(dir / "vol" / ("slice" + std::to_string(i) + ".dcm"), fuzz::nextPart(rest, "\n%%slice\n"));
    path = (dir / "vol").string();
  } else {
    path = (dir / "vol.dcm").string();
    fuzz::writeFile(path, rest);
    fuzz::guard([&] { (void)image::readImageInfo(path); });
  }
  fuzz::guard([&] { (void)image::readVolume(path); });
  return 0;
}
