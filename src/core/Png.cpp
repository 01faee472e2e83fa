#include "biud/core/Png.h"

#include <zlib.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::png {

namespace {

void put32(std::string& s, std::uint32_t v) {
  s.push_back(static_cast<char>(v >> 24));
  s.push_back(static_cast<char>(v >> 16));
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v));
}

void chunk(std::string& out, const char* type, const std::string& payload) {
  put32(out, static_cast<std::uint32_t>(payload.size()));
  std::string body(type, 4);
  body += payload;
  out += body;
  put32(out, static_cast<std::uint32_t>(
                 ::crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode(int width, int height, int channels, int bitDepth, const void* data) {
  BIUD_CHECK(width > 0 && height > 0, ValueError, "PNG of size {}x{}", width, height);
  BIUD_CHECK(channels == 1 || channels == 2 || channels == 3 || channels == 4, ValueError, "PNG with {} channels",
             channels);
  BIUD_CHECK(bitDepth == 8 || bitDepth == 16, ValueError, "PNG bit depth {}", bitDepth);
  const int bps = bitDepth / 8;
  const size_t rowBytes = static_cast<size_t>(width) * channels * bps;
  std::string raw;
  raw.reserve((rowBytes + 1) * height);
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    const std::uint8_t* row = bytes + y * rowBytes;
    if (bps == 1) {
      raw.append(reinterpret_cast<const char*>(row), rowBytes);
    } else {
      const auto* r16 = reinterpret_cast<const std::uint16_t*>(row);
      for (size_t i = 0; i < rowBytes / 2; ++i) {
        raw.push_back(static_cast<char>(r16[i] >> 8));
        raw.push_back(static_cast<char>(r16[i] & 0xff));
      }
    }
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zlen, '\0');
  const int rc = ::compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
                             static_cast<uLong>(raw.size()), 6);
  BIUD_CHECK(rc == Z_OK, ValueError, "zlib compress failed ({})", rc);
  z.resize(zlen);

  static const int colorType[] = {0, 0, 4, 2, 6};
  std::string ihdr;
  put32(ihdr, static_cast<std::uint32_t>(width));
  put32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back(static_cast<char>(bitDepth));
  ihdr.push_back(static_cast<char>(colorType[channels]));
  ihdr.append("\0\0\0", 3);  // compression, filter, interlace

  std::string out("\x89PNG\r\n\x1a\n", 8);
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  return out;
}

void write8(const std::string& path, int width, int height, int channels, const std::uint8_t* data) {
  fs::atomicWrite(path, encode(width, height, channels, 8, data));
}

void write16(const std::string& path, int width, int height, int channels, const std::uint16_t* data) {
  fs::atomicWrite(path, encode(width, height, channels, 16, data));
}

}  // namespace biud::png
