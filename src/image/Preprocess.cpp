#include "biud/image/Preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "biud/core/Error.h"
#include "biud/core/Rng.h"

namespace biud::image {

namespace {

/// 1D linear resampling weights for one axis, ITK's or torch's rule (see resampleLinear).
struct Tap {
  int i0, i1;
  float w1;  ///< weight of i1; i0 gets 1 - w1
  bool inside;
};

/// Output size along one axis: ITK's rule round(n * old / new), or torch's floor(n * (old / new))
/// (the arithmetic of CT-CLIP's resize_array: the factor first, then the product).
int axisSize(int nIn, double spIn, double spOut, bool torchGrid) {
  const double x = torchGrid ? nIn * (spIn / spOut) : nIn * spIn / spOut;
  return std::max(1, torchGrid ? static_cast<int>(std::floor(x)) : static_cast<int>(std::lround(x)));
}

/// Continuous input index of output voxel o (0-based over the whole resampled axis).
double sourceIndex(int o, int nIn, double spIn, double spOut, bool torchGrid) {
  if (!torchGrid) return o * spOut / spIn;
  // torch.nn.functional.interpolate(align_corners=False) with an output size: scale = in / out,
  // src = (o + 0.5) * scale - 0.5, clamped at 0 (PyTorch's area_pixel_compute_source_index).
  const double scale = static_cast<double>(nIn) / axisSize(nIn, spIn, spOut, true);
  return std::max(0.0, (o + 0.5) * scale - 0.5);
}

std::vector<Tap> taps(int nIn, double spIn, int nOut, double spOut, int first, bool torchGrid) {
  std::vector<Tap> t(static_cast<size_t>(nOut));
  for (int o = 0; o < nOut; ++o) {
    const double x = sourceIndex(o + first, nIn, spIn, spOut, torchGrid);  // continuous input index
    Tap& tp = t[static_cast<size_t>(o)];
    tp.inside = torchGrid || (x >= -0.5 && x < nIn - 0.5);
    const double fl = std::floor(x);
    tp.i0 = std::clamp(static_cast<int>(fl), 0, nIn - 1);
    tp.i1 = std::clamp(static_cast<int>(fl) + 1, 0, nIn - 1);
    tp.w1 = static_cast<float>(x - fl);
  }
  return t;
}

/// One separable pass along `axis`: output voxels first .. first + nOut - 1 of the resampled
/// grid; every other axis keeps its size.
Volume pass(const Volume& in, int axis, int nOut, double spOut, float outside, int first = 0, bool torchGrid = false) {
  Volume out;
  const int nIn = in.size[axis];
  const double spIn = in.spacing[axis];
  out.size = in.size;
  out.size[axis] = nOut;
  out.spacing = in.spacing;
  // The torch grid spreads floor(n * old / new) samples over the input's extent: its true
  // spacing is n * old / size, and its first sample sits at sourceIndex(0).
  out.spacing[axis] = torchGrid ? nIn * spIn / axisSize(nIn, spIn, spOut, true) : spOut;
  const double shift = torchGrid ? sourceIndex(first, nIn, spIn, spOut, true) * spIn : spOut * first;
  out.origin = in.origin;
  for (int r = 0; r < 3; ++r) out.origin[r] += in.direction[r * 3 + axis] * shift;
  out.direction = in.direction;
  out.data.resize(static_cast<size_t>(out.numel()));
  const auto t = taps(nIn, spIn, nOut, spOut, first, torchGrid);
  const int nx = in.size[0], ny = in.size[1];
  const int ox = out.size[0], oy = out.size[1], oz = out.size[2];
  const float* src = in.data.data();
  float* dst = out.data.data();
  if (axis == 0) {
    for (int k = 0; k < oz; ++k)
      for (int j = 0; j < oy; ++j) {
        const float* row = src + static_cast<size_t>(nx) * (j + static_cast<size_t>(ny) * k);
        float* orow = dst + static_cast<size_t>(ox) * (j + static_cast<size_t>(oy) * k);
        for (int i = 0; i < ox; ++i) {
          const Tap& tp = t[static_cast<size_t>(i)];
          orow[i] = tp.inside ? row[tp.i0] + tp.w1 * (row[tp.i1] - row[tp.i0]) : outside;
        }
      }
  } else if (axis == 1) {
    for (int k = 0; k < oz; ++k)
      for (int j = 0; j < oy; ++j) {
        const Tap& tp = t[static_cast<size_t>(j)];
        float* orow = dst + static_cast<size_t>(ox) * (j + static_cast<size_t>(oy) * k);
        if (!tp.inside) {
          std::fill(orow, orow + ox, outside);
          continue;
        }
        const float* r0 = src + static_cast<size_t>(nx) * (tp.i0 + static_cast<size_t>(ny) * k);
        const float* r1 = src + static_cast<size_t>(nx) * (tp.i1 + static_cast<size_t>(ny) * k);
        const float w = tp.w1;
        for (int i = 0; i < ox; ++i) orow[i] = r0[i] + w * (r1[i] - r0[i]);
      }
  } else {
    const size_t plane = static_cast<size_t>(nx) * ny;
    for (int k = 0; k < oz; ++k) {
      const Tap& tp = t[static_cast<size_t>(k)];
      float* op = dst + plane * k;
      if (!tp.inside) {
        std::fill(op, op + plane, outside);
        continue;
      }
      const float* p0 = src + plane * tp.i0;
      const float* p1 = src + plane * tp.i1;
      const float w = tp.w1;
      for (size_t i = 0; i < plane; ++i) op[i] = p0[i] + w * (p1[i] - p0[i]);
    }
  }
  return out;
}

}  // namespace

std::array<int, 3> resampledSize(const Volume& in, const std::array<double, 3>& spacing, bool torchGrid) {
  std::array<int, 3> out{};
  for (int d = 0; d < 3; ++d) out[d] = axisSize(in.size[d], in.spacing[d], spacing[d], torchGrid);
  return out;
}

Volume resampleLinear(const Volume& in, const std::array<double, 3>& spacing, float outside, bool torchGrid) {
  BIUD_CHECK(in.numel() > 0 && static_cast<std::int64_t>(in.data.size()) == in.numel(), ValueError,
             "resample: volume of size {}x{}x{} holds {} values", in.size[0], in.size[1], in.size[2], in.data.size());
  for (int d = 0; d < 3; ++d)
    BIUD_CHECK(spacing[d] > 0 && in.spacing[d] > 0, ValueError,
               "resample: spacing must be positive (axis {}: {} -> {})", d, in.spacing[d], spacing[d]);
  const auto n = resampledSize(in, spacing, torchGrid);
  // Shrink the largest reductions first so that later passes touch fewer voxels: z, then y, x.
  Volume v = pass(in, 2, n[2], spacing[2], outside, 0, torchGrid);
  v = pass(v, 1, n[1], spacing[1], outside, 0, torchGrid);
  return pass(v, 0, n[0], spacing[0], outside, 0, torchGrid);
}

int centerStart(int n, int size) {
  // Floor division for both signs: a crop of 1 from 4 starts at 1; a pad of 3 puts 1 before.
  if (n >= size) return (n - size) / 2;
  return -((size - n) / 2);
}

Volume cropOrPad(const Volume& in, const std::array<int, 3>& size, const std::array<int, 3>& start, float pad) {
  Volume out;
  out.size = size;
  out.spacing = in.spacing;
  out.direction = in.direction;
  for (int r = 0; r < 3; ++r) {
    out.origin[r] = in.origin[r];
    for (int a = 0; a < 3; ++a) out.origin[r] += in.direction[r * 3 + a] * in.spacing[a] * start[a];
  }
  out.data.assign(static_cast<size_t>(out.numel()), pad);
  // Overlap of [start, start + size) with [0, n) per axis, in input coordinates.
  std::array<int, 3> lo{}, hi{};
  for (int d = 0; d < 3; ++d) {
    lo[d] = std::max(0, start[d]);
    hi[d] = std::min(in.size[d], start[d] + size[d]);
    if (hi[d] <= lo[d]) return out;
  }
  const size_t len = static_cast<size_t>(hi[0] - lo[0]);
  for (int k = lo[2]; k < hi[2]; ++k)
    for (int j = lo[1]; j < hi[1]; ++j) {
      const float* s = &in.data[static_cast<size_t>(in.index(lo[0], j, k))];
      float* o = &out.data[static_cast<size_t>(out.index(lo[0] - start[0], j - start[1], k - start[2]))];
      std::memcpy(o, s, len * sizeof(float));
    }
  return out;
}

bool bodyBox(const Volume& v, float threshold, std::array<int, 3>& lo, std::array<int, 3>& hi) {
  const std::int64_t n = v.numel();
  // Label components with a flood fill over the mask (labels in int32; 0 = background, -1 = unvisited).
  std::vector<std::int32_t> label(static_cast<size_t>(n), 0);
  for (std::int64_t i = 0; i < n; ++i)
    label[static_cast<size_t>(i)] = v.data[static_cast<size_t>(i)] > threshold ? -1 : 0;
  const int nx = v.size[0], ny = v.size[1], nz = v.size[2];
  const std::int64_t sy = nx, sz = static_cast<std::int64_t>(nx) * ny;
  std::vector<std::int64_t> stack;
  std::int64_t bestCount = 0;
  std::int32_t next = 0;
  for (std::int64_t seed = 0; seed < n; ++seed) {
    if (label[static_cast<size_t>(seed)] != -1) continue;
    ++next;
    std::int64_t count = 0;
    std::array<int, 3> blo{nx, ny, nz}, bhi{-1, -1, -1};
    stack.assign(1, seed);
    label[static_cast<size_t>(seed)] = next;
    while (!stack.empty()) {
      const std::int64_t p = stack.back();
      stack.pop_back();
      ++count;
      const int i = static_cast<int>(p % nx), j = static_cast<int>((p / nx) % ny), k = static_cast<int>(p / sz);
      blo = {std::min(blo[0], i), std::min(blo[1], j), std::min(blo[2], k)};
      bhi = {std::max(bhi[0], i), std::max(bhi[1], j), std::max(bhi[2], k)};
      auto visit = [&](std::int64_t q) {
        if (label[static_cast<size_t>(q)] == -1) {
          label[static_cast<size_t>(q)] = next;
          stack.push_back(q);
        }
      };
      if (i > 0) visit(p - 1);
      if (i + 1 < nx) visit(p + 1);
      if (j > 0) visit(p - sy);
      if (j + 1 < ny) visit(p + sy);
      if (k > 0) visit(p - sz);
      if (k + 1 < nz) visit(p + sz);
    }
    if (count > bestCount) {
      bestCount = count;
      lo = blo;
      hi = bhi;
    }
  }
  return bestCount > 0;
}

std::array<int, 3> bodyCropStart(const Volume& v, const std::array<int, 3>& size, float thresholdHu) {
  std::array<int, 3> start{};
  std::array<int, 3> lo{}, hi{};
  const bool found = bodyBox(v, thresholdHu, lo, hi);
  for (int d = 0; d < 3; ++d) {
    const int n = v.size[d];
    if (!found || n <= size[d]) {
      start[d] = centerStart(n, size[d]);
      continue;
    }
    // Centre of the body box; floor((lo + hi + 1 - size) / 2) centres the window on it.
    int s = (lo[d] + hi[d] + 1 - size[d]);
    s = s >= 0 ? s / 2 : -((-s + 1) / 2);
    start[d] = std::clamp(s, 0, n - size[d]);
  }
  return start;
}

Image2D padToSquare(const Image2D& img, float pad) {
  const int w = img.size[0], h = img.size[1], n = std::max(w, h);
  return cropOrPad(img, {n, n, 1}, {centerStart(w, n), centerStart(h, n), 0}, pad);
}

Image2D resize2D(const Image2D& img, int w, int h) {
  BIUD_CHECK(w >= 1 && h >= 1 && img.size[2] == 1 && img.numel() > 0, ValueError,
             "resize2D: cannot resize a {}x{}x{} image to {}x{}", img.size[0], img.size[1], img.size[2], w, h);
  const int iw = img.size[0], ih = img.size[1];
  Image2D out;
  out.size = {w, h, 1};
  out.spacing = {img.spacing[0] * iw / w, img.spacing[1] * ih / h, img.spacing[2]};
  out.origin = img.origin;
  out.direction = img.direction;
  out.data.resize(static_cast<size_t>(w) * h);
  auto axis = [](int nOut, int nIn) {
    std::vector<std::pair<int, float>> t(static_cast<size_t>(nOut));
    for (int o = 0; o < nOut; ++o) {
      const double x = std::max(0.0, (o + 0.5) * nIn / nOut - 0.5);
      const int i0 = std::min(static_cast<int>(x), nIn - 1);
      t[static_cast<size_t>(o)] = {i0, static_cast<float>(x - i0)};
    }
    return t;
  };
  const auto tx = axis(w, iw), ty = axis(h, ih);
  for (int j = 0; j < h; ++j) {
    const int j0 = ty[static_cast<size_t>(j)].first, j1 = std::min(j0 + 1, ih - 1);
    const float wy = ty[static_cast<size_t>(j)].second;
    for (int i = 0; i < w; ++i) {
      const int i0 = tx[static_cast<size_t>(i)].first, i1 = std::min(i0 + 1, iw - 1);
      const float wx = tx[static_cast<size_t>(i)].second;
      const float a = img.at(i0, j0, 0) + wx * (img.at(i1, j0, 0) - img.at(i0, j0, 0));
      const float b = img.at(i0, j1, 0) + wx * (img.at(i1, j1, 0) - img.at(i0, j1, 0));
      out.data[static_cast<size_t>(i) + static_cast<size_t>(w) * j] = a + wy * (b - a);
    }
  }
  return out;
}

Image2D preprocessXray(const Image2D& img, const XrayPreprocessConfig& cfg) {
  const Image2D sq = cfg.pad_square ? padToSquare(img, 0.0f) : img;
  return resize2D(sq, cfg.size, cfg.size);
}

namespace {

/// "221184000 bytes (211 MiB)".
std::string bytesText(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  double v = bytes;
  while (v >= 1024.0 && u < 6) v /= 1024.0, ++u;
  return u == 0 ? fmt::format("{:.0f} bytes", bytes) : fmt::format("{:.0f} bytes ({:.3g} {})", bytes, v, units[u]);
}

/// The one-line error for a CT whose buffers do not fit in memory: the bytes of the output volume
/// (data.ct.size) and of the resampled one (data.ct.spacing; the whole of it is kept with the body
/// crop, only the window's part with the centre crop), and the keys that lower them.
[[noreturn]] void throwOutOfMemory(const Volume& hu, const CtPreprocessConfig& cfg) {
  const std::array<double, 3> sp{cfg.spacing[0], cfg.spacing[1], cfg.spacing[2]};
  const auto n = resampledSize(hu, sp, cfg.grid == "torch");
  const double outBytes = 4.0 * cfg.size[0] * cfg.size[1] * cfg.size[2];
  const double resBytes = 4.0 * n[0] * n[1] * n[2];
  BIUD_THROW(ConfigError,
             "out of memory preprocessing a {}x{}x{} CT: its output at data.ct.size [{}, {}, {}] takes {}, and the "
             "volume resampled to data.ct.spacing [{}, {}, {}] mm ({}x{}x{}) takes {}{}; lower data.ct.size (or raise "
             "data.ct.spacing); the loader keeps data.loader.batch_size of them per batch",
             hu.size[0], hu.size[1], hu.size[2], cfg.size[0], cfg.size[1], cfg.size[2], bytesText(outBytes), sp[0],
             sp[1], sp[2], n[0], n[1], n[2], bytesText(resBytes),
             cfg.crop == "body" ? " (all of it is kept for the body crop)" : "");
}

Volume preprocessCtUnchecked(const Volume& hu, const CtPreprocessConfig& cfg) {
  const bool lung = cfg.window == "lung";
  const float lo = lung ? -1350.0f : static_cast<float>(cfg.hu_min);
  const float hi = lung ? 150.0f : static_cast<float>(cfg.hu_max);
  const std::array<double, 3> sp{cfg.spacing[0], cfg.spacing[1], cfg.spacing[2]};
  const std::array<int, 3> size{cfg.size[0], cfg.size[1], cfg.size[2]};
  const bool torchGrid = cfg.grid == "torch";
  BIUD_CHECK(torchGrid || cfg.grid == "itk", ConfigError, "data.ct.grid: `{}` (itk or torch)", cfg.grid);
  std::array<int, 3> start{};
  // Clipping first (CT-CLIP's zero-shot loader): the resampled values are convex combinations of
  // clipped ones, so the clip after resampling below changes nothing more.
  Volume clipped;
  if (cfg.clip_before_resample) {
    clipped = hu;
    for (float& x : clipped.data) x = std::min(hi, std::max(lo, x));
  }
  const Volume& src = cfg.clip_before_resample ? clipped : hu;
  Volume v;
  if (cfg.crop == "body") {
    v = resampleLinear(src, sp, lo, torchGrid);
    start = bodyCropStart(v, size, static_cast<float>(cfg.body_threshold));
  } else {
    // Centre crop: the window is known before resampling, so only the voxels inside it are
    // computed (same taps, same values as resampling everything and cropping afterwards).
    BIUD_CHECK(src.numel() > 0 && static_cast<std::int64_t>(src.data.size()) == src.numel(), ValueError,
               "preprocess: volume of size {}x{}x{} holds {} values", src.size[0], src.size[1], src.size[2],
               src.data.size());
    const auto n = resampledSize(src, sp, torchGrid);
    std::array<int, 3> first{}, count{};
    for (int d = 0; d < 3; ++d) {
      start[d] = centerStart(n[d], size[d]);
      first[d] = std::max(0, start[d]);
      count[d] = std::min(n[d], start[d] + size[d]) - first[d];
      start[d] -= first[d];
    }
    v = pass(src, 2, count[2], sp[2], lo, first[2], torchGrid);
    v = pass(v, 1, count[1], sp[1], lo, first[1], torchGrid);
    v = pass(v, 0, count[0], sp[0], lo, first[0], torchGrid);
  }
  // Window and scale in place before the crop copies.
  const float a = lung ? 2.0f / (hi - lo) : 1.0f / static_cast<float>(cfg.scale);
  const float b = lung ? -1.0f - lo * a : 0.0f;
  for (float& x : v.data) x = std::min(hi, std::max(lo, x)) * a + b;
  return cropOrPad(v, size, start, static_cast<float>(cfg.pad_value));
}

}  // namespace

Volume preprocessCt(const Volume& hu, const CtPreprocessConfig& cfg) {
  BIUD_CHECK(cfg.spacing.size() == 3 && cfg.size.size() == 3, ConfigError,
             "data.ct: spacing and size need 3 values (x, y, z)");
  // An allocation that fails (std::bad_alloc; std::length_error for a vector beyond max_size) is
  // reported with the sizes and the keys that set them, not as a bare "std::bad_alloc". A size
  // whose voxel count overflows 64 bits could never be allocated: the same error, before
  // Volume::numel() overflows.
  const double voxels = static_cast<double>(cfg.size[0]) * cfg.size[1] * cfg.size[2];
  if (voxels * 4.0 >= 9.2e18) throwOutOfMemory(hu, cfg);
  try {
    return preprocessCtUnchecked(hu, cfg);
  } catch (const std::bad_alloc&) {
    throwOutOfMemory(hu, cfg);
  } catch (const std::length_error&) {
    throwOutOfMemory(hu, cfg);
  }
}

std::string describePreprocess(const CtPreprocessConfig& c) {
  return fmt::format(
             "spacing [{}, {}, {}] mm, size [{}, {}, {}], window {} [{}, {}] / {}, pad {}, crop {}{}, storage {}",
             c.spacing.at(0), c.spacing.at(1), c.spacing.at(2), c.size.at(0), c.size.at(1), c.size.at(2), c.window,
             c.hu_min, c.hu_max, c.scale, c.pad_value, c.crop,
             c.crop == "body" ? fmt::format(" (> {} HU)", c.body_threshold) : std::string(), c.storage) +
         // Only when not the default, so that caches built before the option keep their hash.
         (c.grid == "itk" ? std::string() : fmt::format(", grid {}", c.grid)) +
         (c.clip_before_resample ? ", clip before resampling" : "");
}

std::string preprocessHash(const CtPreprocessConfig& c) {
  // Versioned: bump "v1" when the pipeline itself changes in a way that alters voxels.
  return fmt::format("{:016x}", fnv1a("biud-ct-v1|" + describePreprocess(c)));
}

}  // namespace biud::image
