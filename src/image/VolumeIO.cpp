// Medical image I/O through ITK. ITK stays inside this file (and the other src/image/*.cpp):
// the public headers speak biud::image::Volume only.
#include "biud/image/VolumeIO.h"

#include <dlfcn.h>
#include <gdcmTrace.h>
#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkImageSeriesReader.h>
#include <itkMetaDataObject.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include <fmt/ranges.h>

#include "DicomWorker.h"
#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Png.h"
#include "biud/image/Npz.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

using FloatImage3 = itk::Image<float, 3>;
std::atomic<unsigned> g_tmpCounter{0};
void quietToolkits();
void checkUniformSlices(const std::string& dir, const itk::ImageSeriesReader<FloatImage3>& reader,
                        const FloatImage3* img);
using ShortImage3 = itk::Image<std::int16_t, 3>;
template <class T>
void toFloat(const char* buf, size_t n, size_t comps, std::vector<float>& out);
void restoreDicomSpacing(const itk::MetaDataDictionary& dict, Volume& v);

bool endsWith(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

/// The extension that decides the format, lower case, with ".nii.gz" kept whole.
std::string formatExtension(const std::string& path) {
  for (const char* e : {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".png"})
    if (endsWith(path, e)) return e;
  return stdfs::path(path).extension().string();
}

void requireReadable(const std::string& path, const char* what) {
  std::error_code ec;
  BIUD_CHECK(!path.empty(), IoError, "{}: empty path", what);
  BIUD_CHECK(stdfs::exists(path, ec), IoError, "{} `{}` does not exist", what, path);
  if (stdfs::is_regular_file(path, ec))
    BIUD_CHECK(stdfs::file_size(path, ec) > 0, IoError, "{} `{}` is an empty file (0 bytes)", what, path);
}

std::vector<std::pair<std::string, std::uint64_t>> headerLines(const std::string& path);
std::string trim(const std::string& s);
std::string lower(std::string s);

/// A MetaImage header's `NDims` bounded before MetaIO reads it: MetaIO loops over (and sizes
/// arrays by) the number as written, so `NDims = 3999999996` kept it busy for minutes (fuzzing
/// finding F4). The header ends at `ElementDataFile`.
void checkMetaImageNDims(const std::string& path, const char* what) {
  for (const auto& [line, end] : headerLines(path)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = lower(trim(line.substr(0, eq)));
    const std::string value = trim(line.substr(eq + 1));
    if (key == "ndims") {
      char* stop = nullptr;
      errno = 0;
      const long long n = std::strtoll(value.c_str(), &stop, 10);
      const bool ok = errno == 0 && stop != value.c_str() && trim(stop).empty() && n >= 1 && n <= 16;
      BIUD_CHECK(ok, IoError,
                 "{} `{}`: MetaImage header has `NDims = {}` (expected a whole number from 1 to 16): a "
                 "damaged header; rewrite the file",
                 what, path, value.substr(0, 40));
    }
    if (key == "elementdatafile") break;
  }
}

itk::ImageIOBase::Pointer createIO(const std::string& path, const char* what) {
  // The volume formats are chosen by extension, not by content: ITK's factory asks every reader
  // whether it can read the bytes, so a damaged PNG named .nii.gz went to libpng, whose error
  // handler calls abort() (fuzzing finding F3). A file that is not what its name says is an error.
  const std::string ext = formatExtension(path);
  itk::ImageIOBase::Pointer byName;
  if (ext == ".nii" || ext == ".nii.gz")
    byName = itk::NiftiImageIO::New();
  else if (ext == ".mha" || ext == ".mhd") {
    checkMetaImageNDims(path, what);
    byName = itk::MetaImageIO::New();
  } else if (ext == ".nrrd" || ext == ".nhdr")
    byName = itk::NrrdImageIO::New();
  if (byName) {
    BIUD_CHECK(byName->CanReadFile(path.c_str()), IoError,
               "{} `{}`: not a readable {} file (truncated, corrupt, or another format under this name)", what, path,
               ext);
    return byName;
  }
  itk::ImageIOBase::Pointer io = itk::ImageIOFactory::CreateImageIO(path.c_str(), itk::IOFileModeEnum::ReadMode);
  BIUD_CHECK(io, IoError,
             "{} `{}`: unknown, truncated or corrupt image format (supported: .nii, .nii.gz, .mha, .mhd, .nrrd, "
             "DICOM, .png, .jpg)",
             what, path);
  return io;
}

template <class ImageT>
void copyGeometry(const ImageT* img, Volume& v) {
  const auto region = img->GetLargestPossibleRegion();
  for (int d = 0; d < 3; ++d) {
    v.size[d] = static_cast<int>(region.GetSize()[d]);
    v.spacing[d] = img->GetSpacing()[d];
    v.origin[d] = img->GetOrigin()[d];
    for (int c = 0; c < 3; ++c) v.direction[d * 3 + c] = img->GetDirection()(d, c);
  }
}

Volume fromItk(const FloatImage3* img) {
  Volume v;
  copyGeometry(img, v);
  v.data.resize(static_cast<size_t>(v.numel()));
  std::memcpy(v.data.data(), img->GetBufferPointer(), v.data.size() * sizeof(float));
  return v;
}

template <class T>
typename itk::Image<T, 3>::Pointer toItk(const Volume& v) {
  using ImageT = itk::Image<T, 3>;
  auto img = ImageT::New();
  typename ImageT::RegionType region;
  typename ImageT::SpacingType spacing;
  typename ImageT::PointType origin;
  typename ImageT::DirectionType dir;
  for (int d = 0; d < 3; ++d) {
    region.SetSize(d, static_cast<itk::SizeValueType>(v.size[d]));
    region.SetIndex(d, 0);
    spacing[d] = v.spacing[d];
    origin[d] = v.origin[d];
    for (int c = 0; c < 3; ++c) dir(d, c) = v.direction[d * 3 + c];
  }
  img->SetRegions(region);
  img->SetSpacing(spacing);
  img->SetOrigin(origin);
  img->SetDirection(dir);
  img->Allocate();
  T* out = img->GetBufferPointer();
  const size_t n = v.data.size();
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(v.data[i]);
  return img;
}

Volume readDicomFolder(const std::string& dir, const VolumeReadOptions& opt) {
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(true);
  names->SetDirectory(dir);
  const auto& uids = names->GetSeriesUIDs();
  BIUD_CHECK(!uids.empty(), DataError, "DICOM folder `{}` holds no DICOM image series", dir);
  std::string chosen;
  std::vector<std::string> files;
  if (!opt.series.empty()) {
    for (const auto& u : uids)
      if (u == opt.series || u.rfind(opt.series, 0) == 0) {
        chosen = u;
        break;
      }
    BIUD_CHECK(!chosen.empty(), DataError, "DICOM folder `{}`: no series `{}` (it holds {} series: {})", dir,
               opt.series, uids.size(), fmt::join(uids, ", "));
    files = names->GetFileNames(chosen);
  } else {
    // The series with the most slices; a tie between different series is ambiguous.
    size_t best = 0, ties = 0;
    for (const auto& u : uids) {
      auto f = names->GetFileNames(u);
      if (f.size() > best) {
        best = f.size();
        chosen = u;
        files = f;
        ties = 1;
      } else if (f.size() == best) {
        ++ties;
      }
    }
    BIUD_CHECK(ties == 1, DataError, "DICOM folder `{}` mixes {} series with {} slices each; name one (series: {})",
               dir, ties, best, fmt::join(uids, ", "));
    if (uids.size() > 1)
      log::warn("image", "DICOM folder `{}` holds {} series; reading the largest ({} slices)", dir, uids.size(),
                files.size());
  }
  BIUD_CHECK(files.size() >= 2, DataError,
             "DICOM folder `{}`: series has {} slice(s); a CT volume needs at least 2 (is this a 2D image?)", dir,
             files.size());
  using Reader = itk::ImageSeriesReader<FloatImage3>;
  auto reader = Reader::New();
  auto io = itk::GDCMImageIO::New();
  reader->SetImageIO(io);
  reader->SetFileNames(files);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "DICOM folder `{}`: cannot read series ({} files): {}", dir, files.size(), e.GetDescription());
  }
  BIUD_CHECK(io->GetNumberOfComponents() == 1, DataError, "DICOM folder `{}`: colour series ({} components), not a CT",
             dir, io->GetNumberOfComponents());
  checkUniformSlices(dir, *reader, reader->GetOutput());
  Volume v = fromItk(reader->GetOutput());
  const auto* dicts = reader->GetMetaDataDictionaryArray();
  if (dicts && !dicts->empty() && (*dicts)[0]) restoreDicomSpacing(*(*dicts)[0], v);
  return v;
}

