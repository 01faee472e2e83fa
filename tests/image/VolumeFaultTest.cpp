// Issue 20, "volumes are checked before they are trusted": damaged files made from real ones by
// tests/reference/volume_faults.py (nibabel's test data, files written by nibabel, SimpleITK and
// pydicom, then cut or with header fields rewritten). Each read that a bad header could make
// allocate gigabytes runs in a forked child under a lowered address-space limit (RLIMIT_AS), so a
// regression fails with bad_alloc there instead of taking the machine's memory.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <new>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/config/DataConfig.h"
#include "biud/core/Error.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

using image::Volume;
using image::VolumeReadOptions;

/// kB of a /proc/self/status field (VmSize, VmRSS).
long procStatusKb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + key.size());
  return -1;
}

struct ChildOutcome {
  std::string kind;  ///< ok, IoError, DataError, ValueError, Error, bad_alloc, std::exception, signal N
  std::string what;
  double rssGrowthMb = 0;  ///< the child's peak resident memory minus the parent's at fork
};

/// readVolume(path, opt) in a forked child whose address space may grow by at most `budgetMb`
/// beyond what it inherits.
ChildOutcome readInChild(const std::string& path, const VolumeReadOptions& opt = {}, long budgetMb = 512) {
  int fds[2];
  if (::pipe(fds) != 0) return {"pipe failed", "", 0};
  const long parentRssKb = procStatusKb("VmRSS");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const long vm = procStatusKb("VmSize");
    rlimit lim{};
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(vm + budgetMb * 1024) * 1024;
    std::string kind, what;
    if (vm <= 0 || ::setrlimit(RLIMIT_AS, &lim) != 0) {
      kind = "setrlimit failed";
    } else {
      try {
        const Volume v = image::readVolume(path, opt);
        kind = "ok";
        what = std::to_string(v.numel());
      } catch (const IoError& e) {
        kind = "IoError", what = e.what();
      } catch (const DataError& e) {
        kind = "DataError", what = e.what();
      } catch (const ValueError& e) {
        kind = "ValueError", what = e.what();
      } catch (const Error& e) {
        kind = "Error", what = e.what();
      } catch (const std::bad_alloc& e) {
        kind = "bad_alloc", what = e.what();
      } catch (const std::exception& e) {
        kind = "std::exception", what = e.what();
      }
    }
    const std::string msg = kind + "\n" + what;
    size_t off = 0;
    while (off < msg.size()) {
      const ssize_t n = ::write(fds[1], msg.data() + off, msg.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  ChildOutcome out;
  if (WIFSIGNALED(status)) return {"signal " + std::to_string(WTERMSIG(status)), msg, 0};
  const size_t nl = msg.find('\n');
  out.kind = msg.substr(0, nl);
  out.what = nl == std::string::npos ? std::string() : msg.substr(nl + 1);
  out.rssGrowthMb = static_cast<double>(ru.ru_maxrss - parentRssKb) / 1024.0;
  return out;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// The exception type and every part of the message, read in a child under `budgetMb`.
void expectChildError(const std::string& path, const std::string& kind, const std::vector<std::string>& parts,
                      const VolumeReadOptions& opt = {}, long budgetMb = 512) {
  SCOPED_TRACE(path);
  const ChildOutcome got = readInChild(path, opt, budgetMb);
  EXPECT_EQ(got.kind, kind) << got.what;
  for (const auto& p : parts) EXPECT_TRUE(contains(got.what, p)) << "missing `" << p << "` in: " << got.what;
  EXPECT_TRUE(contains(got.what, path)) << "the message does not name the file: " << got.what;
  // Nothing of the header's size was touched: the child's peak memory stayed near the parent's.
  EXPECT_LT(got.rssGrowthMb, 64.0);
}

template <class E>
std::string errorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no error";
}

void patchBytes(const std::string& path, size_t offset, const void* bytes, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
  ASSERT_TRUE(f.good()) << path;
}

class VolumeFault : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("vfault");
    facts_ = nlohmann::json::parse(runPython("volume_faults.py", "make " + quote(dir_->str())));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string f(const std::string& name) { return (*dir_ / name).string(); }
  static TempDir* dir_;
  static nlohmann::json facts_;
};
TempDir* VolumeFault::dir_ = nullptr;
nlohmann::json VolumeFault::facts_;

// A 4 KiB start of a .nii.gz whose last 4 bytes (the gzip trailer's ISIZE) claim 4 GiB: the buffer
// used to be sized from them. Now it is sized by the NIfTI header (64 x 64 x 40 int16 at vox_offset
// 352 = 328032 bytes) and the read fails when the stream ends, with libdeflate and with zlib.
TEST_F(VolumeFault, TruncatedGzipIsNotSizedByItsTrailer) {
  ASSERT_EQ(facts_["big_raw_bytes"].get<int>(), 352 + 64 * 64 * 40 * 2);
  const std::string p = f("trunc4k.nii.gz");
  expectChildError(p, "IoError", {"truncated", "328032"});
  ::setenv("BIUD_NO_LIBDEFLATE", "1", 1);
  expectChildError(p, "IoError", {"truncated", "the NIfTI header needs 328032"});
  ::unsetenv("BIUD_NO_LIBDEFLATE");
  // The whole file reads within the same 64 MiB budget: 328032 bytes inflated, 655360 as float.
  const ChildOutcome ok = readInChild(f("big.nii.gz"), {}, 64);
  EXPECT_EQ(ok.kind, "ok") << ok.what;
  EXPECT_EQ(ok.what, std::to_string(64 * 64 * 40));
}

// A 1000^3 int16 header on small files: refused from the file size before any allocation, with
// the bytes present and the bytes needed (worked out by hand: 1000^3 x 2 = 2e9, + 352 for NIfTI).
TEST_F(VolumeFault, HeaderDimensionsAreCheckedAgainstTheFileSize) {
  expectChildError(f("dims1000.nii"), "IoError",
                   {"holds 68002 bytes", "needs 2000000352", "1000000000 voxels x 2 bytes"});
  // Compressed, its trailer rewritten to claim exactly 2000000352 bytes: no gzip stream of C bytes
  // (about 62 KB here) inflates to more than 1032 C + 1024 (deflate's longest match, 258 bytes, in 2 bits).
  const std::string gz = f("dims1000.nii.gz");
  const std::uintmax_t c = stdfs::file_size(gz);
  const std::string bound = fmt::format("at most {}", 1032 * c + 1024);
  expectChildError(gz, "IoError", {"needs 2000000352 bytes", fmt::format("its {} bytes of gzip", c), bound});
  ::setenv("BIUD_NO_LIBDEFLATE", "1", 1);
  expectChildError(gz, "IoError", {"needs 2000000352 bytes", bound});
  ::unsetenv("BIUD_NO_LIBDEFLATE");
  // MetaImage and NRRD with raw data: the header line grew by 6 bytes ("20 30 40" -> "1000 1000 1000").
  const int mhaHeader = facts_["header_raw.mha"].get<int>() + 6, nrrdHeader = facts_["header_raw.nrrd"].get<int>() + 6;
  expectChildError(
      f("dims_raw.mha"), "IoError",
      {fmt::format("after its {}-byte header, 48000 bytes", mhaHeader), "MetaImage header needs 2000000000"});
  expectChildError(f("dims_raw.nrrd"), "IoError",
                   {fmt::format("after its {}-byte header, 48000 bytes", nrrdHeader), "NRRD header needs 2000000000"});
  // Compressed MetaImage / NRRD: the compressed bytes bound what they can hold.
  for (const char* name : {"dims_gz.mha", "dims_gz.nrrd"}) {
    const std::string p = f(name);
    expectChildError(p, "IoError", {"header needs 2000000000 bytes", "compressed data can hold"});
  }
}

// A compressed MetaImage whose CompressedDataSize is huge (the fuzzer's input
// tests/fuzz/crashes/volume/crash-84133b29...: 1.1e49): ITK's MetaIO would allocate that many
// bytes (2^63 after conversion; std::bad_alloc in a normal build, an abort under ASan) before
// reading. It is refused first, with the value and the 16 compressed bytes the file holds.
TEST_F(VolumeFault, CompressedDataSizeBeyondTheFileIsRefusedBeforeItIsAllocated) {
  const std::string header =
      "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = True\n"
      "CompressedDataSize = 11111111111111111111111111111111111111111111199996\nDimSize = 2 3 4\n"
      "ElementType = MET_SHORT\nElementDataFile = LOCAL\n";
  const std::string p = f("huge_compressed_size.mha");
  writeText(p, header + std::string(16, 'x'));
  expectChildError(p, "IoError",
                   {"CompressedDataSize (11111111111111111111111111111111111111", "more than the 16 bytes"});
  // A CompressedDataSize within the file passes that check; the 16 bytes are no zlib stream. ITK's
  // MetaIO printed "Uncompress failed" and returned a volume it never filled (a silent wrong
  // result); biud inflates the stream first and refuses it.
  const std::string q = f("small_compressed_size.mha");
  std::string h2 = header;
  h2.replace(h2.find("11111"), 50, "16");
  writeText(q, h2 + std::string(16, 'x'));
  expectChildError(q, "IoError", {"compressed MetaImage data is corrupt", "incorrect header check"});
}

// Voxels missing at the end: an IoError with the bytes present and needed, never zeros.
TEST_F(VolumeFault, TruncatedDataIsAnError) {
  // anatomical.nii (33 x 41 x 25 int16 at 352: 68002 bytes) cut to 40000 bytes.
  ASSERT_EQ(facts_["anat_bytes"].get<int>(), 352 + 33 * 41 * 25 * 2);
  expectChildError(f("trunc.nii"), "IoError", {"truncated", "holds 40000 bytes", "needs 68002"});
  // The same bytes as a complete gzip stream.
  expectChildError(f("trunc.nii.gz"), "IoError", {"40000 bytes inflated", "needs 68002"});
  ::setenv("BIUD_NO_LIBDEFLATE", "1", 1);
  expectChildError(f("trunc.nii.gz"), "IoError", {"holds 40000 bytes", "needs 68002"});
  ::unsetenv("BIUD_NO_LIBDEFLATE");
  // 20 x 30 x 40 int16 = 48000 bytes of data, 10000 cut off.
  expectChildError(f("trunc_raw.mha"), "IoError",
                   {"38000 bytes of voxel data", "needs 48000 (24000 voxels x 2 bytes)"});
  expectChildError(f("trunc_raw.nrrd"), "IoError", {"38000 bytes of voxel data", "needs 48000"});
  expectChildError(f("trunc_raw.mhd"), "IoError", {"cut.raw", "holds 38000 bytes", "needs 48000"});
  // The intact files read, within the same budget.
  for (const char* name : {"raw.mha", "raw.mhd", "raw.nrrd", "gz.mha", "gz.nrrd"}) {
    const ChildOutcome ok = readInChild(f(name));
    EXPECT_EQ(ok.kind, "ok") << name << ": " << ok.what;
    EXPECT_EQ(ok.what, std::to_string(20 * 30 * 40)) << name;
  }
}

// A damaged gzip NRRD (SimpleITK's gz.nrrd: 20 x 30 x 40 int16): 16 bytes of the deflate stream
// flipped, or the stream cut at 70 %. ITK's NrrdIO reports both (unlike MetaIO, which filled
// nothing and went on: CompressedDataSizeBeyondTheFile... above); an IoError naming the file, never
// a volume of zeros.
TEST_F(VolumeFault, DamagedGzipNrrdIsAnError) {
  std::ifstream in(f("gz.nrrd"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t data = bytes.find("\n\n");
  ASSERT_NE(data, std::string::npos);
  const size_t start = data + 2, n = bytes.size() - start;
  ASSERT_GT(n, 200u);
  std::string flipped = bytes;
  for (size_t k = start + n / 2; k < start + n / 2 + 16; ++k) flipped[k] = static_cast<char>(~flipped[k]);
  writeText(f("flipped_gz.nrrd"), flipped);
  expectChildError(f("flipped_gz.nrrd"), "IoError", {"_nrrdGzRead"});
  writeText(f("cut_gz.nrrd"), bytes.substr(0, start + n * 7 / 10));
  expectChildError(f("cut_gz.nrrd"), "IoError", {"expected 48000 bytes"});
}

// Zero, negative and absurd dimensions: a DataError naming the dimensions, nothing allocated.
TEST_F(VolumeFault, AbsurdDimensionsAreRefused) {
  expectChildError(f("negdim.nii"), "DataError", {"dim[2] = -41"});
  // anatomical.nii with dims 2000 x 2000 x 1000 (big-endian int16 at 42, 44, 46): 4e9 voxels.
  const std::string huge = f("huge.nii");
  stdfs::copy_file(testDataDir("nibabel") + "/anatomical.nii", huge, stdfs::copy_options::overwrite_existing);
  const unsigned char dims[6] = {0x07, 0xD0, 0x07, 0xD0, 0x03, 0xE8};
  patchBytes(huge, 42, dims, sizeof dims);
  expectChildError(huge, "DataError", {"2000x2000x1000", "4000000000 voxels", "2147483647"});
  // NRRD sizes 65536 x 65536 x 16 (NrrdIO itself refuses products beyond 64 bits): 2^36 voxels.
  const std::string nrrd = f("overflow.nrrd");
  std::string text = readText(f("raw.nrrd"));
  const std::string from = "sizes: 20 30 40";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "sizes: 65536 65536 16");
  writeText(nrrd, text);
  const ChildOutcome got = readInChild(nrrd);
  EXPECT_EQ(got.kind, "DataError") << got.what;
  EXPECT_TRUE(contains(got.what, nrrd)) << got.what;
  EXPECT_TRUE(contains(got.what, "65536x65536x16 make 68719476736 voxels")) << got.what;
  EXPECT_LT(got.rssGrowthMb, 64.0);
}

// A NIfTI with scl_slope is reported by ITK as float (4 bytes a voxel); the size check counts the
// stored int16 (2 bytes): the file reads like nibabel's get_fdata(), and cut short it is an error.
TEST_F(VolumeFault, ScaledNiftiIsSizedByItsStoredType) {
  ASSERT_EQ(facts_["scaled_bytes"].get<int>(), 352 + 30 * 20 * 10 * 2);
  const std::string ref = (*dir_ / "scaled_ref").string();
  runPython("image_io.py", "nibabel " + quote(f("scaled.nii")) + " " + quote(ref));
  const Volume want = loadReference(ref);
  for (const char* env : {"", "1"}) {
    if (*env) ::setenv("BIUD_NO_LIBDEFLATE", env, 1);
    for (const char* name : {"scaled.nii", "scaled.nii.gz"}) {
      SCOPED_TRACE(std::string(name) + (*env ? " (zlib)" : ""));
      expectSameVolume(image::readVolume(f(name)), want, 1e-3);
    }
    ::unsetenv("BIUD_NO_LIBDEFLATE");
  }
  expectChildError(f("scaled_cut.nii"), "IoError",
                   {"holds 11352 bytes", "needs 12352 (vox_offset 352 + 6000 voxels x 2 bytes)"});
}

// Gzip data that is not one member of exactly the header's size reads like the plain file: two
// members (the trailer's ISIZE is then only the second half), and 4 KiB after the voxels.
TEST_F(VolumeFault, GzipMembersAndTrailingBytesReadLikeThePlainFile) {
  const Volume plain = image::readVolume(f("big.nii"));
  ASSERT_EQ(plain.size, (std::array<int, 3>{64, 64, 40}));
  for (const char* env : {"", "1"}) {
    if (*env) ::setenv("BIUD_NO_LIBDEFLATE", env, 1);
    for (const char* name : {"big.nii.gz", "multi.nii.gz", "trailing.nii.gz"}) {
      SCOPED_TRACE(std::string(name) + (*env ? " (zlib)" : " (libdeflate)"));
      expectSameVolume(image::readVolume(f(name)), plain, 0.0);
    }
    ::unsetenv("BIUD_NO_LIBDEFLATE");
  }
}

// Spacing the NIfTI library turns into 1 mm (0, NaN, Inf) or takes as it is (0.01, 50 mm), and the
// same in MetaImage, NRRD and DICOM: a DataError naming the file, the spacing, the range and the key.
TEST_F(VolumeFault, BrokenSpacingIsRefusedInEveryFormat) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sp_zero.nii", "0 x 2 x 2 mm"},      {"sp_nan.nii", "nan x 2 x 2 mm"},
      {"sp_inf.nii", "inf x 2 x 2 mm"},     {"sp_tiny.nii", "0.01 x 2 x 2 mm"},
      {"sp_huge.nii", "50 x 2 x 2 mm"},     {"sp_zero.nii.gz", "0 x 2 x 2 mm"},
      {"sp_nan.nii.gz", "nan x 2 x 2 mm"},  {"sp_tiny.nii.gz", "0.01 x 2 x 2 mm"},
      {"sp_huge.nii.gz", "50 x 2 x 2 mm"},  {"sp_tiny.mha", "0.01 x 0.8 x 2.5 mm"},
      {"sp_zero.mha", "0 x 0.8 x 2.5 mm"},  {"sp_huge.nrrd", "50 x 0.8 x 2.5 mm"},
      {"dcm_tiny", "0.01 x 0.01 x 2.5 mm"}, {"dcm_zero", "0 x 0 x 2.5 mm"}};
  for (const auto& [name, spacing] : cases) {
    SCOPED_TRACE(name);
    const std::string p = f(name);
    const std::string msg = errorOf<DataError>([&] { image::readVolume(p); });
    for (const std::string& part : std::vector<std::string>{
             p, "voxel spacing " + spacing, "data.ct.spacing_range [0.05, 20] mm", "spacing_x, spacing_y, spacing_z"})
      EXPECT_TRUE(contains(msg, part)) << "missing `" << part << "` in: " << msg;
  }
  // The intact series reads at 0.7 x 0.7 x 2.5 mm.
  const Volume ok = image::readVolume(f("dcm_ok"));
  EXPECT_NEAR(ok.spacing[0], 0.7, 1e-6);
  EXPECT_NEAR(ok.spacing[1], 0.7, 1e-6);
  EXPECT_NEAR(ok.spacing[2], 2.5, 1e-6);
}

