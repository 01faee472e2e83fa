#include "biud/core/Rng.h"

#include <sstream>

#include "biud/core/Error.h"

namespace biud {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t deriveSeed(std::uint64_t seed, std::uint64_t stream) {
  return splitmix64(splitmix64(seed) ^ splitmix64(stream + 0x632be59bd9b4e019ULL));
}

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::uint64_t deriveSeed(std::uint64_t seed, const std::string& label) {
  // FNV-1a of the label, then mixed with the seed.
  return deriveSeed(seed, fnv1a(label));
}

std::string Rng::state() const {
  std::ostringstream ss;
  ss << engine_;
  return ss.str();
}

void Rng::setState(const std::string& s) {
  std::istringstream ss(s);
  ss >> engine_;
  BIUD_CHECK(!ss.fail(), ValueError, "invalid RNG state string ({} bytes)", s.size());
}

}  // namespace biud