/// Deflate (gzip, zlib) expands data at most 1032:1: the shortest code of a 258-byte match is
/// 2 bits (a 1-bit length code and a 1-bit distance code; RFC 1951 sends even a lone distance
/// code with one bit). So C bytes of gzip or zlib data inflate to at most 1032 C bytes (plus a
/// little for an almost empty stream): a header that needs more describes another file.
std::uint64_t deflateBound(std::uint64_t compressed) { return compressed * 1032 + 1024; }

std::uint64_t fileSize(const std::string& path) {
  std::error_code ec;
  const auto n = stdfs::file_size(path, ec);
  BIUD_CHECK(!ec, IoError, "volume `{}`: cannot read its size: {}", path, ec.message());
  return static_cast<std::uint64_t>(n);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

/// Voxels in a volume of these header dimensions, overflow-safe; DataError for a zero dimension or
/// more than kMaxVolumeVoxels (a corrupt header: nothing that large is allocated).
std::uint64_t voxelCount(const std::string& path, const std::vector<size_t>& sz) {
  std::uint64_t n = 1;
  bool overflow = false;
  for (size_t d = 0; d < sz.size(); ++d) {
    BIUD_CHECK(sz[d] >= 1, DataError,
               "volume `{}`: corrupt header: dimension {} is {} voxels ({}); each must be at least 1", path, d, sz[d],
               fmt::join(sz, "x"));
    overflow = overflow || __builtin_mul_overflow(n, static_cast<std::uint64_t>(sz[d]), &n);
  }
  BIUD_CHECK(!overflow && n <= static_cast<std::uint64_t>(kMaxVolumeVoxels), DataError,
             "volume `{}`: corrupt header: dimensions {} make {} voxels, more than the {} (2^31 - 1) a volume may hold",
             path, fmt::join(sz, "x"), overflow ? std::string("over 2^64") : std::to_string(n), kMaxVolumeVoxels);
  return n;
}

/// The fields of a NIfTI-1/2 header that biud reads itself (ITK parses the rest).
struct NiftiHeader {
  int version = 0;  ///< 1 or 2; 0 = not a NIfTI-1/2 header
  bool swap = false;
  std::int16_t datatype = 0, bitpix = 0;
  std::array<std::int64_t, 8> dim{};
  std::array<double, 8> pixdim{};
  double voxOffset = 0;  ///< as stored (NIfTI-1: float32, NIfTI-2: int64)
  double slope = 0, inter = 0;
};

/// NIfTI-1 (nifti1.h): dim int16[8] at 40, datatype 70, bitpix 72, pixdim float32[8] at 76,
/// vox_offset float32 at 108, scl_slope/scl_inter float32 at 112/116. NIfTI-2 (nifti2.h): datatype
/// int16 at 12, bitpix 14, dim int64[8] at 16, pixdim float64[8] at 104, vox_offset int64 at 168, scl_slope/inter
/// float64 at 176/184. Either byte order (sizeof_hdr, 348 or 540, tells).
NiftiHeader parseNiftiHeader(const unsigned char* h, size_t got) {
  NiftiHeader n;
  if (got < 348) return n;
  std::uint32_t sz;
  std::memcpy(&sz, h, 4);
  n.swap = sz != 348 && sz != 540;
  if (n.swap) sz = __builtin_bswap32(sz);
  auto rd = [&](size_t off, auto& out) {
    std::memcpy(&out, h + off, sizeof out);
    if (n.swap) {
      auto* b = reinterpret_cast<unsigned char*>(&out);
      std::reverse(b, b + sizeof out);
    }
  };
  if (sz == 348) {
    n.version = 1;
    std::int16_t d;
    float f;
    for (size_t i = 0; i < 8; ++i) {
      rd(40 + 2 * i, d);
      n.dim[i] = d;
      rd(76 + 4 * i, f);
      n.pixdim[i] = f;
    }
    rd(70, n.datatype);
    rd(72, n.bitpix);
    rd(108, f);
    n.voxOffset = f;
    rd(112, f);
    n.slope = f;
    rd(116, f);
    n.inter = f;
  } else if (sz == 540 && got >= 540) {
    n.version = 2;
    for (size_t i = 0; i < 8; ++i) {
      rd(16 + 8 * i, n.dim[i]);
      rd(104 + 8 * i, n.pixdim[i]);
    }
    rd(12, n.datatype);
    rd(14, n.bitpix);
    std::int64_t o;
    rd(168, o);
    n.voxOffset = static_cast<double>(o);
    rd(176, n.slope);
    rd(184, n.inter);
  }
  return n;
}

/// The header of a .nii or .nii.gz file (zlib reads an uncompressed file as it is); version 0 when
/// it is not NIfTI-1/2 or cannot be read.
NiftiHeader readNiftiHeader(const std::string& path) {
  if (!endsWith(path, ".nii") && !endsWith(path, ".nii.gz")) return {};
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return {};
  unsigned char h[540] = {};
  const int got = gzread(f, h, sizeof h);
  gzclose(f);
  return parseNiftiHeader(h, got > 0 ? static_cast<size_t>(got) : 0);
}

/// Bytes per voxel of the NIfTI data types read here (0 = left to ITK: complex, RGB, ...).
size_t niftiBytesPerVoxel(std::int16_t datatype) {
  switch (datatype) {
    case 2:
    case 256:
      return 1;  // uint8, int8
    case 4:
    case 512:
      return 2;  // int16, uint16
    case 8:
    case 768:
    case 16:
      return 4;  // int32, uint32, float32
    case 64:
      return 8;  // float64
    default:
      return 0;
  }
}

/// Byte offset of the voxels: vox_offset, at least the header (+ extension flag) size; IoError for
/// a vox_offset that is no byte offset (negative, NaN, beyond 2^48).
std::uint64_t niftiDataOffset(const NiftiHeader& n, const std::string& path) {
  BIUD_CHECK(std::isfinite(n.voxOffset) && n.voxOffset >= 0 && n.voxOffset < 281474976710656.0, IoError,
             "volume `{}`: corrupt NIfTI-{} header: vox_offset {} is not a byte offset", path, n.version, n.voxOffset);
  return std::max<std::uint64_t>(n.version == 2 ? 544 : 352, static_cast<std::uint64_t>(n.voxOffset));
}

/// Bytes per stored voxel: from the data type (ITK reports float for a file with scl_slope, so
/// its component size is not what is stored), else bitpix / 8, else `fallback`.
std::uint64_t niftiStoredBytesPerVoxel(const NiftiHeader& n, std::uint64_t fallback) {
  if (const size_t b = niftiBytesPerVoxel(n.datatype)) return b;
  return n.bitpix >= 8 && n.bitpix % 8 == 0 ? static_cast<std::uint64_t>(n.bitpix / 8) : fallback;
}

/// A NIfTI header checked against the file before any voxel is read: dimensions at least 1, and
/// the file big enough for vox_offset + voxels x bytes (uncompressed: those bytes are on disk;
/// .nii.gz: the gzip data can inflate to that many). Returns those bytes (0: not NIfTI-1/2).
std::uint64_t checkNiftiStored(const std::string& path, const NiftiHeader& n, std::uint64_t numel,
                               std::uint64_t itkBytesPerVoxel) {
  if (n.version == 0) return 0;
  const std::uint64_t bytesPerVoxel = niftiStoredBytesPerVoxel(n, itkBytesPerVoxel);
  for (std::int64_t d = 1; d <= std::min<std::int64_t>(n.dim[0], 7); ++d)
    BIUD_CHECK(n.dim[static_cast<size_t>(d)] >= 1, DataError,
               "volume `{}`: corrupt NIfTI-{} header: dim[{}] = {} (each dimension must be at least 1)", path,
               n.version, d, n.dim[static_cast<size_t>(d)]);
  const std::uint64_t off = niftiDataOffset(n, path);
  const std::uint64_t need = off + numel * bytesPerVoxel;  // numel < 2^31, bytes < 4096: no overflow
  const std::uint64_t have = fileSize(path);
  const std::string what = fmt::format("vox_offset {} + {} voxels x {} bytes", off, numel, bytesPerVoxel);
  if (endsWith(path, ".nii.gz"))
    BIUD_CHECK(need <= deflateBound(have), IoError,
               "volume `{}` is truncated or its header is corrupt: the NIfTI header needs {} bytes ({}), more than "
               "its {} bytes of gzip data can hold (at most {})",
               path, need, what, have, deflateBound(have));
  else
    BIUD_CHECK(have >= need, IoError,
               "volume `{}` is truncated: the file holds {} bytes, its NIfTI header needs {} ({})", path, have, need,
               what);
  return need;
}

/// The data of a MetaImage (.mha/.mhd) or NRRD (.nrrd/.nhdr) file checked against its header
/// before ITK allocates the image: raw data must be all there, compressed data must be able to
/// inflate to it (deflateBound). Layouts read here: MetaImage `ElementDataFile = LOCAL` (data
/// right after that last header line) or one data file (HeaderSize bytes skipped, -1 = data at its
/// end); NRRD attached (after the blank line) or `data file: NAME`, with `byte skip`. Anything else
/// (file lists, patterns, line skips, bzip2) is left to ITK.
void checkDataAgainstHeader(const std::string& path, const char* format, std::uint64_t avail, const std::string& where,
                            const std::string& encoding, std::uint64_t numel, std::uint64_t bytesPerVoxel) {
  const std::uint64_t need = numel * bytesPerVoxel;
  const std::string what = fmt::format("{} voxels x {} bytes", numel, bytesPerVoxel);
  if (encoding == "raw") {
    BIUD_CHECK(avail >= need, IoError,
               "volume `{}` is truncated: {} {} bytes of voxel data, its {} header needs {} ({})", path, where, avail,
               format, need, what);
  } else if (encoding == "gzip") {
    BIUD_CHECK(need <= deflateBound(avail), IoError,
               "volume `{}` is truncated or its header is corrupt: its {} header needs {} bytes ({}), more than the "
               "{} bytes of compressed data can hold (at most {})",
               path, format, need, what, avail, deflateBound(avail));
  } else if (encoding == "ascii") {  // at least one character per value
    BIUD_CHECK(avail >= numel, IoError,
               "volume `{}` is truncated: {} {} bytes of text, too few for the {} values its {} header needs", path,
               where, avail, numel, format);
  } else if (encoding == "hex") {
    BIUD_CHECK(avail >= 2 * need, IoError,
               "volume `{}` is truncated: {} {} bytes of hex, its {} header needs {} ({} x 2)", path, where, avail,
               format, 2 * need, what);
  }
}

/// The text header's lines (at most 64 KiB of them) and the byte offset after each one.
std::vector<std::pair<std::string, std::uint64_t>> headerLines(const std::string& path) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  std::string buf(65536, '\0');
  buf.resize(std::fread(buf.data(), 1, buf.size(), f));
  std::fclose(f);
  size_t pos = 0;
  while (pos < buf.size()) {
    size_t nl = buf.find('\n', pos);
    if (nl == std::string::npos) {
      if (buf.size() < 65536) out.emplace_back(buf.substr(pos), buf.size());  // a last line without newline
      break;
    }
    out.emplace_back(buf.substr(pos, nl - pos), nl + 1);
    pos = nl + 1;
  }
  return out;
}

