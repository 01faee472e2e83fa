// NumPy .npy / .npz reading (Npz.h): zip container + .npy header, zlib for deflate. Torch-free.
#include "biud/image/Npz.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::image {

namespace {

std::uint64_t le(const std::string& b, size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(i)]);
  return v;
}

struct Member {
  std::string name;
  int method = 0;
  std::uint32_t crc = 0;
  std::uint64_t csize = 0, usize = 0, offset = 0;
};

/// The central directory of a zip file (zip64 sizes/offsets taken from the 0x0001 extra field).
std::vector<Member> centralDirectory(const std::string& z, const std::string& path) {
  BIUD_CHECK(z.size() >= 22, IoError, "`{}` is not a zip (.npz) file: {} bytes", path, z.size());
  size_t eocd = std::string::npos;
  const size_t lowest = z.size() > 22 + 65535 ? z.size() - 22 - 65535 : 0;
  for (size_t p = z.size() - 22 + 1; p-- > lowest;)
    if (le(z, p, 4) == 0x06054b50u) {
      eocd = p;
      break;
    }
  BIUD_CHECK(eocd != std::string::npos, IoError,
             "`{}` is not a zip (.npz) file or is truncated (no end-of-central-directory record)", path);
  std::uint64_t count = le(z, eocd + 10, 2), cdOffset = le(z, eocd + 16, 4);
  if ((count == 0xffff || cdOffset == 0xffffffffu) && eocd >= 20 && le(z, eocd - 20, 4) == 0x07064b50u) {
    const std::uint64_t z64 = le(z, eocd - 20 + 8, 8);
    BIUD_CHECK(z64 <= z.size() && z.size() - z64 >= 56 && le(z, z64, 4) == 0x06064b50u, IoError,
               "`{}`: bad zip64 directory", path);
    count = le(z, z64 + 32, 8);
    cdOffset = le(z, z64 + 48, 8);
  }
  std::vector<Member> out;
  BIUD_CHECK(cdOffset <= z.size(), IoError,
             "`{}`: the zip central directory starts at byte {}, past the end ({} bytes)", path, cdOffset, z.size());
  size_t p = cdOffset;  // from here on p <= z.size(): sums below cannot overflow
  for (std::uint64_t n = 0; n < count; ++n) {
    BIUD_CHECK(z.size() - p >= 46 && le(z, p, 4) == 0x02014b50u, IoError,
               "`{}`: zip central directory entry {} is damaged or truncated", path, n);
    Member m;
    m.method = static_cast<int>(le(z, p + 10, 2));
    m.crc = static_cast<std::uint32_t>(le(z, p + 16, 4));
    m.csize = le(z, p + 20, 4);
    m.usize = le(z, p + 24, 4);
    const size_t nameLen = le(z, p + 28, 2), extraLen = le(z, p + 30, 2), commentLen = le(z, p + 32, 2);
    m.offset = le(z, p + 42, 4);
    BIUD_CHECK(46 + nameLen + extraLen + commentLen <= z.size() - p, IoError, "`{}`: zip directory truncated", path);
    m.name = z.substr(p + 46, nameLen);
    for (size_t e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const size_t id = le(z, e, 2), sz = le(z, e + 2, 2);
      if (id == 0x0001) {  // zip64: only the fields whose 32-bit value is 0xffffffff, in this order
        size_t q = e + 4;
        if (m.usize == 0xffffffffu && q + 8 <= e + 4 + sz) m.usize = le(z, q, 8), q += 8;
        if (m.csize == 0xffffffffu && q + 8 <= e + 4 + sz) m.csize = le(z, q, 8), q += 8;
        if (m.offset == 0xffffffffu && q + 8 <= e + 4 + sz) m.offset = le(z, q, 8);
      }
      e += 4 + sz;
    }
    out.push_back(std::move(m));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

std::string extract(const std::string& z, const Member& m, const std::string& path) {
  // Offsets and sizes come from the file (zip64: 64 bits): compared without overflow.
  BIUD_CHECK(m.offset <= z.size() && z.size() - m.offset >= 30 && le(z, m.offset, 4) == 0x04034b50u, IoError,
             "`{}`: zip member `{}` has no local header (truncated file?)", path, m.name);
  const std::uint64_t data = m.offset + 30 + le(z, m.offset + 26, 2) + le(z, m.offset + 28, 2);
  BIUD_CHECK(data <= z.size() && m.csize <= z.size() - data, IoError,
             "`{}`: zip member `{}` is truncated ({} of {} bytes)", path, m.name, z.size() > data ? z.size() - data : 0,
             m.csize);
  // deflate shrinks at most 1032:1: a larger size in the directory is damage, not a reason to
  // allocate it (the buffer below is sized from it).
  BIUD_CHECK(m.method != 8 || m.usize / 1032 <= m.csize, IoError,
             "`{}`: zip member `{}` claims {} bytes from {} compressed (more than deflate can give): damaged file",
             path, m.name, m.usize, m.csize);
  BIUD_CHECK(m.method != 0 || m.usize == m.csize, IoError,
             "`{}`: zip member `{}` is stored with {} bytes but the directory says {}", path, m.name, m.csize, m.usize);
  std::string out;
  if (m.method == 0) {
    out = z.substr(data, m.csize);
  } else if (m.method == 8) {
    out.resize(m.usize);
    z_stream s{};
    BIUD_CHECK(inflateInit2(&s, -MAX_WBITS) == Z_OK, IoError, "`{}`: zlib inflateInit2 failed", path);
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + data));
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    std::uint64_t inLeft = m.csize, outLeft = m.usize;
    int rc = Z_OK;
    while (rc == Z_OK) {  // zlib's counters are 32-bit: feed at most 1 GiB at a time
      if (s.avail_in == 0) {
        s.avail_in = static_cast<uInt>(std::min<std::uint64_t>(inLeft, 1u << 30));
        inLeft -= s.avail_in;
      }
      if (s.avail_out == 0) {
        s.avail_out = static_cast<uInt>(std::min<std::uint64_t>(outLeft, 1u << 30));
        outLeft -= s.avail_out;
      }
      rc = inflate(&s, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR && s.avail_in == 0 && inLeft == 0) break;
      if (rc == Z_BUF_ERROR && s.avail_out == 0 && outLeft == 0) break;
    }
    const std::uint64_t produced = s.total_out;
    inflateEnd(&s);
    BIUD_CHECK(rc == Z_STREAM_END && produced == m.usize, IoError,
               "`{}`: zip member `{}` does not inflate (zlib {}; {} of {} bytes): damaged or truncated file", path,
               m.name, rc, produced, m.usize);
  } else {
    BIUD_THROW(IoError,
               "`{}`: zip member `{}` uses compression method {} (only stored (0) and deflate (8), as numpy "
               "writes them, are read)",
               path, m.name, m.method);
  }
  BIUD_CHECK(out.size() == m.usize, IoError, "`{}`: zip member `{}` has {} bytes, the directory says {}", path, m.name,
             out.size(), m.usize);
  std::uint64_t crc = crc32(0L, Z_NULL, 0);
  for (size_t at = 0; at < out.size(); at += (1u << 30))
    crc = crc32(static_cast<uLong>(crc), reinterpret_cast<const Bytef*>(out.data() + at),
                static_cast<uInt>(std::min<size_t>(out.size() - at, 1u << 30)));
  BIUD_CHECK(static_cast<std::uint32_t>(crc) == m.crc, IoError, "`{}`: zip member `{}` fails its CRC-32 check", path,
             m.name);
  return out;
}