// The check applies to the final spacing: a manifest override may repair a broken header, and a
// bad override is refused like a bad header.
TEST_F(VolumeFault, SpacingIsCheckedAfterTheOverrides) {
  VolumeReadOptions o;
  std::vector<std::string> notes;
  o.overrides.spacing = {2.0, 2.0, 2.0};
  o.disagreements = &notes;
  for (const char* name : {"sp_zero.nii", "sp_nan.nii.gz"}) {
    SCOPED_TRACE(name);
    notes.clear();
    const Volume v = image::readVolume(f(name), o);
    for (int d = 0; d < 3; ++d) EXPECT_DOUBLE_EQ(v.spacing[d], 2.0);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0],
              std::string("spacing: header ") + (name[3] == 'z' ? "0" : "nan") + " x 2 x 2 mm, metadata 2 x 2 x 2 mm");
  }
  // A MetaImage and a DICOM series with zero spacing (which ITK's image and GDCM refuse or replace)
  // read like the intact files once the spacing is given.
  o.overrides.spacing = {0.7, 0.8, 2.5};
  expectSameVolume(image::readVolume(f("sp_zero.mha"), o), image::readVolume(f("raw.mha")), 0.0);
  o.overrides.spacing = {0.7, 0.7, 2.5};
  expectSameVolume(image::readVolume(f("dcm_zero"), o), image::readVolume(f("dcm_ok")), 0.0);
  // A good header (0.7 x 0.7 x 2.5) with a 25 mm override.
  VolumeReadOptions bad;
  bad.overrides.spacing = {0.7, 0.7, 25.0};
  const std::string msg = errorOf<DataError>([&] { image::readVolume(f("big.nii"), bad); });
  EXPECT_TRUE(contains(msg, "voxel spacing 0.7 x 0.7 x 25 mm (axis k: 25 mm)")) << msg;
  EXPECT_TRUE(contains(msg, f("big.nii"))) << msg;
}