std::string dataFilePath(const std::string& header, const std::string& name) {
  const stdfs::path p(name);
  return p.is_absolute() ? name : (stdfs::path(header).parent_path() / p).string();
}

/// Inflate `length` bytes of `file` from `offset` (zlib or gzip framing, as ITK's MetaIO accepts)
/// without keeping the output, until `need` bytes came out. ITK's MetaIO prints "Uncompress
/// failed" and goes on with a buffer it never filled when the stream is corrupt or ends early: a
/// silent wrong volume. IoError naming the file instead.
void checkInflates(const std::string& path, const std::string& file, std::uint64_t offset, std::uint64_t length,
                   std::uint64_t need) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  BIUD_CHECK(f != nullptr, IoError, "volume `{}`: cannot open `{}`: {}", path, file, std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  BIUD_CHECK(::fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0, IoError, "volume `{}`: cannot seek in `{}`", path,
             file);
  z_stream zs{};
  BIUD_CHECK(inflateInit2(&zs, 15 + 32) == Z_OK, IoError, "volume `{}`: zlib cannot start", path);
  std::vector<unsigned char> in(1 << 16), out(1 << 16);
  std::uint64_t left = length, total = 0;
  int rc = Z_OK;
  std::string error;
  while (total < need) {
    if (zs.avail_in == 0) {
      const size_t n = std::fread(in.data(), 1, static_cast<size_t>(std::min<std::uint64_t>(left, in.size())), f);
      if (n == 0) break;
      left -= n;
      zs.next_in = in.data();
      zs.avail_in = static_cast<uInt>(n);
    }
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    total += out.size() - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      error = zs.msg ? zs.msg : fmt::format("zlib error {}", rc);
      break;
    }
  }
  inflateEnd(&zs);
  BIUD_CHECK(error.empty(), IoError,
             "volume `{}`: its compressed MetaImage data is corrupt ({} after {} bytes inflated)", path, error, total);
  BIUD_CHECK(
      total >= need, IoError,
      "volume `{}` is truncated or corrupt: its compressed MetaImage data inflates to {} bytes, its header needs {}",
      path, total, need);
}

void checkMetaImageStored(const std::string& path, std::uint64_t numel, std::uint64_t bytesPerVoxel) {
  bool compressed = false, binary = true;
  long long headerSize = 0;
  std::string dataFile, compressedSize;
  std::uint64_t dataStart = 0;
  for (const auto& [line, end] : headerLines(path)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = lower(trim(line.substr(0, eq))), val = trim(line.substr(eq + 1));
    if (key == "compresseddata") compressed = lower(val) == "true";
    if (key == "compresseddatasize") compressedSize = val;
    if (key == "binarydata") binary = lower(val) == "true";
    if (key == "headersize") headerSize = std::atoll(val.c_str());
    if (key == "elementdatafile") {  // always the last field
      dataFile = val;
      dataStart = end;
      break;
    }
  }
  if (dataFile.empty() || lower(dataFile) == "list" || dataFile.find_first_of("% ") != std::string::npos) return;
  const std::string encoding = compressed ? "gzip" : binary ? "raw" : "ascii";
  // ITK's MetaIO allocates CompressedDataSize bytes before it reads them: a huge value (a corrupt
  // header) is an allocation of up to 2^63 bytes. It cannot exceed the compressed bytes present.
  auto checkCompressedSize = [&](std::uint64_t avail, const std::string& where) {
    if (!compressed || compressedSize.empty()) return;
    const double v = std::strtod(compressedSize.c_str(), nullptr);
    BIUD_CHECK(std::isfinite(v) && v >= 0 && v <= static_cast<double>(avail), IoError,
               "volume `{}` is truncated or its header is corrupt: its MetaImage header's CompressedDataSize ({}) is "
               "more than the {} bytes of compressed data {}",
               path, compressedSize.substr(0, 40), avail, where);
  };
  if (lower(dataFile) == "local") {
    const std::uint64_t size = fileSize(path);
    checkCompressedSize(size - std::min(size, dataStart), "after its header");
    checkDataAgainstHeader(path, "MetaImage", size - std::min(size, dataStart),
                           fmt::format("the file holds, after its {}-byte header,", dataStart), encoding, numel,
                           bytesPerVoxel);
    if (compressed) checkInflates(path, path, dataStart, size - std::min(size, dataStart), numel * bytesPerVoxel);
    return;
  }
  const std::string data = dataFilePath(path, dataFile);
  std::error_code ec;
  BIUD_CHECK(stdfs::is_regular_file(data, ec), IoError,
             "volume `{}`: its data file `{}` (ElementDataFile) does not exist", path, data);
  const std::uint64_t size = fileSize(data);
  const std::uint64_t skip = headerSize > 0 ? static_cast<std::uint64_t>(headerSize) : 0;  // -1: data at the end
  checkCompressedSize(size - std::min(size, skip), fmt::format("in its data file `{}`", data));
  checkDataAgainstHeader(path, "MetaImage", size - std::min(size, skip),
                         skip ? fmt::format("its data file `{}` holds, after {} skipped bytes,", data, skip)
                              : fmt::format("its data file `{}` holds", data),
                         encoding, numel, bytesPerVoxel);
  if (compressed && headerSize >= 0)
    checkInflates(path, data, skip, size - std::min(size, skip), numel * bytesPerVoxel);
}

