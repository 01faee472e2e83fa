// Minimal NIfTI-1 writer (single file, int16). Layout per the NIfTI-1 standard header
// (nifti1.h): 348-byte header, 4-byte extension flag, voxels at offset 352.
#include "biud/synth/Nifti.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::synth {

namespace {

template <class T>
void put(std::vector<char>& h, size_t off, T v) {
  std::memcpy(h.data() + off, &v, sizeof(T));
}

/// Quaternion (b, c, d) of a proper rotation matrix (row-major), as nifti1_io's mat44_to_quatern.
std::array<double, 3> quaternion(const double r[3][3]) {
  double a = r[0][0] + r[1][1] + r[2][2] + 1.0, b, c, d;
  if (a > 0.5) {
    a = 0.5 * std::sqrt(a);
    b = 0.25 * (r[2][1] - r[1][2]) / a;
    c = 0.25 * (r[0][2] - r[2][0]) / a;
    d = 0.25 * (r[1][0] - r[0][1]) / a;
  } else {
    const double xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
    const double yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
    const double zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
    if (xd > 1.0) {
      b = 0.5 * std::sqrt(xd);
      c = 0.25 * (r[0][1] + r[1][0]) / b;
      d = 0.25 * (r[0][2] + r[2][0]) / b;
      a = 0.25 * (r[2][1] - r[1][2]) / b;
    } else if (yd > 1.0) {
      c = 0.5 * std::sqrt(yd);
      b = 0.25 * (r[0][1] + r[1][0]) / c;
      d = 0.25 * (r[1][2] + r[2][1]) / c;
      a = 0.25 * (r[0][2] - r[2][0]) / c;
    } else {
      d = 0.5 * std::sqrt(zd);
      b = 0.25 * (r[0][2] + r[2][0]) / d;
      c = 0.25 * (r[1][2] + r[2][1]) / d;
      a = 0.25 * (r[1][0] - r[0][1]) / d;
    }
    if (a < 0.0) b = -b, c = -c, d = -d;
  }
  return {b, c, d};
}

std::string gzip(const std::string& raw, int level, const std::string& path) {
  z_stream zs{};
  BIUD_CHECK(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, IoError,
             "{}: zlib deflateInit2 failed (level {})", path, level);
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const size_t n = zs.total_out;
  deflateEnd(&zs);
  BIUD_CHECK(rc == Z_STREAM_END, IoError, "{}: zlib deflate failed (code {})", path, rc);
  out.resize(n);
  return out;
}

}  // namespace

void writeNifti(const std::string& path, const image::Volume& v, int gzipLevel) {
  fs::atomicWrite(path, encodeNifti(v, path, gzipLevel));
}

std::string encodeNifti(const image::Volume& v, const std::string& path, int gzipLevel) {
  BIUD_CHECK(v.size[0] > 0 && v.size[1] > 0 && v.size[2] > 0 && v.data.size() == static_cast<size_t>(v.numel()),
             ValueError, "{}: volume of size {}x{}x{} holds {} voxels", path, v.size[0], v.size[1], v.size[2],
             v.data.size());
  for (int d = 0; d < 3; ++d)
    BIUD_CHECK(v.size[static_cast<size_t>(d)] <= 32767, ValueError, "{}: size {} on axis {} exceeds NIfTI-1's 32767",
               path, v.size[static_cast<size_t>(d)], d);
  std::vector<char> h(352, 0);
  put<std::int32_t>(h, 0, 348);
  h[38] = 'r';
  const std::int16_t dim[8] = {3,
                               static_cast<std::int16_t>(v.size[0]),
                               static_cast<std::int16_t>(v.size[1]),
                               static_cast<std::int16_t>(v.size[2]),
                               1,
                               1,
                               1,
                               1};
  for (int i = 0; i < 8; ++i) put<std::int16_t>(h, 40 + 2 * static_cast<size_t>(i), dim[i]);
  put<std::int16_t>(h, 70, 4);   // DT_INT16
  put<std::int16_t>(h, 72, 16);  // bitpix

  // World (RAS) rotation: LPS direction with x and y rows negated.
  double R[3][3];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) R[r][c] = (r < 2 ? -1.0 : 1.0) * v.direction[static_cast<size_t>(3 * r + c)];
  const double det = R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) -
                     R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) +
                     R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
  BIUD_CHECK(std::abs(std::abs(det) - 1.0) < 1e-3, ValueError, "{}: direction matrix is not orthonormal (det {})", path,
             det);
  const double qfac = det < 0 ? -1.0 : 1.0;
  double Rq[3][3];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) Rq[r][c] = R[r][c] * (c == 2 ? qfac : 1.0);
  const auto q = quaternion(Rq);
  const float pixdim[8] = {static_cast<float>(qfac),
                           static_cast<float>(v.spacing[0]),
                           static_cast<float>(v.spacing[1]),
                           static_cast<float>(v.spacing[2]),
                           1,
                           1,
                           1,
                           1};
  for (int i = 0; i < 8; ++i) put<float>(h, 76 + 4 * static_cast<size_t>(i), pixdim[i]);
  put<float>(h, 108, 352.0f);  // vox_offset
  put<float>(h, 112, 1.0f);    // scl_slope
  put<float>(h, 116, 0.0f);    // scl_inter
  h[123] = 2;                  // xyzt_units: mm
  const char descrip[] = "biud-synth";
  std::memcpy(h.data() + 148, descrip, sizeof(descrip));
  put<std::int16_t>(h, 252, 1);  // qform_code: scanner
  put<std::int16_t>(h, 254, 1);  // sform_code: scanner
  put<float>(h, 256, static_cast<float>(q[0]));
  put<float>(h, 260, static_cast<float>(q[1]));
  put<float>(h, 264, static_cast<float>(q[2]));
  const double off[3] = {-v.origin[0], -v.origin[1], v.origin[2]};
  for (int i = 0; i < 3; ++i) put<float>(h, 268 + 4 * static_cast<size_t>(i), static_cast<float>(off[i]));
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      put<float>(h, 280 + 16 * static_cast<size_t>(r) + 4 * static_cast<size_t>(c),
                 static_cast<float>(R[r][c] * v.spacing[static_cast<size_t>(c)]));
    put<float>(h, 280 + 16 * static_cast<size_t>(r) + 12, static_cast<float>(off[r]));
  }
  std::memcpy(h.data() + 344, "n+1\0", 4);
  // Bytes 348..351: extension flag 0 (no extensions).

  std::string raw(h.begin(), h.end());
  raw.resize(352 + 2 * v.data.size());
  std::int16_t* vox = reinterpret_cast<std::int16_t*>(raw.data() + 352);
  for (size_t i = 0; i < v.data.size(); ++i)
    vox[i] = static_cast<std::int16_t>(std::clamp(std::lround(v.data[i]), -32768L, 32767L));
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  return gz ? gzip(raw, gzipLevel, path) : raw;
}

}  // namespace biud::synth
