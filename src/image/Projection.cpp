#include "biud/image/Projection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"
#include "biud/image/Drr.h"
#include "biud/image/Preprocess.h"

namespace biud::image {

void clipHu(Volume& v, double lo, double hi) {
  const auto l = static_cast<float>(lo), h = static_cast<float>(hi);
  for (auto& x : v.data) x = std::isnan(x) ? l : std::clamp(x, l, h);
}

Image2D projectAP(const Volume& hu, const DrrConfig& cfg) {
  const int nx = hu.size[0], ny = hu.size[1], nz = hu.size[2];
  BIUD_CHECK(nx > 0 && ny > 0 && nz > 0 && hu.data.size() == static_cast<size_t>(hu.numel()), ValueError,
             "projectAP: volume of size {}x{}x{} holds {} voxels", nx, ny, nz, hu.data.size());
  if (cfg.projector == "drr") {
    // One Beer-Lambert projector (image/Drr.h) serves the synthetic generator and real CTs.
    if (cfg.beam == "cone") return lineIntegralAPCone(hu, cfg.source_distance, cfg.mu_water);
    BIUD_CHECK(cfg.beam == "parallel", ConfigError, "x2ct.drr.beam `{}`: use parallel or cone", cfg.beam);
    return lineIntegralAP(hu, cfg.mu_water);
  }
  BIUD_CHECK(cfg.projector == "mean", ConfigError, "x2ct.drr.projector `{}`: use mean or drr", cfg.projector);
  return meanAP(hu);
}

Image2D minMaxNormalize(const Image2D& img) {
  BIUD_CHECK(!img.data.empty(), ValueError, "minMaxNormalize: empty image");
  const auto [lo, hi] = std::minmax_element(img.data.begin(), img.data.end());
  const double a = *lo, range = static_cast<double>(*hi) - a;
  Image2D out = img;
  for (auto& x : out.data) x = range > 0 ? static_cast<float>((x - a) / range) : 0.0f;
  return out;
}

Image2D simulateXray(const Volume& hu, const DrrConfig& cfg) {
  BIUD_CHECK(cfg.spacing > 0, ConfigError, "x2ct.drr.spacing must be > 0, got {}", cfg.spacing);
  BIUD_CHECK(cfg.hu_min < cfg.hu_max, ConfigError, "x2ct.drr.hu_min ({}) must be below hu_max ({})", cfg.hu_min,
             cfg.hu_max);
  const bool same = hu.spacing[0] == cfg.spacing && hu.spacing[1] == cfg.spacing && hu.spacing[2] == cfg.spacing;
  // Outside the scanned field there is air.
  Volume iso = same ? hu : resampleLinear(hu, {cfg.spacing, cfg.spacing, cfg.spacing}, -1000.0f);
  clipHu(iso, cfg.hu_min, cfg.hu_max);
  Image2D img = minMaxNormalize(projectAP(iso, cfg));
  if (cfg.size > 0) {
    // Black (no attenuation) padding, as around a real film.
    img = resize2D(padToSquare(img, 0.0f), cfg.size, cfg.size);
  }
  return img;
}

std::string describeDrr(const DrrConfig& c) {
  std::string s = fmt::format("projector {}", c.projector);
  if (c.projector == "drr") {
    s += fmt::format(" ({} beam, mu_water {:g}/mm", c.beam, c.mu_water);
    if (c.beam == "cone") s += fmt::format(", source {:g} mm", c.source_distance);
    s += ")";
  }
  s += fmt::format(", {:g} mm isotropic, HU [{:g}, {:g}], min-max, {}, {}-bit", c.spacing, c.hu_min, c.hu_max,
                   c.size > 0 ? fmt::format("{0}x{0} px", c.size) : std::string("native size"), c.bits);
  return s;
}

std::string drrHash(const DrrConfig& c) {
  // Versioned: bump "v1" when the pipeline changes in a way that alters pixels.
  return fmt::format("{:016x}", fnv1a("biud-drr-v1|" + describeDrr(c)));
}

}  // namespace biud::image