// The range is an option of readVolume and the config key data.ct.spacing_range (same default).
TEST_F(VolumeFault, SpacingRangeIsConfigurable) {
  VolumeReadOptions wide;
  wide.spacingRange = {0.005, 60.0};
  EXPECT_NEAR(image::readVolume(f("sp_tiny.nii"), wide).spacing[0], 0.01, 1e-7);
  EXPECT_NEAR(image::readVolume(f("sp_huge.nrrd"), wide).spacing[0], 50.0, 1e-9);
  EXPECT_NEAR(image::readVolume(f("dcm_tiny"), wide).spacing[0], 0.01, 1e-7);
  // From a config's [min, max], as callers holding data.ct pass it.
  const VolumeReadOptions fromCfg = VolumeReadOptions::withSpacingRange({0.005, 60.0});
  EXPECT_EQ(fromCfg.spacingRange, (std::array<double, 2>{0.005, 60.0}));
  EXPECT_NEAR(image::readVolume(f("sp_huge.nii.gz"), fromCfg).spacing[0], 50.0, 1e-9);
  EXPECT_TRUE(contains(errorOf<ValueError>([] { VolumeReadOptions::withSpacingRange({1.0}); }), "got 1 number"));
  // 0 and NaN stay refused whatever the range.
  EXPECT_TRUE(contains(errorOf<DataError>([&] { image::readVolume(f("sp_zero.nii"), wide); }), "[0.005, 60]"));
  // Defaults agree.
  const CtPreprocessConfig def;
  ASSERT_EQ(def.spacing_range.size(), 2u);
  EXPECT_EQ(def.spacing_range[0], VolumeReadOptions{}.spacingRange[0]);
  EXPECT_EQ(def.spacing_range[1], VolumeReadOptions{}.spacingRange[1]);
  EXPECT_EQ(def.spacing_range, (std::vector<double>{0.05, 20.0}));
  // The key parses and its rules hold.
  auto parse = [](const std::string& yaml) {
    return config::parse<CtPreprocessConfig>(config::Document::fromString(yaml, "test.yaml"));
  };
  EXPECT_EQ(parse("spacing_range: [0.01, 30]").spacing_range, (std::vector<double>{0.01, 30.0}));
  for (const char* y : {"spacing_range: [20, 0.05]", "spacing_range: [0, 1]", "spacing_range: [1, 2, 3]"}) {
    SCOPED_TRACE(y);
    const std::string msg = errorOf<ConfigError>([&] { parse(y); });
    EXPECT_TRUE(contains(msg, "spacing_range")) << msg;
  }
  // checkSpacing itself refuses a range that is not [min, max].
  Volume v({2, 2, 2}, {1, 1, 1});
  EXPECT_TRUE(contains(errorOf<ValueError>([&] { image::checkSpacing(v, {1.0, 0.5}, "x.nii"); }), "[1, 0.5]"));
  EXPECT_EQ(errorOf<DataError>([&] { image::checkSpacing(v, {0.05, 20.0}, "x.nii"); }), "no error");
}

}  // namespace
}  // namespace biud::test