void checkNrrdStored(const std::string& path, std::uint64_t numel, std::uint64_t bytesPerVoxel) {
  const auto lines = headerLines(path);
  if (lines.empty() || lines[0].first.rfind("NRRD", 0) != 0) return;
  std::string encoding = "raw", dataFile;
  long long byteSkip = 0, lineSkip = 0;
  std::uint64_t dataStart = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i].first;
    if (trim(line).empty()) {  // end of the header; attached data follows
      dataStart = lines[i].second;
      break;
    }
    if (line[0] == '#' || line.find(":=") != std::string::npos) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = lower(trim(line.substr(0, colon))), val = trim(line.substr(colon + 1));
    if (key == "encoding") encoding = lower(val);
    if (key == "data file" || key == "datafile") dataFile = val;
    if (key == "byte skip" || key == "byteskip") byteSkip = std::atoll(val.c_str());
    if (key == "line skip" || key == "lineskip") lineSkip = std::atoll(val.c_str());
  }
  if (encoding == "gz") encoding = "gzip";
  if (encoding == "txt" || encoding == "text") encoding = "ascii";
  if (lineSkip > 0 || (encoding != "raw" && encoding != "gzip" && encoding != "ascii" && encoding != "hex")) return;
  std::string data = path, where;
  if (!dataFile.empty()) {
    if (lower(dataFile) == "list" || dataFile.find_first_of("% ") != std::string::npos) return;
    data = dataFilePath(path, dataFile);
    std::error_code ec;
    BIUD_CHECK(stdfs::is_regular_file(data, ec), IoError, "volume `{}`: its data file `{}` does not exist", path, data);
    dataStart = 0;
    where = fmt::format("its data file `{}` holds", data);
  } else {
    if (dataStart == 0) return;  // no blank line ends the header: let ITK say what is wrong
    where = fmt::format("the file holds, after its {}-byte header,", dataStart);
  }
  const std::uint64_t skip = byteSkip > 0 ? static_cast<std::uint64_t>(byteSkip) : 0;  // -1: data at the end
  const std::uint64_t size = fileSize(data);
  checkDataAgainstHeader(path, "NRRD", size - std::min(size, dataStart + skip), where, encoding, numel, bytesPerVoxel);
}

/// ITK's NIfTI reader accepts a truncated .nii.gz silently (the missing voxels become zeros), so
/// .nii.gz files read by ITK are checked here: `expected` (vox_offset + voxels x bytes, from the
/// NIfTI header) must equal the gzip trailer's ISIZE (uncompressed size mod 2^32); when it does not
/// (a truncated file, or a multi-member gzip) the stream is inflated to the end, 1 MiB at a time,
/// and its bytes counted.
void checkNiftiGzComplete(const std::string& path, std::uint64_t expected) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  BIUD_CHECK(f != nullptr, IoError, "volume `{}`: cannot open", path);
  unsigned char tail[4] = {0, 0, 0, 0};
  const bool haveTail = std::fseek(f, -4, SEEK_END) == 0 && std::fread(tail, 1, 4, f) == 4;
  std::fclose(f);
  const std::uint32_t isize = tail[0] | (tail[1] << 8) | (tail[2] << 16) | (static_cast<std::uint32_t>(tail[3]) << 24);
  if (haveTail && isize == static_cast<std::uint32_t>(expected)) return;
  gzFile g = gzopen(path.c_str(), "rb");
  BIUD_CHECK(g != nullptr, IoError, "volume `{}`: cannot open", path);
  std::vector<char> buf(1 << 20);
  std::uint64_t total = 0;
  int n;
  while (total < expected && (n = gzread(g, buf.data(), static_cast<unsigned>(buf.size()))) > 0)
    total += static_cast<std::uint64_t>(n);
  int err = Z_OK;
  const char* msg = gzerror(g, &err);
  const std::string why = (err != Z_OK && err != Z_STREAM_END) ? std::string(msg ? msg : "") : std::string();
  gzclose(g);
  BIUD_CHECK(total >= expected, IoError,
             "volume `{}` is truncated or corrupt: the gzip stream holds {} bytes, the NIfTI header needs {}{}", path,
             total, expected, why.empty() ? std::string() : " (" + why + ")");
}

/// libdeflate, loaded at run time when present: it inflates gzip about twice as fast as zlib, and
/// decoding .nii.gz is most of the time biud-preprocess spends per volume. Absent = ITK's zlib path.
struct Deflate {
  using Alloc = void* (*)();
  using Free = void (*)(void*);
  using GunzipEx = int (*)(void*, const void*, size_t, void*, size_t, size_t*, size_t*);
  Alloc alloc = nullptr;
  Free release = nullptr;
  GunzipEx gunzip = nullptr;
  Deflate() {
    void* h = ::dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = ::dlopen("libdeflate.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    alloc = reinterpret_cast<Alloc>(::dlsym(h, "libdeflate_alloc_decompressor"));
    release = reinterpret_cast<Free>(::dlsym(h, "libdeflate_free_decompressor"));
    gunzip = reinterpret_cast<GunzipEx>(::dlsym(h, "libdeflate_gzip_decompress_ex"));
  }
  bool ok() const { return alloc && release && gunzip && !std::getenv("BIUD_NO_LIBDEFLATE"); }
};
const Deflate& libdeflate() {
  static const Deflate d;
  return d;
}

/// Bytes inflated from a gzip file (not zero-filled first: every byte is written by the inflater).
struct Inflated {
  std::unique_ptr<unsigned char[]> data;
  size_t size = 0;
};

/// Inflate a whole (possibly multi-member) gzip file with libdeflate into one buffer of `cap`
/// bytes, what the NIfTI header needs (the gzip trailer's ISIZE is not trusted: it is the last 4
/// bytes of whatever a truncated file ends with). False when the stream holds more than `cap`
/// bytes (data after the voxels: ITK's reader takes what it needs); IoError naming the file when it
/// is truncated or corrupt.
bool gunzipFile(const std::string& path, std::uint64_t cap, Inflated& out) {
  const Deflate& d = libdeflate();
  std::vector<unsigned char> in(fileSize(path));
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    BIUD_CHECK(f != nullptr, IoError, "volume `{}`: cannot open", path);
    const size_t got = in.empty() ? 0 : std::fread(in.data(), 1, in.size(), f);
    std::fclose(f);
    BIUD_CHECK(got == in.size(), IoError, "volume `{}`: read error", path);
  }
  BIUD_CHECK(in.size() >= 18, IoError, "volume `{}` is truncated or corrupt ({} bytes of gzip)", path, in.size());
  out.data.reset(new unsigned char[static_cast<size_t>(cap)]);
  void* dec = d.alloc();
  BIUD_CHECK(dec != nullptr, IoError, "volume `{}`: out of memory for the decompressor", path);
  size_t inPos = 0, outPos = 0;
  int rc = 0;
  while (inPos < in.size()) {
    size_t usedIn = 0, produced = 0;
    rc = d.gunzip(dec, in.data() + inPos, in.size() - inPos, out.data.get() + outPos, static_cast<size_t>(cap) - outPos,
                  &usedIn, &produced);
    if (rc != 0) break;
    inPos += usedIn;
    outPos += produced;
  }
  d.release(dec);
  if (rc == 3) {  // LIBDEFLATE_INSUFFICIENT_SPACE: more data than the header needs
    out = Inflated{};
    return false;
  }
  BIUD_CHECK(rc == 0, IoError,
             "volume `{}` is truncated or corrupt: its gzip data ends early or is damaged before the {} bytes its "
             "NIfTI header needs",
             path, cap);
  out.size = outPos;
  return true;
}

