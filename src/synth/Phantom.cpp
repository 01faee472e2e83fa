// Analytic chest phantom: anatomy drawn per patient, findings placed in it, everything
// rasterised into a label map, then HU, blur and noise.
#include "biud/synth/Phantom.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "biud/core/Error.h"

namespace biud::synth {

namespace {

constexpr double kPi = 3.14159265358979323846;
using Vec3 = std::array<double, 3>;

Vec3 add(const Vec3& a, const Vec3& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 mul(const Vec3& a, double s) { return {a[0] * s, a[1] * s, a[2] * s}; }
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
Vec3 normalize(const Vec3& a) {
  const double n = std::sqrt(dot(a, a));
  return n > 0 ? mul(a, 1.0 / n) : Vec3{1, 0, 0};
}
double sq(double v) { return v * v; }

/// Lung outline per height: full width in the lower 60 %, a round apex above.
double lungProfile(double zn) {
  if (zn <= 0.45) return 1.0;
  const double t = (zn - 0.45) / 0.55;
  return t >= 1 ? 0.0 : std::sqrt(1 - t * t);
}

/// Height of the diaphragm under (x, y): the dome top of the side, falling to the costophrenic
/// recesses laterally, anteriorly and posteriorly; flat medially (central tendon).
double diaphragmZ(const Anatomy& a, double x, double y) {
  const double dx = x - a.cx;
  const double w = std::clamp((dx + 0.1 * a.cav_a) / (0.2 * a.cav_a), 0.0, 1.0);  // 0 right .. 1 left
  const double top = a.dome_right * (1 - w) + a.dome_left * w;
  const double lat = std::max(0.0, std::abs(dx) - 0.56 * a.cav_a) / (0.46 * a.cav_a);
  const double ap = (y - (a.cy + 0.04 * a.cav_b)) / a.cav_b;
  const double g = std::min(1.0, sq(lat) + sq(ap));
  return top - a.dome_depth * g;
}

/// Normalised distance from the heart centre (1 on the myocardial surface).
double heartRadius(const Anatomy& a, double x, double y, double z) {
  const double dx = x - a.heart_c[0], dy = y - a.heart_c[1], dz = z - a.heart_c[2];
  const double c = std::cos(a.heart_angle), s = std::sin(a.heart_angle);
  // Long axis u points to patient left and anterior (-y).
  const double u = dx * c - dy * s, v = dx * s + dy * c;
  return std::sqrt(sq(u / a.heart_r[0]) + sq(v / a.heart_r[1]) + sq(dz / a.heart_r[2]));
}
double heartMeanRadius(const Anatomy& a) { return (a.heart_r[0] + a.heart_r[1] + a.heart_r[2]) / 3.0; }

bool inSpine(const Anatomy& a, double x, double y) {
  const double vy = a.cy + 0.74 * a.cav_b;
  return sq((x - a.cx) / (0.17 * a.cav_a)) + sq((y - vy) / (0.15 * a.cav_a)) <= 1.0;
}

/// Aorta centre line: ascending from the heart, arch, descending left of the spine.
std::vector<Vec3> aortaPath(const Anatomy& a) {
  std::vector<Vec3> p;
  const Vec3 asc0{a.cx + 0.04 * a.cav_a, a.heart_c[1] + 0.25 * a.heart_r[1], a.heart_c[2] + 0.6 * a.heart_r[2]};
  const Vec3 asc1{a.cx + 0.02 * a.cav_a, a.cy - 0.2 * a.cav_b, a.z_arch};
  const Vec3 desc0{a.cx + 0.2 * a.cav_a, a.cy + 0.5 * a.cav_b, a.z_arch};
  p.push_back(asc0);
  p.push_back(asc1);
  const Vec3 mid = mul(add(asc1, desc0), 0.5);
  const Vec3 half = mul(sub(desc0, asc1), 0.5);
  const double rise = 0.45 * std::sqrt(dot(half, half)) + a.aorta_r;
  for (int s = 1; s < 8; ++s) {
    const double t = kPi * s / 8.0;  // from asc1 (t=0) over the top to desc0 (t=pi)
    p.push_back({mid[0] - half[0] * std::cos(t), mid[1] - half[1] * std::cos(t), mid[2] + rise * std::sin(t)});
  }
  p.push_back(desc0);
  p.push_back({a.cx + 0.18 * a.cav_a, a.cy + 0.48 * a.cav_b, a.z_base - a.dome_depth - 0.5 * a.height});
  return p;
}

/// The grid helper every painter uses: physical coordinates of indices and bounding boxes.
struct Grid {
  const Acquisition& acq;
  int nx, ny, nz;
  std::vector<double> xs, ys, zs;
  explicit Grid(const Acquisition& a) : acq(a), nx(a.size[0]), ny(a.size[1]), nz(a.size[2]) {
    for (int d = 0; d < 3; ++d) {
      auto& v = d == 0 ? xs : d == 1 ? ys : zs;
      v.resize(static_cast<size_t>(a.size[d]));
      for (int i = 0; i < a.size[d]; ++i) v[static_cast<size_t>(i)] = voxelToMm(a, d, i);
    }
  }
  /// Index range [lo, hi] of voxels whose centres may lie within [mmLo, mmHi] along `axis`.
  std::pair<int, int> range(int axis, double mmLo, double mmHi) const {
    const double c = 0.5 * (acq.size[axis] - 1), s = acq.spacing[axis];
    const int lo = std::max(0, static_cast<int>(std::floor(mmLo / s + c)));
    const int hi = std::min(acq.size[axis] - 1, static_cast<int>(std::ceil(mmHi / s + c)));
    return {lo, hi};
  }
  size_t idx(int i, int j, int k) const {
    return static_cast<size_t>(i) + static_cast<size_t>(nx) * (static_cast<size_t>(j) + static_cast<size_t>(ny) * k);
  }
};

/// Which labels a painter may overwrite.
struct LabelSet {
  std::uint64_t bits = 0;
  LabelSet(std::initializer_list<std::uint8_t> l) {
    for (auto v : l) bits |= 1ull << v;
  }
  bool has(std::uint8_t v) const { return v < 64 && ((bits >> v) & 1ull); }
};
const LabelSet kLungish{kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole};

/// Paint `label` into voxels of the box [lo, hi] (mm) where `inside(x, y, z)` holds and the current
/// label is allowed.
void paintBox(const Grid& g, std::vector<std::uint8_t>& lab, const Vec3& lo, const Vec3& hi, const LabelSet& allowed,
              std::uint8_t label, const std::function<bool(double, double, double)>& inside) {
  const auto [i0, i1] = g.range(0, lo[0], hi[0]);
  const auto [j0, j1] = g.range(1, lo[1], hi[1]);
  const auto [k0, k1] = g.range(2, lo[2], hi[2]);
  for (int k = k0; k <= k1; ++k)
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i) {
        auto& l = lab[g.idx(i, j, k)];
        if (allowed.has(l) &&
            inside(g.xs[static_cast<size_t>(i)], g.ys[static_cast<size_t>(j)], g.zs[static_cast<size_t>(k)]))
          l = label;
      }
}

void paintSphere(const Grid& g, std::vector<std::uint8_t>& lab, const Vec3& c, double r, const LabelSet& allowed,
                 std::uint8_t label) {
  const double r2 = r * r;
  paintBox(g, lab, sub(c, {r, r, r}), add(c, {r, r, r}), allowed, label,
           [&](double x, double y, double z) { return sq(x - c[0]) + sq(y - c[1]) + sq(z - c[2]) <= r2; });
}

/// A capsule from a to b with radius r (vessels, airways, ribs, aorta).
void paintTube(const Grid& g, std::vector<std::uint8_t>& lab, const Vec3& a, const Vec3& b, double r,
               const LabelSet& allowed, std::uint8_t label) {
  const Vec3 ab = sub(b, a);
  const double len2 = std::max(dot(ab, ab), 1e-12);
  const Vec3 lo{std::min(a[0], b[0]) - r, std::min(a[1], b[1]) - r, std::min(a[2], b[2]) - r};
  const Vec3 hi{std::max(a[0], b[0]) + r, std::max(a[1], b[1]) + r, std::max(a[2], b[2]) + r};
  const double r2 = r * r;
  paintBox(g, lab, lo, hi, allowed, label, [&](double x, double y, double z) {
    const Vec3 ap{x - a[0], y - a[1], z - a[2]};
    const double t = std::clamp(dot(ap, ab) / len2, 0.0, 1.0);
    return sq(ap[0] - t * ab[0]) + sq(ap[1] - t * ab[1]) + sq(ap[2] - t * ab[2]) <= r2;
  });
}

void paintPath(const Grid& g, std::vector<std::uint8_t>& lab, const std::vector<Vec3>& p, double r,
               const LabelSet& allowed, std::uint8_t label) {
  for (size_t s = 0; s + 1 < p.size(); ++s) paintTube(g, lab, p[s], p[s + 1], r, allowed, label);
}

Vec3 randomUnit(Rng& rng) {
  for (;;) {
    const Vec3 v{rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)};
    const double n = dot(v, v);
    if (n > 1e-3 && n <= 1) return mul(v, 1 / std::sqrt(n));
  }
}

/// Pulmonary vessel tree: recursive bifurcations from the hilum towards the periphery.
void paintVessels(const Grid& g, std::vector<std::uint8_t>& lab, Rng& rng, const Vec3& p, const Vec3& d, double len,
                  double r, int depth) {
  const Vec3 e = add(p, mul(d, len));
  paintTube(g, lab, p, e, r, {kLungRight, kLungLeft}, kVessel);
  if (depth >= 7 || r < 0.45) return;
  for (int c = 0; c < 2; ++c) {
    const Vec3 perp = normalize(cross(d, randomUnit(rng)));
    const double ang = rng.uniform(0.35, 0.65) * (c == 0 ? 1 : -1);
    const Vec3 nd = normalize(add(mul(d, std::cos(ang)), mul(perp, std::sin(ang))));
    paintVessels(g, lab, rng, e, nd, len * rng.uniform(0.7, 0.85), r * rng.uniform(0.68, 0.78), depth + 1);
  }
}

/// A smooth random field in [-1, 1]-ish: trilinear interpolation of a coarse random lattice.
struct SmoothNoise {
  int n = 8;
  std::vector<float> v;
  double lo[3], step[3];
  SmoothNoise(Rng& rng, const Grid& g, int cells) : n(cells) {
    v.resize(static_cast<size_t>(n * n * n));
    for (auto& x : v) x = static_cast<float>(rng.normal());
    const std::vector<double>* ax[3] = {&g.xs, &g.ys, &g.zs};
    for (int d = 0; d < 3; ++d) {
      lo[d] = ax[d]->front();
      step[d] = std::max(1e-6, (ax[d]->back() - ax[d]->front()) / (n - 1));
    }
  }
  float at(double x, double y, double z) const {
    const double p[3] = {x, y, z};
    int i0[3];
    double f[3];
    for (int d = 0; d < 3; ++d) {
      const double t = std::clamp((p[d] - lo[d]) / step[d], 0.0, n - 1.000001);
      i0[d] = static_cast<int>(t);
      f[d] = t - i0[d];
    }
    auto V = [&](int a, int b, int c) {
      return v[static_cast<size_t>((i0[0] + a) + n * ((i0[1] + b) + n * (i0[2] + c)))];
    };
    double r = 0;
    for (int c = 0; c < 2; ++c)
      for (int b = 0; b < 2; ++b)
        for (int a = 0; a < 2; ++a)
          r += (a ? f[0] : 1 - f[0]) * (b ? f[1] : 1 - f[1]) * (c ? f[2] : 1 - f[2]) * V(a, b, c);
    return static_cast<float>(r);
  }
};

/// Gaussian kernel (normalised) with radius ceil(3 sigma); {1} when sigma is ~0.
std::vector<float> gaussKernel(double sigma) {
  if (sigma < 0.05) return {1.0f};
  const int r = static_cast<int>(std::ceil(3 * sigma));
  std::vector<float> k(static_cast<size_t>(2 * r + 1));
  double s = 0;
  for (int i = -r; i <= r; ++i)
    s += k[static_cast<size_t>(i + r)] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
  for (auto& v : k) v = static_cast<float>(v / s);
  return k;
}

/// In-place separable convolution along `axis` with edge clamping.
void convolveAxis(std::vector<float>& data, const std::array<int, 3>& size, int axis, const std::vector<float>& k) {
  if (k.size() <= 1) return;
  const int r = static_cast<int>(k.size() / 2);
  const int n = size[axis];
  const std::int64_t stride = axis == 0 ? 1 : axis == 1 ? size[0] : static_cast<std::int64_t>(size[0]) * size[1];
  const int o1 = axis == 0 ? size[1] : size[0], o2 = axis == 2 ? size[1] : size[2];
  std::vector<float> line(static_cast<size_t>(n));
  for (int b = 0; b < o2; ++b)
    for (int a = 0; a < o1; ++a) {
      std::int64_t base;
      if (axis == 0)
        base = static_cast<std::int64_t>(size[0]) * (a + static_cast<std::int64_t>(size[1]) * b);
      else if (axis == 1)
        base = a + static_cast<std::int64_t>(size[0]) * size[1] * b;
      else
        base = a + static_cast<std::int64_t>(size[0]) * b;
      for (int t = 0; t < n; ++t) line[static_cast<size_t>(t)] = data[static_cast<size_t>(base + stride * t)];
      for (int t = 0; t < n; ++t) {
        float acc = 0;
        for (int q = -r; q <= r; ++q)
          acc += k[static_cast<size_t>(q + r)] * line[static_cast<size_t>(std::clamp(t + q, 0, n - 1))];
        data[static_cast<size_t>(base + stride * t)] = acc;
      }
    }
}

double kernelNorm(const std::vector<float>& k) {
  double s = 0;
  for (float v : k) s += double(v) * v;
  return std::sqrt(s);
}

/// A random point of lung `side` (1 right, 2 left; 0 either) inside lobe `lobe` (empty = any),
/// at least `margin` mm from the lung border along the axes. Relaxes the constraints if none is found.
Vec3 randomLungPoint(Rng& rng, const Anatomy& a, int side, const std::string& lobe, double margin, double znLo = -1,
                     double znHi = 2) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    const double m = attempt < 2 ? margin : margin * 0.4;
    const bool useLobe = attempt < 3 && !lobe.empty();
    for (int t = 0; t < 3000; ++t) {
      const Vec3 p{a.cx + rng.uniform(-a.cav_a, a.cav_a), a.cy + rng.uniform(-a.cav_b, a.cav_b),
                   a.z_base - a.dome_depth + rng.uniform(0, a.height + a.dome_depth)};
      const double zn = (p[2] - a.z_base) / a.height;
      if (attempt < 3 && (zn < znLo || zn > znHi)) continue;
      const int s = a.lungAt(p[0], p[1], p[2]);
      if (s == 0 || (side != 0 && s != side)) continue;
      if (useLobe && a.lobeAt(p[0], p[1], p[2]) != lobe) continue;
      bool ok = true;
      for (int d = 0; d < 3 && ok; ++d)
        for (int sg = -1; sg <= 1 && ok; sg += 2) {
          Vec3 q = p;
          q[static_cast<size_t>(d)] += sg * m;
          ok = a.lungAt(q[0], q[1], q[2]) == s;
        }
      if (ok) return p;
    }
  }
  // Degenerate anatomy (tiny grids): the lung centre.
  return {a.cx + (side == 2 ? 0.56 : -0.56) * a.cav_a, a.cy, a.z_base + 0.3 * a.height};
}

