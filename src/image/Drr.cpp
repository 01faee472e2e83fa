#include "biud/image/Drr.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "biud/core/Error.h"
#include "biud/core/Png.h"

namespace biud::image {

namespace {
/// The frontal image of `hu` from sums along the anterior-posterior axis (j), in double:
/// out(i, nz-1-k) = finish(sum_j voxel(hu(i, j, k))) (superior at the top).
template <class Voxel, class Finish>
Image2D sumAlongAP(const Volume& hu, const char* caller, Voxel voxel, Finish finish) {
  const int nx = hu.size[0], ny = hu.size[1], nz = hu.size[2];
  BIUD_CHECK(nx > 0 && ny > 0 && nz > 0 && hu.data.size() == static_cast<size_t>(hu.numel()), ValueError,
             "{}: volume of size {}x{}x{} holds {} voxels", caller, nx, ny, nz, hu.data.size());
  Image2D out({nx, nz, 1}, {hu.spacing[0], hu.spacing[2], 1.0}, 0.0f);
  std::vector<double> acc(static_cast<size_t>(nx));
  for (int k = 0; k < nz; ++k) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int j = 0; j < ny; ++j) {
      const float* row = &hu.data[static_cast<size_t>(hu.index(0, j, k))];
      for (int i = 0; i < nx; ++i) acc[static_cast<size_t>(i)] += voxel(row[i]);
    }
    const int r = nz - 1 - k;  // superior at the top
    for (int i = 0; i < nx; ++i) out.at(i, r, 0) = static_cast<float>(finish(acc[static_cast<size_t>(i)]));
  }
  return out;
}
}  // namespace

Image2D lineIntegralAP(const Volume& hu, double muWaterPerMm) {
  return sumAlongAP(
      hu, "lineIntegralAP", [](float v) { return std::max(0.0, 1.0 + v / 1000.0); },
      [&](double sum) { return sum * muWaterPerMm * hu.spacing[1]; });
}

Image2D meanAP(const Volume& hu) {
  const double ny = hu.size[1];
  return sumAlongAP(
      hu, "meanAP", [](float v) { return static_cast<double>(v); }, [ny](double sum) { return sum / ny; });
}

Image2D lineIntegralAPCone(const Volume& hu, double sourceDistance, double muWaterPerMm) {
  const int nx = hu.size[0], ny = hu.size[1], nz = hu.size[2];
  BIUD_CHECK(nx > 0 && ny > 0 && nz > 0 && hu.data.size() == static_cast<size_t>(hu.numel()), ValueError,
             "lineIntegralAPCone: volume of size {}x{}x{} holds {} voxels", nx, ny, nz, hu.data.size());
  const double sx = hu.spacing[0], sy = hu.spacing[1], sz = hu.spacing[2];
  const double cx = 0.5 * (nx - 1) * sx, cy = 0.5 * (ny - 1) * sy, cz = 0.5 * (nz - 1) * sz;
  BIUD_CHECK(sourceDistance > cy, ValueError,
             "lineIntegralAPCone: the source ({} mm from the centre) lies inside the volume (half depth {} mm); "
             "use a larger source distance",
             sourceDistance, cy);
  const double ys = cy - sourceDistance;  // source position along j (anterior of the volume)
  // mu per voxel once (the HU -> mu map of lineIntegralAP).
  std::vector<float> mu(hu.data.size());
  for (size_t n = 0; n < mu.size(); ++n) mu[n] = static_cast<float>(std::max(0.0, 1.0 + hu.data[n] / 1000.0));
  Image2D out({nx, nz, 1}, {sx, sz, 1.0}, 0.0f);
  for (int k = 0; k < nz; ++k) {
    for (int i = 0; i < nx; ++i) {
      const double dx = i * sx - cx, dz = k * sz - cz;
      const double secant = std::sqrt(sourceDistance * sourceDistance + dx * dx + dz * dz) / sourceDistance;
      double acc = 0;
      for (int j = 0; j < ny; ++j) {
        const double t = (j * sy - ys) / sourceDistance;          // 1 at the isocentre plane
        double fx = (cx + t * dx) / sx, fz = (cz + t * dz) / sz;  // continuous indices in slice j
        // Voxel i covers [i - 0.5, i + 0.5): outside that the ray misses the slice; between the
        // last voxel centre and the border the edge value holds.
        if (fx < -0.5 || fz < -0.5 || fx >= nx - 0.5 || fz >= nz - 0.5) continue;
        fx = std::clamp(fx, 0.0, nx - 1.0);
        fz = std::clamp(fz, 0.0, nz - 1.0);
        const int x0 = std::min(nx - 1, static_cast<int>(fx)), z0 = std::min(nz - 1, static_cast<int>(fz));
        const int x1 = std::min(nx - 1, x0 + 1), z1 = std::min(nz - 1, z0 + 1);
        const double wx = fx - x0, wz = fz - z0;
        auto m = [&](int a, int c) { return static_cast<double>(mu[static_cast<size_t>(hu.index(a, j, c))]); };
        acc += (1 - wz) * ((1 - wx) * m(x0, z0) + wx * m(x1, z0)) + wz * ((1 - wx) * m(x0, z1) + wx * m(x1, z1));
      }
      out.at(i, nz - 1 - k, 0) = static_cast<float>(acc * secant * sy * muWaterPerMm);
    }
  }
  return out;
}

Image2D displayXray(const Image2D& L, int width, int height, double gamma, double quantile) {
  BIUD_CHECK(width > 0 && height > 0, ValueError, "displayXray: size {}x{} must be positive", width, height);
  BIUD_CHECK(!L.data.empty(), ValueError, "displayXray: empty image");
  std::vector<float> sorted = L.data;
  const size_t q = std::min(sorted.size() - 1, static_cast<size_t>(quantile * static_cast<double>(sorted.size() - 1)));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(q), sorted.end());
  const double ref = std::max(1e-6f, sorted[q]);
  const int w0 = L.size[0], h0 = L.size[1];
  Image2D out({width, height, 1}, {L.spacing[0] * w0 / width, L.spacing[1] * h0 / height, 1.0}, 0.0f);
  for (int r = 0; r < height; ++r) {
    // Pixel centres mapped onto source pixel centres (align corners off).
    const double sy = std::clamp((r + 0.5) * h0 / height - 0.5, 0.0, h0 - 1.0);
    const int y0 = static_cast<int>(sy), y1 = std::min(h0 - 1, y0 + 1);
    const double fy = sy - y0;
    for (int c = 0; c < width; ++c) {
      const double sx = std::clamp((c + 0.5) * w0 / width - 0.5, 0.0, w0 - 1.0);
      const int x0 = static_cast<int>(sx), x1 = std::min(w0 - 1, x0 + 1);
      const double fx = sx - x0;
      const double v = (1 - fy) * ((1 - fx) * L.at(x0, y0, 0) + fx * L.at(x1, y0, 0)) +
                       fy * ((1 - fx) * L.at(x0, y1, 0) + fx * L.at(x1, y1, 0));
      out.at(c, r, 0) = static_cast<float>(std::pow(std::clamp(v / ref, 0.0, 1.0), gamma));
    }
  }
  return out;
}

void writePng8(const std::string& path, const Image2D& img) {
  std::vector<std::uint8_t> px(static_cast<size_t>(img.size[0]) * img.size[1]);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<std::uint8_t>(std::lround(std::clamp(img.data[i], 0.0f, 1.0f) * 255.0f));
  png::write8(path, img.size[0], img.size[1], 1, px.data());
}

}  // namespace biud::image