/// Voxels of an inflated NIfTI-1/2 file as float (scl_slope/scl_inter applied, as nibabel and ITK
/// do). False for data types handled by ITK only (complex, RGB ...).
bool niftiVoxelsToFloat(const Inflated& raw, const NiftiHeader& n, std::uint64_t numel, const std::string& path,
                        Volume& v) {
  const size_t bytes = niftiBytesPerVoxel(n.datatype);
  if (n.version == 0 || bytes == 0) return false;
  const std::uint64_t off = niftiDataOffset(n, path);
  BIUD_CHECK(off + numel * bytes <= raw.size, IoError,
             "volume `{}` is truncated or corrupt: {} bytes inflated, the NIfTI header needs {}", path, raw.size,
             off + numel * bytes);
  v.data.resize(static_cast<size_t>(numel));
  const unsigned char* p = raw.data.get() + off;
  const bool swap = n.swap;
  auto convert = [&](auto tag) {
    using T = decltype(tag);
    for (std::uint64_t i = 0; i < numel; ++i) {
      T x;
      std::memcpy(&x, p + i * sizeof(T), sizeof(T));
      if (swap) {
        auto* b = reinterpret_cast<unsigned char*>(&x);
        std::reverse(b, b + sizeof(T));
      }
      v.data[i] = static_cast<float>(x);
    }
  };
  switch (n.datatype) {
    case 2:
      convert(std::uint8_t{});
      break;
    case 256:
      convert(std::int8_t{});
      break;
    case 4:
      convert(std::int16_t{});
      break;
    case 512:
      convert(std::uint16_t{});
      break;
    case 8:
      convert(std::int32_t{});
      break;
    case 768:
      convert(std::uint32_t{});
      break;
    case 16:
      convert(float{});
      break;
    case 64:
      convert(double{});
      break;
  }
  const double slope = n.slope, inter = n.inter;
  if (std::isfinite(slope) && slope != 0 && (slope != 1 || inter != 0)) {
    // In double like ITK's rescale, then back to float.
    for (float& x : v.data) x = static_cast<float>(static_cast<double>(x) * slope + inter);
  }
  return true;
}

/// The NIfTI library under ITK replaces a zero or non-finite pixdim with 1 mm without a word; put
/// the header's own value back so that the spacing check (after the manifest's overrides, which
/// may supply the spacing) sees what the file says.
void restoreNiftiSpacing(const NiftiHeader& n, Volume& v) {
  if (n.version == 0) return;
  for (int d = 0; d < 3; ++d) {
    const double raw = n.pixdim[static_cast<size_t>(d) + 1];
    if (raw == 0 || !std::isfinite(raw)) v.spacing[d] = raw;
  }
}

/// GDCM replaces a PixelSpacing (0028,0030) of 0 or NaN with 1 mm without a word; put the file's
/// value back (row spacing = along j, column spacing = along i) so that the spacing check sees it.
/// A missing tag is left alone (enhanced multi-frame files keep it in a functional group).
void restoreDicomSpacing(const itk::MetaDataDictionary& dict, Volume& v) {
  std::string ps;
  if (!itk::ExposeMetaData<std::string>(dict, "0028|0030", ps)) return;
  double row = 0, col = 0;
  char* end = nullptr;
  row = std::strtod(ps.c_str(), &end);
  if (end == ps.c_str() || *end != '\\') return;
  col = std::strtod(end + 1, nullptr);
  if (row == 0 || !std::isfinite(row)) v.spacing[1] = row;
  if (col == 0 || !std::isfinite(col)) v.spacing[0] = col;
}

/// Voxels straight from the ImageIO, without an itk::Image (which refuses a spacing of 0): used
/// when the header has a zero spacing, so that a manifest override can still supply it and the
/// spacing check otherwise names it. Geometry as ImageFileReader sets it (a negative spacing
/// becomes positive with its direction flipped).
Volume readWithoutItkImage(itk::ImageIOBase* io, const std::vector<size_t>& sz, std::uint64_t numel,
                           const std::string& path) {
  const unsigned dims = io->GetNumberOfDimensions();
  itk::ImageIORegion region(dims);
  for (unsigned d = 0; d < dims; ++d) {
    region.SetIndex(d, 0);
    region.SetSize(d, sz[d]);
  }
  std::vector<char> buf(static_cast<size_t>(numel * io->GetComponentSize()));
  try {
    io->SetIORegion(region);
    io->Read(buf.data());
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "volume `{}`: cannot read voxels (truncated or corrupt file?): {}", path, e.GetDescription());
  }
  Volume v;
  const size_t n = static_cast<size_t>(numel);
  using C = itk::IOComponentEnum;
  switch (io->GetComponentType()) {
    case C::UCHAR:
      toFloat<std::uint8_t>(buf.data(), n, 1, v.data);
      break;
    case C::CHAR:
      toFloat<std::int8_t>(buf.data(), n, 1, v.data);
      break;
    case C::USHORT:
      toFloat<std::uint16_t>(buf.data(), n, 1, v.data);
      break;
    case C::SHORT:
      toFloat<std::int16_t>(buf.data(), n, 1, v.data);
      break;
    case C::UINT:
      toFloat<std::uint32_t>(buf.data(), n, 1, v.data);
      break;
    case C::INT:
      toFloat<std::int32_t>(buf.data(), n, 1, v.data);
      break;
    case C::FLOAT:
      toFloat<float>(buf.data(), n, 1, v.data);
      break;
    case C::DOUBLE:
      toFloat<double>(buf.data(), n, 1, v.data);
      break;
    default:
      BIUD_THROW(DataError, "volume `{}`: unsupported pixel type {}", path,
                 itk::ImageIOBase::GetComponentTypeAsString(io->GetComponentType()));
  }
  for (int d = 0; d < 3; ++d) {
    v.size[d] = static_cast<int>(sz[static_cast<size_t>(d)]);
    const double sp = io->GetSpacing(static_cast<unsigned>(d));
    v.spacing[d] = std::fabs(sp);
    v.origin[d] = io->GetOrigin(static_cast<unsigned>(d));
    const auto col = io->GetDirection(static_cast<unsigned>(d));
    for (int r = 0; r < 3; ++r)
      v.direction[r * 3 + d] = (sp < 0 ? -1.0 : 1.0) * (r < static_cast<int>(col.size()) ? col[r] : (r == d));
  }
  return v;
}

Volume readVolumeFile(const std::string& path) {
  auto io = createIO(path, "volume");
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "volume `{}`: cannot read header: {}", path, e.GetDescription());
  }
  const unsigned dims = io->GetNumberOfDimensions();
  std::vector<size_t> sz;
  for (unsigned d = 0; d < dims; ++d) sz.push_back(io->GetDimensions(d));
  BIUD_CHECK(dims >= 3 && sz[2] > 1, DataError,
             "volume `{}` is a 2D image ({}), not a CT volume; give a 3D file or a DICOM series folder", path,
             fmt::join(sz, "x"));
  for (unsigned d = 3; d < dims; ++d)
    BIUD_CHECK(sz[d] == 1, DataError, "volume `{}` is {}D ({}); a CT volume must be 3D (one time point/channel)", path,
               dims, fmt::join(sz, "x"));
  BIUD_CHECK(io->GetNumberOfComponents() == 1, DataError,
             "volume `{}` has {} components per voxel (colour/vector image); a CT volume has 1", path,
             io->GetNumberOfComponents());
  // The header is checked against the file before anything of the header's size is allocated.
  const std::uint64_t numel = voxelCount(path, sz);
  const std::uint64_t bytesPerVoxel = io->GetComponentSize();
  const NiftiHeader nii = readNiftiHeader(path);
  const std::string ext = formatExtension(path);
  std::uint64_t niftiBytes = 0;
  if (nii.version != 0) {
    niftiBytes = checkNiftiStored(path, nii, numel, bytesPerVoxel);
  } else if (ext == ".mha" || ext == ".mhd") {
    checkMetaImageStored(path, numel, bytesPerVoxel);
  } else if (ext == ".nrrd" || ext == ".nhdr") {
    checkNrrdStored(path, numel, bytesPerVoxel);
  }
  if (ext == ".nii.gz" && niftiBytes > 0 && niftiBytesPerVoxel(nii.datatype) > 0 && libdeflate().ok()) {
    // Inflate with libdeflate into a buffer of the header's size and convert the voxels here; the
    // geometry (qform/sform logic) still comes from ITK's header parsing in `io`.
    Inflated raw;
    Volume v;
    if (gunzipFile(path, niftiBytes, raw) && niftiVoxelsToFloat(raw, nii, numel, path, v)) {
      for (int d = 0; d < 3; ++d) {
        v.size[d] = static_cast<int>(sz[d]);
        v.spacing[d] = io->GetSpacing(d);
        v.origin[d] = io->GetOrigin(d);
        const auto col = io->GetDirection(d);
        for (int r = 0; r < 3; ++r) v.direction[r * 3 + d] = r < static_cast<int>(col.size()) ? col[r] : (r == d);
      }
      restoreNiftiSpacing(nii, v);
      return v;
    }
  }
  if (ext == ".nii.gz" && niftiBytes > 0) checkNiftiGzComplete(path, niftiBytes);
  bool zeroSpacing = false;
  for (unsigned d = 0; d < 3; ++d) zeroSpacing = zeroSpacing || io->GetSpacing(d) == 0;
  if (zeroSpacing) return readWithoutItkImage(io, sz, numel, path);
  using Reader = itk::ImageFileReader<FloatImage3>;
  auto reader = Reader::New();
  reader->SetImageIO(io);
  reader->SetFileName(path);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "volume `{}`: cannot read voxels (truncated or corrupt file?): {}", path, e.GetDescription());
  }
  Volume v = fromItk(reader->GetOutput());
  restoreNiftiSpacing(nii, v);
  if (dynamic_cast<itk::GDCMImageIO*>(io.GetPointer())) restoreDicomSpacing(io->GetMetaDataDictionary(), v);
  return v;
}