int sideIndex(Side s) { return s == Side::Left ? 2 : 1; }
Side randomSide(Rng& rng, double pBilateral) {
  const double u = rng.uniform();
  if (u < pBilateral) return Side::Bilateral;
  return rng.uniform() < 0.55 ? Side::Right : Side::Left;
}
int severityDraw(Rng& rng) {
  const double u = rng.uniform();
  return u < 0.45 ? 1 : u < 0.8 ? 2 : 3;
}
std::string randomLobe(Rng& rng, int side) {
  if (side == 1) {
    const double u = rng.uniform();
    return u < 0.4 ? "right upper lobe" : u < 0.55 ? "right middle lobe" : "right lower lobe";
  }
  return rng.uniform() < 0.5 ? "left upper lobe" : "left lower lobe";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
int Anatomy::lungAt(double x, double y, double z) const {
  const double zn = (z - z_base) / height;
  if (zn > 1.0) return 0;
  if (sq((x - cx) / cav_a) + sq((y - cy) / cav_b) > 1.0) return 0;
  const int side = x < cx ? 1 : 2;
  const double xl = cx + (side == 1 ? -0.56 : 0.56) * cav_a, yl = cy + 0.04 * cav_b;
  const double p = lungProfile(zn);
  if (p <= 0) return 0;
  if (sq((x - xl) / (0.46 * cav_a * p)) + sq((y - yl) / (1.02 * cav_b * p)) > 1.0) return 0;
  if (z < diaphragmZ(*this, x, y)) return 0;
  if (inSpine(*this, x, y)) return 0;
  if (heartRadius(*this, x, y, z) <= 1.0 + (peri_fat + peri_fluid) / heartMeanRadius(*this)) return 0;
  return side;
}

std::string Anatomy::lobeAt(double x, double y, double z) const {
  const int s = lungAt(x, y, z);
  if (s == 0) return "";
  const double zn = (z - z_base) / height, yn = (y - cy) / cav_b;
  // Oblique fissure: from the posterior chest at ~70 % height to the anterior diaphragm.
  const bool lower = zn < 0.38 + 0.32 * yn;
  if (s == 1) return lower ? "right lower lobe" : zn < 0.52 ? "right middle lobe" : "right upper lobe";
  return lower ? "left lower lobe" : "left upper lobe";
}

Anatomy sampleAnatomy(Rng& rng, const Acquisition& acq) {
  BIUD_CHECK(acq.fill > 0.1 && acq.fill < 1.5, ValueError, "synth: acquisition fill {} out of range (0.1, 1.5)",
             acq.fill);
  Anatomy a;
  const double fovX = acq.size[0] * acq.spacing[0], fovY = acq.size[1] * acq.spacing[1],
               fovZ = acq.size[2] * acq.spacing[2];
  a.body_a = 0.5 * acq.fill * fovX;
  a.scale = a.body_a / 170.0;
  const double s = a.scale;
  a.body_b = a.body_a * rng.uniform(0.62, 0.74);
  a.cx = rng.normal(0, 0.02 * fovX);
  // The patient lies on the table: the back is in the lower (posterior) part of the field of view.
  a.cy = std::clamp(rng.normal(0.03 * fovY, 0.02 * fovY), -0.5 * fovY + a.body_b, 0.5 * fovY - a.body_b + 0.1 * fovY);
  a.fat = s * rng.uniform(4, 16);
  a.muscle = s * rng.uniform(7, 11);
  const double ribs = 6 * s;
  a.cav_a = a.body_a - a.fat - a.muscle - ribs;
  a.cav_b = a.body_b - a.fat - a.muscle - ribs;
  BIUD_CHECK(a.cav_a > 0 && a.cav_b > 0, ValueError, "synth: patient too small for the grid");
  const double breath = rng.uniform(-1, 1);  // +1 deep inspiration
  a.height = a.cav_a * rng.uniform(1.7, 1.95) * (1 + 0.07 * breath);
  a.lung_hu = -845 - 25 * breath + rng.normal(0, 8);
  const double zc = rng.normal(-0.04 * fovZ, 0.025 * fovZ);
  a.z_base = zc - 0.42 * a.height;
  a.dome_right = a.z_base + a.height * rng.uniform(0.03, 0.07);
  a.dome_left = a.z_base - a.height * rng.uniform(0.02, 0.05);
  a.dome_depth = a.height * rng.uniform(0.16, 0.22);
  a.heart_r = {0.5 * a.cav_a * rng.uniform(0.92, 1.06), 0.37 * a.cav_a * rng.uniform(0.92, 1.06),
               0.3 * a.height * rng.uniform(0.92, 1.06)};
  a.heart_angle = rng.uniform(0.45, 0.75);
  a.heart_c = {a.cx + 0.12 * a.cav_a, a.cy - 0.26 * a.cav_b, a.dome_left + 0.5 * a.heart_r[2]};
  a.peri_fat = s * rng.uniform(5, 9);
  a.aorta_r = s * rng.uniform(12, 16);
  a.trachea_r = s * rng.uniform(8, 10);
  a.z_carina = a.z_base + 0.62 * a.height;
  a.z_arch = a.z_base + 0.76 * a.height;
  a.fat_hu = rng.normal(-100, 8);
  a.muscle_hu = rng.normal(42, 4);
  a.texture_seed = rng.next();
  return a;
}

// ---------------------------------------------------------------------------------------------
std::vector<FindingInstance> placeFindings(Rng& rng, Anatomy& a, const Labels& labels) {
  std::vector<FindingInstance> out;
  auto has = [&](Finding f) { return labels[static_cast<size_t>(f)] != 0; };
  // Heart changes first: they change where the lungs are.
  if (has(Finding::Cardiomegaly)) {
    FindingInstance f;
    f.type = Finding::Cardiomegaly;
    f.severity = severityDraw(rng);
    const double k = f.severity == 1   ? rng.uniform(1.2, 1.27)
                     : f.severity == 2 ? rng.uniform(1.27, 1.35)
                                       : rng.uniform(1.35, 1.45);
    for (auto& r : a.heart_r) r *= k;
    a.heart_c[1] += 0.2 * (k - 1) * a.cav_b;  // the enlarged heart fills the cavity backwards
    a.heart_c[2] += 0.3 * (k - 1) * a.heart_r[2];
    f.center_mm = a.heart_c;
    out.push_back(f);
  }
  if (has(Finding::PericardialEffusion)) {
    FindingInstance f;
    f.type = Finding::PericardialEffusion;
    f.severity = severityDraw(rng);
    f.size_mm = f.severity == 1 ? rng.uniform(8, 11) : f.severity == 2 ? rng.uniform(11, 15) : rng.uniform(15, 20);
    f.uncertain = f.severity == 1 && rng.bernoulli(0.15);
    a.peri_fluid = f.size_mm;
    f.center_mm = a.heart_c;
    out.push_back(f);
  }
  if (has(Finding::PleuralEffusion)) {
    FindingInstance f;
    f.type = Finding::PleuralEffusion;
    f.side = randomSide(rng, 0.35);
    f.severity = severityDraw(rng);
    const double frac = f.severity == 1   ? rng.uniform(0.22, 0.28)
                        : f.severity == 2 ? rng.uniform(0.3, 0.38)
                                          : rng.uniform(0.4, 0.5);
    f.size_mm = frac * 2 * a.cav_b;  // depth of the fluid layer, posterior to anterior
    f.extent_mm = a.height * (f.severity == 1 ? 0.45 : f.severity == 2 ? 0.6 : 0.75);
    f.center_mm = {a.cx + (f.side == Side::Left ? 0.56 : -0.56) * a.cav_a, a.cy + a.cav_b - 0.5 * f.size_mm, a.z_base};
    f.uncertain = f.severity == 1 && rng.bernoulli(0.15);
    out.push_back(f);
  }
  // Atelectasis is decided before any lung finding is placed: a lower-lobe collapse raises the
  // ipsilateral hemidiaphragm (volume loss), which changes where the lungs are. Not on a side
  // with pleural fluid: there the atelectasis is passive (compressed by the fluid, which takes
  // the lost volume), and the diaphragm stays down.
  int atelSeverity = 1;
  bool atelBasal = false;
  Side atelSide = Side::None;
  std::array<double, 2> atelRaise{0, 0};
  if (has(Finding::Atelectasis)) {
    atelSeverity = rng.uniform() < 0.6 ? 1 : 2;
    atelBasal = rng.uniform() < 0.7;
    atelSide = atelBasal ? randomSide(rng, 0.4) : (rng.uniform() < 0.5 ? Side::Right : Side::Left);
    // 9-13 mm (subsegmental) or 13-18 mm (segmental) at the default 192 mm field of view.
    const double raise = a.height * (atelSeverity == 1 ? rng.uniform(0.07, 0.1) : rng.uniform(0.1, 0.14));
    for (int s = 1; s <= 2 && atelBasal; ++s) {
      if (atelSide != Side::Bilateral && sideIndex(atelSide) != s) continue;
      bool fluid = false;
      for (const auto& e : out)
        fluid = fluid || (e.type == Finding::PleuralEffusion && (e.side == Side::Bilateral || sideIndex(e.side) == s));
      if (fluid) continue;
      atelRaise[static_cast<size_t>(s - 1)] = raise;
      (s == 1 ? a.dome_right : a.dome_left) += raise;
    }
  }
  // Cardiothoracic ratio: widest heart extent in x over the inner thoracic width.
  {
    const double c = std::cos(a.heart_angle), s = std::sin(a.heart_angle);
    const double wx = std::sqrt(sq(a.heart_r[0] * c) + sq(a.heart_r[1] * s)) + a.peri_fat + a.peri_fluid;
    for (auto& f : out)
      if (f.type == Finding::Cardiomegaly) f.value = wx / a.cav_a, f.size_mm = 2 * wx;
  }

  if (has(Finding::LungNodule)) {
    FindingInstance f;
    f.type = Finding::LungNodule;
    f.count = rng.uniform() < 0.7 ? 1 : static_cast<int>(rng.uniformInt(2, 3));
    int sides = 0;
    for (int n = 0; n < f.count; ++n) {
      const double d = n == 0 ? rng.uniform(8, 20) : rng.uniform(6, 9);
      const int side = rng.uniform() < 0.55 ? 1 : 2;
      const Vec3 p = randomLungPoint(rng, a, side, randomLobe(rng, side), 0.5 * d + 3);
      f.blobs.push_back({p[0], p[1], p[2], 0.5 * d});
      sides |= a.lungAt(p[0], p[1], p[2]) == 2 ? 2 : 1;
      if (n == 0) {
        f.size_mm = std::round(d);
        f.center_mm = p;
        f.lobe = a.lobeAt(p[0], p[1], p[2]);
      }
    }
    f.side = sides == 3 ? Side::Bilateral : sides == 2 ? Side::Left : Side::Right;
    f.severity = f.size_mm < 12 ? 1 : f.size_mm < 16 ? 2 : 3;
    f.uncertain = f.count == 1 && f.size_mm < 10 && rng.bernoulli(0.2);
    out.push_back(f);
  }
  if (has(Finding::LungMass)) {
    FindingInstance f;
    f.type = Finding::LungMass;
    const double d = rng.uniform(32, 45);
    const int side = rng.uniform() < 0.55 ? 1 : 2;
    const Vec3 p = randomLungPoint(rng, a, side, randomLobe(rng, side), 0.3 * d);
    f.center_mm = p;
    f.size_mm = std::round(d);
    f.extent_mm = std::round(d * rng.uniform(0.7, 0.9));
    f.side = a.lungAt(p[0], p[1], p[2]) == 2 ? Side::Left : Side::Right;
    f.lobe = a.lobeAt(p[0], p[1], p[2]);
    f.severity = d < 38 ? 2 : 3;
    f.blobs.push_back({p[0], p[1], p[2], 0.38 * d});
    for (int n = 0; n < 4; ++n) {
      const Vec3 o = add(p, mul(randomUnit(rng), 0.22 * d));
      f.blobs.push_back({o[0], o[1], o[2], rng.uniform(0.2, 0.3) * d});
    }
    f.detail = rng.uniform() < 0.4 ? "spiculated" : rng.uniform() < 0.5 ? "lobulated" : "";
    out.push_back(f);
  }
  if (has(Finding::Pneumothorax)) {
    FindingInstance f;
    f.type = Finding::Pneumothorax;
    f.side = rng.uniform() < 0.5 ? Side::Right : Side::Left;
    f.severity = severityDraw(rng);
    f.size_mm = (f.severity == 1   ? rng.uniform(0.2, 0.28)
                 : f.severity == 2 ? rng.uniform(0.3, 0.4)
                                   : rng.uniform(0.42, 0.55)) *
                a.cav_b;
    f.center_mm = {a.cx + (f.side == Side::Left ? 0.56 : -0.56) * a.cav_a, a.cy - 0.8 * a.cav_b,
                   a.z_base + 0.6 * a.height};
    f.uncertain = f.severity == 1 && rng.bernoulli(0.15);
    out.push_back(f);
  }
  if (has(Finding::Consolidation)) {
    FindingInstance f;
    f.type = Finding::Consolidation;
    const int side = rng.uniform() < 0.55 ? 1 : 2;
    const std::string lobe = randomLobe(rng, side);
    const Vec3 p = randomLungPoint(rng, a, side, lobe, 4);
    f.center_mm = p;
    f.side = side == 2 ? Side::Left : Side::Right;
    f.lobe = a.lobeAt(p[0], p[1], p[2]);
    f.severity = severityDraw(rng);
    f.extent_mm = a.cav_a * (f.severity == 1   ? rng.uniform(0.25, 0.32)
                             : f.severity == 2 ? rng.uniform(0.32, 0.4)
                                               : rng.uniform(0.4, 0.5));
    f.size_mm = std::round(2 * f.extent_mm);
    f.blobs.push_back({p[0], p[1], p[2], f.extent_mm});
    f.uncertain = f.severity == 1 && rng.bernoulli(0.15);
    // Air bronchograms in most definite consolidations (not in the hedged, early ones): the
    // airways of the consolidated lung stay aerated. A segmental bronchus (5-6 mm) runs from the
    // hilum through the consolidation towards the periphery and gives off 3-4 branches (4 mm),
    // each with one subsegmental branch (3 mm); they are painted only where the consolidation is
    // (render()).
    if (!f.uncertain && rng.uniform() < 0.85) {
      const double sg = side == 1 ? -1 : 1;
      const Vec3 hil{a.cx + sg * 0.3 * a.cav_a, a.cy + 0.22 * a.cav_b, a.z_carina - 0.08 * a.height};
      const Vec3 d = normalize(sub(p, hil));
      const double R = f.extent_mm, r = std::max(1.5, 0.04 * a.cav_a);  // ~2.8 mm at 192 mm FOV
      const Vec3 s0 = sub(p, mul(d, 1.2 * R)), s1 = add(p, mul(d, 0.85 * R));
      f.tubes.push_back({s0[0], s0[1], s0[2], s1[0], s1[1], s1[2], r});
      const int nb = rng.uniform() < 0.5 ? 3 : 4;
      for (int b = 0; b < nb; ++b) {
        const Vec3 o = add(p, mul(d, R * rng.uniform(-0.6, 0.4)));
        const Vec3 bd = normalize(add(d, mul(normalize(cross(d, randomUnit(rng))), rng.uniform(0.5, 1.0))));
        const Vec3 e = add(o, mul(bd, R * rng.uniform(0.5, 0.8)));
        f.tubes.push_back({o[0], o[1], o[2], e[0], e[1], e[2], 0.75 * r});
        const Vec3 o2 = add(o, mul(sub(e, o), rng.uniform(0.3, 0.6)));
        const Vec3 bd2 = normalize(add(bd, mul(normalize(cross(bd, randomUnit(rng))), rng.uniform(0.5, 1.0))));
        const Vec3 e2 = add(o2, mul(bd2, R * rng.uniform(0.3, 0.5)));
        f.tubes.push_back({o2[0], o2[1], o2[2], e2[0], e2[1], e2[2], 0.6 * r});
      }
    }
    out.push_back(f);
  }
  if (has(Finding::Emphysema)) {
    FindingInstance f;
    f.type = Finding::Emphysema;
    f.side = Side::Bilateral;
    f.severity = severityDraw(rng);
    f.value = f.severity == 1 ? 70 : f.severity == 2 ? 85 : 100;  // HU drop of the affected parenchyma
    f.extent_mm = a.height * (f.severity == 1 ? 0.45 : f.severity == 2 ? 0.35 : 0.27);  // from the base
    const int holes = static_cast<int>((f.severity == 1 ? 18 : f.severity == 2 ? 32 : 50) * rng.uniform(0.8, 1.2));
    for (int n = 0; n < holes; ++n) {
      const Vec3 p = randomLungPoint(rng, a, 0, "", 0, f.extent_mm / a.height, 1.0);
      f.blobs.push_back({p[0], p[1], p[2], rng.uniform(2.5, 5.5)});
    }
    f.detail = rng.uniform() < 0.7 ? "centrilobular" : "paraseptal";
    f.center_mm = {a.cx, a.cy, a.z_base + 0.75 * a.height};
    out.push_back(f);
  }
  if (has(Finding::Atelectasis)) {
    FindingInstance f;
    f.type = Finding::Atelectasis;
    f.severity = atelSeverity;
    const bool basal = atelBasal;
    f.side = atelSide;
    f.dome_raise_mm = atelRaise;
    const int nSides = f.side == Side::Bilateral ? 2 : 1;
    for (int n = 0; n < nSides; ++n) {
      const int side = f.side == Side::Bilateral ? n + 1 : sideIndex(f.side);
      Vec3 p;
      if (basal) {
        p = randomLungPoint(rng, a, side, side == 1 ? "right lower lobe" : "left lower lobe", 2, 0.0, 0.25);
        // Dependent: slide it back to the posterior lung, but stay in front of any pleural fluid
        // (compressive atelectasis borders the effusion; the fluid would hide it).
        double yMax = 1e9;
        for (const auto& e : out)
          if (e.type == Finding::PleuralEffusion && (e.side == Side::Bilateral || sideIndex(e.side) == side)) {
            const double back = a.cy + a.cav_b * std::sqrt(std::max(0.0, 1 - sq((p[0] - a.cx) / a.cav_a)));
            yMax = back - e.size_mm - 0.5 * a.cav_b * 0.25;
          }
        for (int t = 0; t < 40 && p[1] + 2 < yMax && a.lungAt(p[0], p[1] + 2, p[2]) == side; ++t) p[1] += 2;
        if (p[1] > yMax) p[1] = yMax;
      } else {
        p = randomLungPoint(rng, a, side, side == 1 ? "right middle lobe" : "left upper lobe", 3, 0.2, 0.5);
      }
      const double r = a.cav_a * (f.severity == 1 ? rng.uniform(0.16, 0.2) : rng.uniform(0.2, 0.26));
      f.blobs.push_back({p[0], p[1], p[2], r});
      if (n == 0) {
        f.center_mm = p;
        f.lobe = basal ? "" : a.lobeAt(p[0], p[1], p[2]);
        if (!basal && f.lobe.empty()) f.lobe = side == 1 ? "right middle lobe" : "left upper lobe";
        f.size_mm = std::round(2 * r);
      }
    }
    f.detail = basal ? "basal" : (f.side == Side::Right ? "middle lobe" : "lingula");
    f.uncertain = rng.bernoulli(0.1);
    out.push_back(f);
  }
  if (has(Finding::ArterialCalcification)) {
    FindingInstance f;
    f.type = Finding::ArterialCalcification;
    f.severity = severityDraw(rng);
    f.count = f.severity == 1   ? static_cast<int>(rng.uniformInt(4, 6))
              : f.severity == 2 ? static_cast<int>(rng.uniformInt(7, 10))
                                : static_cast<int>(rng.uniformInt(11, 16));
    const double u = rng.uniform();
    f.detail = u < 0.4 ? "aortic" : u < 0.7 ? "coronary" : "aortic and coronary";
    const auto path = aortaPath(a);
    for (int n = 0; n < f.count; ++n) {
      const bool aortic = f.detail == "aortic" || (f.detail != "coronary" && n % 2 == 0);
      Vec3 p;
      if (aortic) {
        // On the aortic wall, in the arch or the thoracic descending aorta.
        const size_t s = static_cast<size_t>(rng.uniformInt(1, static_cast<std::int64_t>(path.size()) - 3));
        const Vec3 c = add(path[s], mul(sub(path[s + 1], path[s]), rng.uniform()));
        const Vec3 dir = normalize(sub(path[s + 1], path[s]));
        p = add(c, mul(normalize(cross(dir, randomUnit(rng))), 0.85 * a.aorta_r));
      } else {
        // Coronary arteries run on the heart surface, in its upper anterior part.
        const double th = rng.uniform(-0.9, 0.9), ph = rng.uniform(0.1, 0.8);
        const double cu = std::cos(th) * std::cos(ph), cv = -std::sin(th) * std::cos(ph), cz = std::sin(ph);
        const double u2 = cu * a.heart_r[0], v2 = cv * a.heart_r[1];
        const double c = std::cos(a.heart_angle), s = std::sin(a.heart_angle);
        p = {a.heart_c[0] + u2 * c + v2 * s, a.heart_c[1] - u2 * s + v2 * c, a.heart_c[2] + cz * a.heart_r[2]};
      }
      f.blobs.push_back({p[0], p[1], p[2], rng.uniform(3.0, 4.5)});
    }
    f.center_mm = {f.blobs[0][0], f.blobs[0][1], f.blobs[0][2]};
    out.push_back(f);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
Phantom render(const Anatomy& a, const std::vector<FindingInstance>& findings, const Acquisition& acq,
               std::uint64_t noiseSeed, bool withLabels) {
  for (int d = 0; d < 3; ++d)
    BIUD_CHECK(acq.size[static_cast<size_t>(d)] >= 4 && acq.spacing[static_cast<size_t>(d)] > 0, ValueError,
               "synth: grid size {} / spacing {} on axis {} (need >= 4 voxels and spacing > 0)",
               acq.size[static_cast<size_t>(d)], acq.spacing[static_cast<size_t>(d)], d);
  const Grid g(acq);
  const size_t n = static_cast<size_t>(g.nx) * g.ny * g.nz;
  std::vector<std::uint8_t> lab(n, kAir);
  Rng trng(a.texture_seed);

  // 1. Base anatomy, voxel by voxel.
  const double vy = a.cy + 0.74 * a.cav_b, spineRy = 0.15 * a.cav_a, spineRx = 0.17 * a.cav_a;
  const double canalY = vy + spineRy + 0.07 * a.cav_a, canalR = 0.07 * a.cav_a;
  const double discPeriod = 0.12 * a.height, discPhase = trng.uniform(0, discPeriod);
  const double heartShell1 = 1.0 + a.peri_fluid / heartMeanRadius(a);
  const double heartShell2 = heartShell1 + a.peri_fat / heartMeanRadius(a);
  const Vec3 stomach{a.cx + 0.45 * a.cav_a, a.cy - 0.1 * a.cav_b, a.dome_left - 0.35 * a.dome_depth};
  const double stomachR = 0.2 * a.cav_a;
  for (int k = 0; k < g.nz; ++k) {
    const double z = g.zs[static_cast<size_t>(k)];
    const double zn = (z - a.z_base) / a.height;
    const bool disc = std::fmod(std::abs(z - a.z_base + discPhase), discPeriod) < 0.2 * discPeriod;
    const bool sternumZ = zn > 0.05 && zn < 0.92;
    for (int j = 0; j < g.ny; ++j) {
      const double y = g.ys[static_cast<size_t>(j)];
      for (int i = 0; i < g.nx; ++i) {
        const double x = g.xs[static_cast<size_t>(i)];
        std::uint8_t l;
        const double bx = x - a.cx, by = y - a.cy;
        if (sq(bx / a.body_a) + sq(by / a.body_b) > 1.0) {
          l = kAir;
        } else if (sq(bx / spineRx) + sq((y - vy) / spineRy) <= 1.0) {
          l = disc ? kMuscle : (sq(bx / (0.8 * spineRx)) + sq((y - vy) / (0.8 * spineRy)) <= 1.0 ? kMarrow : kBone);
        } else if (sq(bx) + sq(y - canalY) <= canalR * canalR) {
          l = kCsf;
        } else if (!disc &&
                   (sq(bx) + sq(y - canalY) <= sq(canalR + 0.05 * a.cav_a) ||
                    (sq(bx / (0.04 * a.cav_a)) + sq((y - canalY - 0.12 * a.cav_a) / (0.12 * a.cav_a)) <= 1.0) ||
                    (sq((std::abs(bx) - 0.16 * a.cav_a) / (0.09 * a.cav_a)) + sq((y - canalY) / (0.035 * a.cav_a)) <=
                     1.0))) {
          l = kBone;  // lamina, spinous and transverse processes
        } else if (sternumZ &&
                   sq(bx / (0.13 * a.cav_a)) + sq((y - (a.cy - a.cav_b - 0.03 * a.cav_a)) / (0.055 * a.cav_a)) <= 1.0) {
          l = sq(bx / (0.09 * a.cav_a)) + sq((y - (a.cy - a.cav_b - 0.03 * a.cav_a)) / (0.03 * a.cav_a)) <= 1.0
                  ? kMarrow
                  : kBone;
        } else if (sq(bx / (a.body_a - a.fat)) + sq(by / (a.body_b - a.fat)) > 1.0) {
          l = kFat;
        } else if (sq(bx / a.cav_a) + sq(by / a.cav_b) > 1.0) {
          l = kMuscle;
        } else {
          const double hr = heartRadius(a, x, y, z);
          if (hr <= 1.0) {
            l = kHeart;
          } else if (hr <= heartShell1) {
            l = kPericardialFluid;
          } else if (hr <= heartShell2) {
            l = kPericardialFat;
          } else if (const int s = a.lungAt(x, y, z); s != 0) {
            l = s == 1 ? kLungRight : kLungLeft;
          } else if (z < diaphragmZ(a, x, y)) {
            l = sq(x - stomach[0]) + sq(y - stomach[1]) + sq(1.6 * (z - stomach[2])) <= stomachR * stomachR &&
                        y < stomach[1]
                    ? kStomachGas
                    : kAbdomen;
          } else if (zn > 1.02) {
            l = kMuscle;  // thoracic inlet
          } else {
            l = kMediastinum;
          }
        }
        lab[g.idx(i, j, k)] = l;
      }
    }
  }

  // 2. Tubes: aorta, airways, ribs, pulmonary vessels.
  const LabelSet soft{kMediastinum, kLungRight, kLungLeft, kFat, kMuscle, kPericardialFat, kAbdomen};
  paintPath(g, lab, aortaPath(a), a.aorta_r, soft, kAorta);
  {
    const double zTop = g.zs.back() + 10;
    const Vec3 t0{a.cx, a.cy + 0.05 * a.cav_b, zTop}, car{a.cx, a.cy + 0.18 * a.cav_b, a.z_carina};
    const double tr = a.trachea_r, wall = std::max(1.5, 0.25 * tr);
    std::vector<std::pair<Vec3, Vec3>> segs;
    std::vector<double> radii;
    segs.push_back({t0, car});
    radii.push_back(tr);
    for (int s = 0; s < 2; ++s) {
      const double sg = s == 0 ? -1 : 1;
      const Vec3 hil{a.cx + sg * 0.3 * a.cav_a, a.cy + 0.22 * a.cav_b, a.z_carina - 0.08 * a.height};
      segs.push_back({car, hil});
      radii.push_back(0.7 * tr);
      segs.push_back({hil, {a.cx + sg * 0.45 * a.cav_a, a.cy + 0.1 * a.cav_b, a.z_carina + 0.08 * a.height}});
      radii.push_back(0.45 * tr);
      segs.push_back({hil, {a.cx + sg * 0.45 * a.cav_a, a.cy + 0.35 * a.cav_b, a.z_carina - 0.3 * a.height}});
      radii.push_back(0.5 * tr);
    }
    const LabelSet airOk{kMediastinum, kLungRight, kLungLeft, kMuscle, kFat, kAirwayWall, kPericardialFat};
    for (size_t s = 0; s < segs.size(); ++s)
      paintTube(g, lab, segs[s].first, segs[s].second, radii[s] + wall, airOk, kAirwayWall);
    for (size_t s = 0; s < segs.size(); ++s)
      paintTube(g, lab, segs[s].first, segs[s].second, radii[s], {kAirwayWall, kMediastinum, kLungRight, kLungLeft},
                kAirway);
  }
  {
    const LabelSet ribOk{kFat, kMuscle, kMediastinum, kLungRight, kLungLeft, kAbdomen};
    const int nRibs = 11;
    const double r = std::max(1.2, 0.045 * a.cav_a);
    for (int rib = 0; rib < nRibs; ++rib) {
      const double zPost = a.zApex() + 0.02 * a.height - rib * 0.105 * a.height + trng.normal(0, 0.01 * a.height);
      for (int side = 0; side < 2; ++side) {
        const double sg = side == 0 ? -1 : 1;
        std::vector<Vec3> path;
        for (int s = 0; s <= 14; ++s) {
          const double phi = kPi * (0.1 + 0.65 * s / 14.0);
          // Ribs descend anteriorly; each point hugs the lung outline at its own height.
          const double z = zPost - 0.32 * a.height * std::pow(phi / kPi, 1.2);
          const double f = std::max(0.6, lungProfile(std::min((z - a.z_base) / a.height, 0.97)));
          path.push_back(
              {a.cx + sg * (a.cav_a * f + 0.6 * r) * std::sin(phi), a.cy + (a.cav_b + 0.6 * r) * std::cos(phi), z});
        }
        paintPath(g, lab, path, r, ribOk, kBone);
        paintPath(g, lab, path, 0.55 * r, {kBone}, kMarrow);
      }
    }
  }
  for (int side = 0; side < 2; ++side) {
    const double sg = side == 0 ? -1 : 1;
    const Vec3 hil{a.cx + sg * 0.26 * a.cav_a, a.cy + 0.05 * a.cav_b, a.z_carina - 0.1 * a.height};
    const Vec3 dirs[10] = {{sg * 0.6, -0.2, 0.8}, {sg * 0.9, 0.0, 0.35},  {sg * 0.8, -0.6, 0.0}, {sg * 0.7, 0.5, -0.1},
                           {sg * 0.5, 0.3, -0.8}, {sg * 0.6, -0.4, -0.7}, {sg * 0.3, 0.8, -0.5}, {sg * 0.4, 0.6, 0.7},
                           {sg * 0.5, -0.7, 0.5}, {sg * 0.9, 0.3, -0.4}};
    for (const auto& d0 : dirs) {
      const Vec3 d = normalize(add(d0, mul(randomUnit(trng), 0.25)));
      paintVessels(g, lab, trng, hil, d, 0.28 * a.cav_a, std::max(0.8, 0.055 * a.cav_a), 0);
    }
  }

  // 3. Findings, in an order where the more specific sign wins.
  for (const auto& f : findings) {
    switch (f.type) {
      case Finding::Emphysema: {
        const double zLo = a.z_base + f.extent_mm;
        paintBox(g, lab, {a.cx - a.cav_a, a.cy - a.cav_b, zLo}, {a.cx + a.cav_a, a.cy + a.cav_b, a.zApex()},
                 {kLungRight, kLungLeft}, kEmphysema, [](double, double, double) { return true; });
        for (const auto& b : f.blobs)
          paintSphere(g, lab, {b[0], b[1], b[2]}, b[3], {kLungRight, kLungLeft, kEmphysema, kVessel}, kEmphysemaHole);
        break;
      }
      default:
        break;
    }
  }
  for (const auto& f : findings) {
    switch (f.type) {
      case Finding::Consolidation: {
        const auto& b = f.blobs[0];
        const std::string lobe = f.lobe;
        const double rx = b[3], ry = 0.85 * b[3], rz = 1.1 * b[3];
        paintBox(g, lab, {b[0] - rx, b[1] - ry, b[2] - rz}, {b[0] + rx, b[1] + ry, b[2] + rz}, kLungish, kConsolidation,
                 [&](double x, double y, double z) {
                   return sq((x - b[0]) / rx) + sq((y - b[1]) / ry) + sq((z - b[2]) / rz) <= 1.0 &&
                          a.lobeAt(x, y, z) == lobe;
                 });
        break;
      }
      case Finding::Atelectasis:
        for (const auto& b : f.blobs) {
          const double rx = b[3], ry = 0.6 * b[3], rz = 0.55 * b[3];
          paintBox(g, lab, {b[0] - rx, b[1] - ry, b[2] - rz}, {b[0] + rx, b[1] + ry, b[2] + rz},
                   {kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole, kConsolidation}, kAtelectasis,
                   [&](double x, double y, double z) {
                     return sq((x - b[0]) / rx) + sq((y - b[1]) / ry) + sq((z - b[2]) / rz) <= 1.0;
                   });
        }
        break;
      default:
        break;
    }
  }
  for (const auto& f : findings) {
    if (f.type == Finding::LungNodule)
      for (const auto& b : f.blobs)
        paintSphere(g, lab, {b[0], b[1], b[2]}, b[3],
                    LabelSet{kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole, kConsolidation, kAtelectasis},
                    kNodule);
    if (f.type == Finding::LungMass)
      for (const auto& b : f.blobs)
        paintSphere(g, lab, {b[0], b[1], b[2]}, b[3],
                    LabelSet{kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole, kConsolidation, kAtelectasis},
                    kMass);
  }
  for (const auto& f : findings) {
    if (f.type == Finding::PleuralEffusion) {
      // The fluid replaces aerated lung and atelectasis but leaves solid lesions and consolidated
      // lung (with their air bronchograms) in place, so that what the report names stays visible.
      const LabelSet fluidOk{kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole, kAtelectasis};
      for (int s = 1; s <= 2; ++s) {
        if (f.side != Side::Bilateral && sideIndex(f.side) != s) continue;
        const double x0 = s == 1 ? a.cx - a.cav_a : a.cx, x1 = s == 1 ? a.cx : a.cx + a.cav_a;
        const double yBack = a.cy + a.cav_b;
        // Supine: free fluid settles posteriorly; the layer thins towards its top (meniscus).
        paintBox(g, lab, {x0, a.cy - a.cav_b, a.z_base - a.dome_depth}, {x1, yBack, a.z_base + f.extent_mm}, fluidOk,
                 kFluid, [&](double x, double y, double z) {
                   const double t = std::clamp((z - a.z_base) / f.extent_mm, 0.0, 1.0);
                   // Depth measured from the posterior chest wall at this x.
                   const double back = a.cy + a.cav_b * std::sqrt(std::max(0.0, 1 - sq((x - a.cx) / a.cav_a)));
                   return y > back - f.size_mm * (1 - 0.6 * t) && (x < a.cx) == (s == 1);
                 });
      }
    }
    if (f.type == Finding::Pneumothorax) {
      const int s = sideIndex(f.side);
      const double d = f.size_mm;
      const double x0 = s == 1 ? a.cx - a.cav_a : a.cx, x1 = s == 1 ? a.cx : a.cx + a.cav_a;
      paintBox(g, lab, {x0, a.cy - a.cav_b, a.z_base - a.dome_depth}, {x1, a.cy + a.cav_b, a.zApex()},
               {kLungRight, kLungLeft, kVessel, kEmphysema, kEmphysemaHole}, kPneumothorax,
               [&](double x, double y, double z) {
                 if (a.lungAt(x, y, z) != s) return false;
                 // Sample the unshrunk lung at a point displaced away from the hilum: outside = air.
                 const double zn = (z - a.z_base) / a.height;
                 const double yy = y - d * (0.9 - 0.3 * (y - a.cy) / a.cav_b);
                 const double xx = x + (s == 1 ? -1 : 1) * 0.35 * d;
                 const double zz = z + d * 0.8 * std::max(0.0, zn - 0.3);
                 return a.lungAt(xx, yy, zz) != s;
               });
    }
  }
  // Air bronchograms last among the lung findings: only where consolidated lung is left after
  // masses, nodules, atelectasis and pleural fluid. The capsule is at least half a voxel thick
  // along every axis, so a 4-5 mm tube between two 6 mm slices still marks the nearer slice (a
  // crude partial-volume model) instead of vanishing.
  for (const auto& f : findings) {
    if (f.type != Finding::Consolidation) continue;
    for (const auto& t : f.tubes) {
      const Vec3 p0{t[0], t[1], t[2]}, p1{t[3], t[4], t[5]};
      const Vec3 ab = sub(p1, p0);
      const double len2 = std::max(dot(ab, ab), 1e-12);
      const Vec3 rad{std::max(t[6], 0.5 * acq.spacing[0] + 0.05), std::max(t[6], 0.5 * acq.spacing[1] + 0.05),
                     std::max(t[6], 0.5 * acq.spacing[2] + 0.05)};
      const Vec3 lo{std::min(p0[0], p1[0]) - rad[0], std::min(p0[1], p1[1]) - rad[1], std::min(p0[2], p1[2]) - rad[2]};
      const Vec3 hi{std::max(p0[0], p1[0]) + rad[0], std::max(p0[1], p1[1]) + rad[1], std::max(p0[2], p1[2]) + rad[2]};
      paintBox(g, lab, lo, hi, {kConsolidation}, kBronchogram, [&](double x, double y, double z) {
        const Vec3 ap{x - p0[0], y - p0[1], z - p0[2]};
        const double u = std::clamp(dot(ap, ab) / len2, 0.0, 1.0);
        return sq((ap[0] - u * ab[0]) / rad[0]) + sq((ap[1] - u * ab[1]) / rad[1]) + sq((ap[2] - u * ab[2]) / rad[2]) <=
               1.0;
      });
    }
  }
  for (const auto& f : findings) {
    if (f.type == Finding::ArterialCalcification)
      for (const auto& b : f.blobs)
        paintSphere(g, lab, {b[0], b[1], b[2]}, b[3],
                    {kAorta, kHeart, kPericardialFat, kMediastinum, kPericardialFluid}, kCalcification);
  }

  // 4. HU per label, lung texture, blur, noise, calibration.
  float hu[256];
  for (auto& v : hu) v = 0;
  hu[kAir] = -1000;
  hu[kFat] = static_cast<float>(a.fat_hu);
  hu[kMuscle] = static_cast<float>(a.muscle_hu);
  hu[kMediastinum] = -60;
  hu[kLungRight] = hu[kLungLeft] = static_cast<float>(a.lung_hu);
  hu[kHeart] = 40;
  hu[kPericardialFat] = -95;
  hu[kAbdomen] = 55;
  hu[kBone] = 700;
  hu[kMarrow] = 230;
  hu[kCsf] = 10;
  hu[kAirway] = -1000;
  hu[kAirwayWall] = 50;
  hu[kAorta] = 42;
  hu[kVessel] = 40;
  hu[kStomachGas] = -1000;
  hu[kNodule] = 35;
  hu[kMass] = 40;
  hu[kFluid] = 8;
  hu[kPneumothorax] = -1000;
  hu[kConsolidation] = 40;
  hu[kEmphysema] = static_cast<float>(a.lung_hu);
  hu[kEmphysemaHole] = -985;
  hu[kPericardialFluid] = 12;
  hu[kAtelectasis] = 60;
  hu[kCalcification] = 850;
  hu[kBronchogram] = -950;
  for (const auto& f : findings)
    if (f.type == Finding::Emphysema) hu[kEmphysema] = static_cast<float>(std::max(-960.0, a.lung_hu - f.value));

  Phantom ph;
  ph.anatomy = a;
  ph.acquisition = acq;
  ph.findings = findings;
  image::Volume& v = ph.volume;
  v.size = acq.size;
  v.spacing = acq.spacing;
  for (int d = 0; d < 3; ++d) v.origin[static_cast<size_t>(d)] = voxelToMm(acq, d, 0);
  v.data.assign(n, 0.0f);
  const SmoothNoise tex(trng, g, 9);
  for (int k = 0; k < g.nz; ++k)
    for (int j = 0; j < g.ny; ++j)
      for (int i = 0; i < g.nx; ++i) {
        const size_t q = g.idx(i, j, k);
        const std::uint8_t l = lab[q];
        float h = hu[l];
        if (l == kLungRight || l == kLungLeft || l == kEmphysema || l == kConsolidation) {
          const float w = l == kConsolidation ? 0.3f : 1.0f;
          const double x = g.xs[static_cast<size_t>(i)], y = g.ys[static_cast<size_t>(j)],
                       z = g.zs[static_cast<size_t>(k)];
          // Heterogeneous parenchyma, denser in the dependent (posterior) lung.
          h += w * static_cast<float>(18 * tex.at(x, y, z) + 25 * (y - a.cy) / a.cav_b);
        }
        v.data[q] = h;
      }

  const auto kx = gaussKernel(acq.kernel_sigma_vox), ky = kx;
  const double zSigma = std::max(0.0, 0.42 * acq.slice_thickness_mm / acq.spacing[2] - 0.2);
  const auto kz = gaussKernel(zSigma);
  // White noise before the blur, scaled so that the blurred noise has the requested sd.
  const double white = acq.noise_sd / std::max(1e-6, kernelNorm(kx) * kernelNorm(ky) * kernelNorm(kz));
  Rng nrng(noiseSeed);
  std::normal_distribution<float> nd(0.0f, static_cast<float>(white));
  for (auto& x : v.data) x += nd(nrng.engine());
  convolveAxis(v.data, v.size, 0, kx);
  convolveAxis(v.data, v.size, 1, ky);
  convolveAxis(v.data, v.size, 2, kz);
  for (auto& x : v.data) x = std::clamp(static_cast<float>(acq.hu_scale * x + acq.hu_offset), -1024.0f, 3071.0f);
  if (withLabels) ph.labels = std::move(lab);
  return ph;
}

}  // namespace biud::synth