std::string keyOf(const std::string& member) {
  const std::string s = ".npy";
  return member.size() > s.size() && member.compare(member.size() - s.size(), s.size(), s) == 0
             ? member.substr(0, member.size() - s.size())
             : member;
}

/// The value of `'key': value` in the header dict, as text (up to the next top-level comma or brace).
std::string headerField(const std::string& h, const std::string& key, const std::string& name) {
  size_t p = h.find("'" + key + "'");
  if (p == std::string::npos) p = h.find("\"" + key + "\"");
  BIUD_CHECK(p != std::string::npos, DataError, "`{}`: .npy header has no `{}` ({})", name, key, h);
  p = h.find(':', p);
  BIUD_CHECK(p != std::string::npos, DataError, "`{}`: bad .npy header ({})", name, h);
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  size_t e = p;
  if (p < h.size() && h[p] == '(') {
    e = h.find(')', p);
    BIUD_CHECK(e != std::string::npos, DataError, "`{}`: bad .npy shape ({})", name, h);
    return h.substr(p, e - p + 1);
  }
  while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  std::string v = h.substr(p, e - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

NpyArray parseNpy(const std::string& b, const std::string& name) {
  BIUD_CHECK(b.size() >= 10 && b.compare(0, 6, "\x93NUMPY") == 0, DataError, "`{}` is not a .npy array (bad magic)",
             name);
  const int major = static_cast<unsigned char>(b[6]);
  BIUD_CHECK(major >= 1 && major <= 3, DataError, "`{}`: .npy format version {} is not supported", name, major);
  const size_t hlen = major == 1 ? le(b, 8, 2) : (b.size() >= 12 ? le(b, 8, 4) : 0);
  const size_t hstart = major == 1 ? 10 : 12;
  BIUD_CHECK(hstart + hlen <= b.size(), DataError, "`{}`: .npy header truncated", name);
  const std::string h = b.substr(hstart, hlen);
  NpyArray a;
  a.descr = headerField(h, "descr", name);
  const std::string fo = headerField(h, "fortran_order", name);
  BIUD_CHECK(fo == "True" || fo == "False", DataError, "`{}`: .npy fortran_order `{}`", name, fo);
  a.fortranOrder = fo == "True";
  const std::string shape = headerField(h, "shape", name);
  BIUD_CHECK(shape.size() >= 2 && shape.front() == '(' && shape.back() == ')', DataError,
             "`{}`: .npy shape `{}` is not a tuple", name, shape);
  BIUD_CHECK(a.descr.size() == 3 && std::isdigit(static_cast<unsigned char>(a.descr[2])), DataError,
             "`{}`: .npy dtype `{}` is not supported", name, a.descr);
  const char order = a.descr[0], kind = a.descr[1];
  const int size = a.descr[2] - '0';
  const size_t data = hstart + hlen;
  // Element count, bounded by the bytes present (so neither it nor the allocation can overflow).
  const std::uint64_t maxElems = size > 0 ? (b.size() - data) / static_cast<size_t>(size) : 0;
  std::uint64_t n = 1;
  bool tooMany = false;
  for (size_t p = 1; p + 1 < shape.size();) {
    while (p + 1 < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p + 1 >= shape.size()) break;
    size_t e = p;
    std::uint64_t d = 0;
    while (e + 1 < shape.size() && std::isdigit(static_cast<unsigned char>(shape[e]))) {
      d = d > (std::uint64_t{1} << 62) / 10 ? (std::uint64_t{1} << 62) : d * 10 + static_cast<unsigned>(shape[e] - '0');
      ++e;
    }
    BIUD_CHECK(e > p, DataError, "`{}`: .npy shape `{}` does not parse", name, shape);
    a.shape.push_back(static_cast<std::int64_t>(d));
    if (d != 0 && n > maxElems / d) tooMany = true;  // keep going: a later 0 makes it empty
    n *= d;
    if (n == 0) tooMany = false;
    if (tooMany) n = maxElems + 1;
    p = e;
  }
  const bool swap = order == '>' && size > 1;
  const bool ok = (order == '<' || order == '>' || order == '|' || order == '=') &&
                  ((kind == 'b' && size == 1) ||
                   ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                   (kind == 'f' && (size == 4 || size == 8)));
  BIUD_CHECK(ok, DataError, "`{}`: .npy dtype `{}` is not supported (bool, int8..64, uint8..64, float32/64)", name,
             a.descr);
  BIUD_CHECK(!tooMany && n <= maxElems, DataError, "`{}`: .npy data has {} bytes, shape {} of `{}` needs more", name,
             b.size() - data, shape, a.descr);
  a.values.resize(static_cast<size_t>(n));
  unsigned char buf[8];
  for (std::uint64_t i = 0; i < n; ++i) {
    const char* src = b.data() + data + static_cast<size_t>(i) * static_cast<size_t>(size);
    for (int k = 0; k < size; ++k) buf[k] = static_cast<unsigned char>(src[swap ? size - 1 - k : k]);
    double v = 0;
    if (kind == 'f' && size == 4) {
      float f;
      std::memcpy(&f, buf, 4);
      v = f;
    } else if (kind == 'f') {
      double d;
      std::memcpy(&d, buf, 8);
      v = d;
    } else if (kind == 'b' || (kind == 'u' && size == 1))
      v = buf[0];
    else if (kind == 'i' && size == 1)
      v = static_cast<std::int8_t>(buf[0]);
    else if (kind == 'i' && size == 2) {
      std::int16_t x;
      std::memcpy(&x, buf, 2);
      v = x;
    } else if (kind == 'u' && size == 2) {
      std::uint16_t x;
      std::memcpy(&x, buf, 2);
      v = x;
    } else if (kind == 'i' && size == 4) {
      std::int32_t x;
      std::memcpy(&x, buf, 4);
      v = x;
    } else if (kind == 'u' && size == 4) {
      std::uint32_t x;
      std::memcpy(&x, buf, 4);
      v = x;
    } else if (kind == 'i') {
      std::int64_t x;
      std::memcpy(&x, buf, 8);
      v = static_cast<double>(x);
    } else {
      std::uint64_t x;
      std::memcpy(&x, buf, 8);
      v = static_cast<double>(x);
    }
    a.values[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return a;
}

std::vector<std::string> npzKeys(const std::string& path) {
  BIUD_CHECK(std::filesystem::exists(path), IoError, "`{}` does not exist", path);
  std::vector<std::string> keys;
  for (const auto& m : centralDirectory(fs::readFile(path), path)) keys.push_back(keyOf(m.name));
  return keys;
}

NpyArray readNpz(const std::string& path, const std::string& key) {
  BIUD_CHECK(std::filesystem::exists(path), IoError, "`{}` does not exist", path);
  const std::string z = fs::readFile(path);
  const auto members = centralDirectory(z, path);
  std::string keys;
  for (const auto& m : members) keys += (keys.empty() ? "" : ", ") + keyOf(m.name);
  const Member* pick = nullptr;
  if (key.empty()) {
    BIUD_CHECK(members.size() == 1, DataError, "`{}` holds {} arrays ({}); name one", path, members.size(), keys);
    pick = &members[0];
  } else {
    for (const auto& m : members)
      if (keyOf(m.name) == key) pick = &m;
    BIUD_CHECK(pick, DataError, "`{}` has no array `{}` (it holds: {})", path, key, keys.empty() ? "none" : keys);
  }
  return parseNpy(extract(z, *pick, path), path + ":" + keyOf(pick->name));
}

Volume readNpzVolume(const std::string& path) {
  std::string key;
  const auto keys = npzKeys(path);
  for (const auto& k : keys)
    if (k == "ct") key = k;
  NpyArray a = readNpz(path, key);
  BIUD_CHECK(a.shape.size() == 3, DataError, "`{}`: array `{}` has {} dimensions (a CT volume needs 3)", path,
             key.empty() ? keys.front() : key, a.shape.size());
  const std::int64_t d0 = a.shape[0], d1 = a.shape[1], d2 = a.shape[2];
  BIUD_CHECK(d0 > 0 && d1 > 0 && d2 > 0 && d0 < (1 << 20) && d1 < (1 << 20) && d2 < (1 << 20), DataError,
             "`{}`: volume shape ({}, {}, {}) is empty or too large", path, d0, d1, d2);
  Volume v({static_cast<int>(d2), static_cast<int>(d1), static_cast<int>(d0)}, {1.0, 1.0, 1.0});
  // voxel (i, j, k) = array[k, j, i]; C order: flat (k*d1 + j)*d2 + i, the Volume's own layout;
  // Fortran order: flat k + d0*(j + d1*i).
  if (!a.fortranOrder) {
    v.data = std::move(a.values);
  } else {
    for (std::int64_t k = 0; k < d0; ++k)
      for (std::int64_t j = 0; j < d1; ++j)
        for (std::int64_t i = 0; i < d2; ++i)
          v.data[static_cast<size_t>((k * d1 + j) * d2 + i)] = a.values[static_cast<size_t>(k + d0 * (j + d1 * i))];
  }
  return v;
}

}  // namespace biud::image