template <class T>
void toFloat(const char* buf, size_t n, size_t comps, std::vector<float>& out) {
  const T* p = reinterpret_cast<const T*>(buf);
  out.resize(n);
  if (comps >= 3) {
    for (size_t i = 0; i < n; ++i)
      out[i] =
          static_cast<float>(0.299 * static_cast<double>(p[i * comps]) + 0.587 * static_cast<double>(p[i * comps + 1]) +
                             0.114 * static_cast<double>(p[i * comps + 2]));
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i * comps]);
  }
}

/// ITK and GDCM print warnings straight to stderr (e.g. "position is not unique" while probing
/// series); the conditions that matter are checked here and reported as errors or log lines.
struct QuietToolkits {
  QuietToolkits() {
    itk::Object::GlobalWarningDisplayOff();
    gdcm::Trace::WarningOff();
    gdcm::Trace::ErrorOff();
    gdcm::Trace::DebugOff();
  }
};
void quietToolkits() { static QuietToolkits q; }

/// Slice positions along the series normal must be evenly spaced: a gap means missing slices,
/// which would silently stretch the anatomy.
void checkUniformSlices(const std::string& dir, const itk::ImageSeriesReader<FloatImage3>& reader,
                        const FloatImage3* img) {
  const auto* dicts = reader.GetMetaDataDictionaryArray();
  if (!dicts || dicts->size() < 3) return;
  double nrm[3];
  for (int r = 0; r < 3; ++r) nrm[r] = img->GetDirection()(r, 2);
  std::vector<double> pos;
  for (const auto* d : *dicts) {
    std::string ipp;
    if (!d || !itk::ExposeMetaData<std::string>(*d, "0020|0032", ipp)) return;
    double p[3];
    if (std::sscanf(ipp.c_str(), "%lf\\%lf\\%lf", &p[0], &p[1], &p[2]) != 3) return;
    pos.push_back(p[0] * nrm[0] + p[1] * nrm[1] + p[2] * nrm[2]);
  }
  std::sort(pos.begin(), pos.end());
  const double mean = (pos.back() - pos.front()) / static_cast<double>(pos.size() - 1);
  double worst = 0;
  for (size_t i = 1; i < pos.size(); ++i) worst = std::max(worst, std::fabs(pos[i] - pos[i - 1] - mean));
  BIUD_CHECK(mean > 0 && worst <= std::max(0.1 * mean, 0.01), DataError,
             "DICOM folder `{}`: slice spacing is not uniform (mean {:.3f} mm, off by up to {:.3f} mm): missing or "
             "duplicate slices; fix the series or name another one",
             dir, mean, worst);
}

}  // namespace

std::array<double, 3> indexToPhysical(const Volume& v, double i, double j, double k) {
  const double idx[3] = {i * v.spacing[0], j * v.spacing[1], k * v.spacing[2]};
  std::array<double, 3> p{};
  for (int r = 0; r < 3; ++r)
    p[r] =
        v.origin[r] + v.direction[r * 3] * idx[0] + v.direction[r * 3 + 1] * idx[1] + v.direction[r * 3 + 2] * idx[2];
  return p;
}

void reorientToLps(Volume& v) {
  // Assign each voxel axis to the physical axis it points along most (greedy on the largest
  // |cosine| so that the assignment is a permutation even for 45-degree obliques).
  int axisOf[3] = {-1, -1, -1};  // physical axis r -> voxel axis a
  bool usedA[3] = {false, false, false};
  for (int step = 0; step < 3; ++step) {
    double best = -1;
    int br = -1, ba = -1;
    for (int r = 0; r < 3; ++r) {
      if (axisOf[r] >= 0) continue;
      for (int a = 0; a < 3; ++a) {
        if (usedA[a]) continue;
        const double c = std::fabs(v.direction[r * 3 + a]);
        if (c > best) {
          best = c;
          br = r;
          ba = a;
        }
      }
    }
    axisOf[br] = ba;
    usedA[ba] = true;
  }
  bool flip[3];
  bool identity = true;
  for (int r = 0; r < 3; ++r) {
    flip[r] = v.direction[r * 3 + axisOf[r]] < 0;
    identity = identity && !flip[r] && axisOf[r] == r;
  }
  if (identity) return;

  Volume out;
  std::array<std::int64_t, 3> oldStride = {1, v.size[0], static_cast<std::int64_t>(v.size[0]) * v.size[1]};
  std::int64_t base = 0;
  std::array<std::int64_t, 3> stride{};
  out.origin = v.origin;
  for (int r = 0; r < 3; ++r) {
    const int a = axisOf[r];
    out.size[r] = v.size[a];
    out.spacing[r] = v.spacing[a];
    const double s = flip[r] ? -1.0 : 1.0;
    for (int c = 0; c < 3; ++c) out.direction[c * 3 + r] = s * v.direction[c * 3 + a];
    if (flip[r]) {
      base += oldStride[a] * (v.size[a] - 1);
      stride[r] = -oldStride[a];
      for (int c = 0; c < 3; ++c) out.origin[c] += v.direction[c * 3 + a] * v.spacing[a] * (v.size[a] - 1);
    } else {
      stride[r] = oldStride[a];
    }
  }
  out.data.resize(v.data.size());
  size_t o = 0;
  for (int k = 0; k < out.size[2]; ++k)
    for (int j = 0; j < out.size[1]; ++j) {
      std::int64_t src = base + stride[2] * k + stride[1] * j;
      for (int i = 0; i < out.size[0]; ++i, src += stride[0]) out.data[o++] = v.data[static_cast<size_t>(src)];
    }
  v = std::move(out);
}

std::vector<std::pair<std::string, int>> listDicomSeries(const std::string& dir) {
  requireReadable(dir, "DICOM folder");
  if (detail::dicomIsolation()) return detail::isolatedSeries(dir);
  return detail::listDicomSeriesInProcess(dir);
}

std::vector<std::pair<std::string, int>> detail::listDicomSeriesInProcess(const std::string& dir) {
  quietToolkits();
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(true);
  names->SetDirectory(dir);
  std::vector<std::pair<std::string, int>> out;
  for (const auto& u : names->GetSeriesUIDs()) out.emplace_back(u, static_cast<int>(names->GetFileNames(u).size()));
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

namespace {

/// scl_slope / scl_inter of a NIfTI-1/2 header (.nii or .nii.gz); false for other formats or
/// an unreadable header. Only the header is inflated.
bool niftiScaling(const std::string& path, double& slope, double& inter) {
  const NiftiHeader n = readNiftiHeader(path);
  if (n.version == 0) return false;
  slope = n.slope;
  inter = n.inter;
  return true;
}

std::string fmtVec(const double* d, size_t n, const char* sep) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{}{:.6g}", i ? sep : "", d[i]);
  return s;
}

}  // namespace

void applyOverrides(Volume& v, const VolumeOverrides& o, const std::string& path, std::vector<std::string>* dis) {
  auto note = [&](std::string s) {
    if (dis) dis->push_back(std::move(s));
  };
  if (o.hasSpacing()) {
    bool differ = false;
    for (int d = 0; d < 3; ++d) {
      BIUD_CHECK(std::isfinite(o.spacing[d]) && o.spacing[d] > 0, DataError,
                 "volume `{}`: metadata spacing {} mm along axis {} is not a positive number", path, o.spacing[d], d);
      differ |= !(std::fabs(v.spacing[d] - o.spacing[d]) <= 1e-3 * o.spacing[d]);  // a NaN header differs
    }
    if (differ)
      note(fmt::format("spacing: header {} mm, metadata {} mm", fmtVec(v.spacing.data(), 3, " x "),
                       fmtVec(o.spacing.data(), 3, " x ")));
    v.spacing = o.spacing;
  }
  if (o.hasOrientation()) {
    const double* a = o.orientation.data();
    bool ok = true;
    for (int x = 0; x < 3; ++x)
      for (int y = x; y < 3; ++y) {
        const double dot = a[3 * x] * a[3 * y] + a[3 * x + 1] * a[3 * y + 1] + a[3 * x + 2] * a[3 * y + 2];
        ok = ok && std::isfinite(dot) && std::fabs(dot - (x == y ? 1.0 : 0.0)) < 1e-3;
      }
    BIUD_CHECK(ok, DataError,
               "volume `{}`: metadata orientation ({}) is not three orthogonal unit vectors (DICOM "
               "ImageOrientationPatient: row cosines, column cosines[, slice direction])",
               path, fmtVec(a, 9, ", "));
    std::array<double, 9> dir{};
    for (int k = 0; k < 3; ++k)       // physical coordinate
      for (int ax = 0; ax < 3; ++ax)  // columns = directions of voxel axes i, j, k
        dir[k * 3 + ax] = a[ax * 3 + k];
    double worst = 0;
    for (int k = 0; k < 9; ++k) worst = std::max(worst, std::fabs(dir[k] - v.direction[k]));
    if (worst > 1e-3)
      note(fmt::format("orientation: header direction ({}), metadata ({})", fmtVec(v.direction.data(), 9, " "),
                       fmtVec(dir.data(), 9, " ")));
    v.direction = dir;
  }
  if (o.hasOrigin()) {
    double worst = 0;
    for (int k = 0; k < 3; ++k) worst = std::max(worst, std::fabs(o.origin[k] - v.origin[k]));
    if (worst > 1e-2)
      note(fmt::format("origin: header ({}) mm, metadata ({}) mm", fmtVec(v.origin.data(), 3, ", "),
                       fmtVec(o.origin.data(), 3, ", ")));
    v.origin = o.origin;
  }
  if (o.hasRescale()) {
    BIUD_CHECK(std::isfinite(o.slope) && std::isfinite(o.intercept) && o.slope != 0, DataError,
               "volume `{}`: metadata rescale slope {} / intercept {} must be finite with a non-zero slope", path,
               o.slope, o.intercept);
    double hs = 0, hi = 0;
    if (niftiScaling(path, hs, hi) && std::isfinite(hs) && hs != 0 && (hs != 1 || hi != 0))
      note(
          fmt::format("rescale: the header's scl_slope {} / scl_inter {} are applied first, then the metadata's "
                      "slope {} / intercept {} (CT-CLIP's convention: metadata on top of nibabel's get_fdata())",
                      hs, hi, o.slope, o.intercept));
    for (float& x : v.data) x = static_cast<float>(static_cast<double>(x) * o.slope + o.intercept);
  }
}

double airFraction(const Volume& hu) {
  if (hu.data.empty()) return 0;
  size_t n = 0;
  for (float x : hu.data) n += (x >= -1100.0f && x <= -900.0f);
  return static_cast<double>(n) / static_cast<double>(hu.data.size());
}

VolumeReadOptions VolumeReadOptions::withSpacingRange(const std::vector<double>& range) {
  BIUD_CHECK(range.size() == 2, ValueError, "data.ct.spacing_range must be [min, max] in mm, got {} number(s)",
             range.size());
  VolumeReadOptions o;
  o.spacingRange = {range[0], range[1]};
  return o;
}

void checkSpacing(const Volume& v, const std::array<double, 2>& range, const std::string& path) {
  BIUD_CHECK(std::isfinite(range[0]) && std::isfinite(range[1]) && range[0] > 0 && range[0] < range[1], ValueError,
             "checkSpacing `{}`: range [{}, {}] mm is not [min, max] with 0 < min < max (data.ct.spacing_range)", path,
             range[0], range[1]);
  for (int d = 0; d < 3; ++d) {
    const double s = v.spacing[d];
    BIUD_CHECK(std::isfinite(s) && s >= range[0] && s <= range[1], DataError,
               "volume `{}`: voxel spacing {} mm (axis {}: {} mm) is outside data.ct.spacing_range [{}, {}] mm; "
               "resampling a broken header's (or override's) spacing gives garbage. Fix the file's header, give the "
               "spacing in the manifest (spacing_x, spacing_y, spacing_z), or widen data.ct.spacing_range",
               path, fmtVec(v.spacing.data(), 3, " x "), "ijk"[d], s, range[0], range[1]);
  }
}

namespace {
/// Inside a catch: biud errors pass; ITK's and the standard library's exceptions from a damaged
/// header (MetaIO's length_error, bad_alloc from a size in the header, ITK exceptions thrown
/// outside the places that catch them: fuzzing findings F2, F7, F8) become one IoError naming
/// the file, so that biud-preprocess records the item in failures.jsonl and goes on.
[[noreturn]] void rethrowUnreadable(const char* kind, const std::string& path) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "{} `{}` is unreadable (a damaged or unsupported header?): {}", kind, path, e.GetDescription());
  } catch (const std::exception& e) {
    BIUD_THROW(IoError, "{} `{}` is unreadable (a damaged or unsupported header?): {}", kind, path,
               firstLine(e.what()));
  }
}
}  // namespace

namespace detail {
Volume readRawInProcess(const std::string& path, const std::string& series) {
  quietToolkits();
  std::error_code ec;
  VolumeReadOptions opt;
  opt.series = series;
  return stdfs::is_directory(path, ec) ? readDicomFolder(path, opt)
         : endsWith(path, ".npz")      ? readNpzVolume(path)  // NumPy archive (Npz.h): RAD-ChestCT
                                       : readVolumeFile(path);
}
}  // namespace detail

Volume readVolume(const std::string& path) { return readVolume(path, VolumeReadOptions{}); }

Volume readVolume(const std::string& pathIn, const VolumeReadOptions& optIn) {
  quietToolkits();
  std::string path = pathIn;
  VolumeReadOptions opt = optIn;
  std::error_code ec;
  // `folder#SeriesInstanceUID` names one series of a DICOM folder (usable in manifests).
  const size_t hash = path.rfind('#');
  if (hash != std::string::npos && !stdfs::exists(path, ec) && stdfs::is_directory(path.substr(0, hash), ec)) {
    opt.series = path.substr(hash + 1);
    path = path.substr(0, hash);
  }
  requireReadable(path, "volume");
  Volume v;
  try {
    // DICOM (a folder, or a file not named as another format) is read in a child process: GDCM
    // aborts on some damaged files (DicomWorker.h).
    v = detail::mayReachGdcm(path) && detail::dicomIsolation() ? detail::isolatedRawVolume(path, opt.series)
                                                               : detail::readRawInProcess(path, opt.series);
  } catch (...) {
    rethrowUnreadable("volume", path);
  }
  for (float x : v.data)
    if (!std::isfinite(x)) BIUD_THROW(DataError, "volume `{}` contains NaN or Inf voxels", path);
  if (opt.overrides.any()) applyOverrides(v, opt.overrides, path, opt.disagreements);
  checkSpacing(v, opt.spacingRange, path);
  for (double c : v.direction)
    BIUD_CHECK(std::isfinite(c), DataError,
               "volume `{}`: its orientation ({}) is not finite: a broken header; fix it or give the orientation in "
               "the manifest (orientation)",
               path, fmtVec(v.direction.data(), 9, " "));
  if (opt.canonical) reorientToLps(v);
  return v;
}

void writeVolume(const std::string& path, const Volume& v) {
  const std::string ext = formatExtension(path);
  BIUD_CHECK(ext == ".nii.gz" || ext == ".nii" || ext == ".mha" || ext == ".nrrd", IoError,
             "writeVolume `{}`: unsupported extension `{}` (use .nii.gz, .nii, .mha or .nrrd)", path, ext);
  BIUD_CHECK(v.numel() > 0 && static_cast<std::int64_t>(v.data.size()) == v.numel(), ValueError,
             "writeVolume `{}`: volume of size {}x{}x{} holds {} values", path, v.size[0], v.size[1], v.size[2],
             v.data.size());
  bool integral = true;
  for (float x : v.data) {
    if (!(x >= -32768.0f && x <= 32767.0f) || x != std::nearbyint(x)) {
      integral = false;
      break;
    }
  }
  stdfs::path target(path);
  if (target.has_parent_path()) stdfs::create_directories(target.parent_path());
  const std::string stem = target.filename().string().substr(0, target.filename().string().size() - ext.size());
  const stdfs::path tmp = target.parent_path() / fmt::format(".{}.tmp{}_{}{}", stem, ::getpid(), g_tmpCounter++, ext);
  try {
    if (integral) {
      auto w = itk::ImageFileWriter<ShortImage3>::New();
      w->SetInput(toItk<std::int16_t>(v));
      w->SetFileName(tmp.string());
      w->SetUseCompression(ext != ".nii");
      w->Update();
    } else {
      auto w = itk::ImageFileWriter<FloatImage3>::New();
      w->SetInput(toItk<float>(v));
      w->SetFileName(tmp.string());
      w->SetUseCompression(ext != ".nii");
      w->Update();
    }
  } catch (const itk::ExceptionObject& e) {
    std::error_code ec;
    stdfs::remove(tmp, ec);
    BIUD_THROW(IoError, "writeVolume `{}`: {}", path, e.GetDescription());
  }
  std::error_code ec;
  stdfs::rename(tmp, target, ec);
  if (ec) {
    stdfs::remove(tmp, ec);
    BIUD_THROW(IoError, "writeVolume `{}`: cannot rename temp file: {}", path, ec.message());
  }
}

namespace {
ImageInfo readImageInfoUnchecked(const std::string& path);
}  // namespace

ImageInfo readImageInfo(const std::string& path) {
  try {
    if (detail::mayReachGdcm(path) && detail::dicomIsolation()) {
      requireReadable(path, "image");
      return detail::isolatedImageInfo(path);
    }
    return readImageInfoUnchecked(path);
  } catch (...) {
    rethrowUnreadable("image", path);
  }
}

namespace {
ImageInfo readImageInfoUnchecked(const std::string& path) {
  quietToolkits();
  requireReadable(path, "image");
  auto io = createIO(path, "image");
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "image `{}`: cannot read header: {}", path, e.GetDescription());
  }
  ImageInfo info;
  info.dimension = static_cast<int>(io->GetNumberOfDimensions());
  for (int d = 0; d < info.dimension; ++d) info.size.push_back(static_cast<int>(io->GetDimensions(d)));
  info.components = static_cast<int>(io->GetNumberOfComponents());
  info.componentType = itk::ImageIOBase::GetComponentTypeAsString(io->GetComponentType());
  return info;
}
}  // namespace

ImageInfo detail::readImageInfoInProcess(const std::string& path) { return readImageInfoUnchecked(path); }

Image2D readImage2D(const std::string& path) {
  requireReadable(path, "image");
  std::error_code ec;
  BIUD_CHECK(!stdfs::is_directory(path, ec), IoError, "image `{}` is a folder; give one PNG/JPEG/DICOM file", path);
  if (detail::mayReachGdcm(path) && detail::dicomIsolation()) return detail::isolatedImage2D(path);
  return detail::readImage2DInProcess(path);
}

Image2D detail::readImage2DInProcess(const std::string& path) {
  quietToolkits();
  auto io = createIO(path, "image");
  std::vector<char> buf;
  size_t w = 0, h = 0, comps = 1;
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
    const unsigned dims = io->GetNumberOfDimensions();
    BIUD_CHECK(dims >= 2, DataError, "image `{}` has {} dimension(s), expected a 2D picture", path, dims);
    for (unsigned d = 2; d < dims; ++d)
      BIUD_CHECK(io->GetDimensions(d) == 1, DataError,
                 "image `{}` has {} frames/slices along axis {}; expected one 2D picture", path, io->GetDimensions(d),
                 d);
    w = io->GetDimensions(0);
    h = io->GetDimensions(1);
    comps = io->GetNumberOfComponents();
    itk::ImageIORegion region(dims);
    for (unsigned d = 0; d < dims; ++d) {
      region.SetIndex(d, 0);
      region.SetSize(d, io->GetDimensions(d));
    }
    io->SetIORegion(region);
    buf.resize(io->GetImageSizeInBytes());
    io->Read(buf.data());
  } catch (const itk::ExceptionObject& e) {
    BIUD_THROW(IoError, "image `{}`: cannot read (truncated or corrupt file?): {}", path, e.GetDescription());
  }
  Image2D img;
  img.size = {static_cast<int>(w), static_cast<int>(h), 1};
  img.spacing = {io->GetSpacing(0), io->GetSpacing(1), 1.0};
  const size_t n = w * h;
  const auto ct = io->GetComponentType();
  using C = itk::IOComponentEnum;
  const bool isDicom = dynamic_cast<itk::GDCMImageIO*>(io.GetPointer()) != nullptr;
  switch (ct) {
    case C::UCHAR:
      toFloat<std::uint8_t>(buf.data(), n, comps, img.data);
      break;
    case C::CHAR:
      toFloat<std::int8_t>(buf.data(), n, comps, img.data);
      break;
    case C::USHORT:
      toFloat<std::uint16_t>(buf.data(), n, comps, img.data);
      break;
    case C::SHORT:
      toFloat<std::int16_t>(buf.data(), n, comps, img.data);
      break;
    case C::UINT:
      toFloat<std::uint32_t>(buf.data(), n, comps, img.data);
      break;
    case C::INT:
      toFloat<std::int32_t>(buf.data(), n, comps, img.data);
      break;
    case C::FLOAT:
      toFloat<float>(buf.data(), n, comps, img.data);
      break;
    case C::DOUBLE:
      toFloat<double>(buf.data(), n, comps, img.data);
      break;
    default:
      BIUD_THROW(DataError, "image `{}`: unsupported pixel type {}", path,
                 itk::ImageIOBase::GetComponentTypeAsString(ct));
  }
  if (!isDicom && ct == C::UCHAR) {
    for (float& x : img.data) x /= 255.0f;
  } else if (!isDicom && ct == C::USHORT) {
    for (float& x : img.data) x /= 65535.0f;
  } else {
    // DICOM (and unusual pixel types): stored bit depth and rescale vary by vendor, so the
    // image's own range defines black and white.
    float lo = std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::lowest();
    for (float x : img.data) {
      BIUD_CHECK(std::isfinite(x), DataError, "image `{}` contains NaN or Inf pixels", path);
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    const float range = hi - lo;
    for (float& x : img.data) x = range > 0 ? (x - lo) / range : 0.0f;
  }
  // MONOCHROME1 (white = low values): ITK's GDCMImageIO (5.1 and later) already inverts it to
  // MONOCHROME2 while reading, so bright means dense here without doing anything.
  static_assert(ITK_VERSION_MAJOR > 5 || (ITK_VERSION_MAJOR == 5 && ITK_VERSION_MINOR >= 1),
                "readImage2D relies on GDCMImageIO inverting MONOCHROME1 (ITK >= 5.1)");
  return img;
}

void writeImage2D(const std::string& path, const Image2D& img, int bits) {
  BIUD_CHECK(bits == 8 || bits == 16, ValueError, "writeImage2D `{}`: bits must be 8 or 16, got {}", path, bits);
  BIUD_CHECK(img.size[2] == 1 && img.size[0] > 0 && img.size[1] > 0, ValueError,
             "writeImage2D `{}`: expected a 2D image, got size {}x{}x{}", path, img.size[0], img.size[1], img.size[2]);
  BIUD_CHECK(static_cast<std::int64_t>(img.data.size()) == img.numel(), ValueError,
             "writeImage2D `{}`: image of size {}x{} holds {} values", path, img.size[0], img.size[1], img.data.size());
  const size_t n = img.data.size();
  auto clamp01 = [](float x) { return std::isfinite(x) ? std::min(1.0f, std::max(0.0f, x)) : 0.0f; };
  if (bits == 8) {
    std::vector<std::uint8_t> px(n);
    for (size_t i = 0; i < n; ++i) px[i] = static_cast<std::uint8_t>(std::lround(clamp01(img.data[i]) * 255.0f));
    png::write8(path, img.size[0], img.size[1], 1, px.data());
  } else {
    std::vector<std::uint16_t> px(n);
    for (size_t i = 0; i < n; ++i) px[i] = static_cast<std::uint16_t>(std::lround(clamp01(img.data[i]) * 65535.0f));
    png::write16(path, img.size[0], img.size[1], 1, px.data());
  }
}

}  // namespace biud::image
