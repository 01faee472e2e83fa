// DICOM read in a child process (include/biud/image/DicomWorker.h): damaged files found by
// fuzzing (F5: GDCM's assert()s abort; F6: element lengths allocated as given) end in an IoError
// here instead of ending the process; good files read exactly as in-process; MetaImage's NDims
// is bounded before MetaIO loops over it (F4).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/image/VolumeIO.h"
#include "image/ImageTestUtil.h"

namespace biud::test {
namespace {

using image::Volume;

std::string fileBytes(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The files of a fuzz input of tests/fuzz/dicom.cpp: the first byte picks folder (even) or single
/// file (odd), a folder's files are separated by "\n%%slice\n".
std::vector<std::string> fuzzFiles(const std::string& input, bool* folder) {
  const std::string bytes = fileBytes(sourceDir() / "tests/fuzz/crashes/dicom" / input);
  *folder = static_cast<unsigned char>(bytes[0]) % 2 == 0;
  std::string rest = bytes.substr(1);
  std::vector<std::string> parts;
  if (!*folder) return {rest};
  const std::string sep = "\n%%slice\n";
  for (size_t pos = 0; parts.size() < 8;) {
    const size_t next = rest.find(sep, pos);
    parts.push_back(rest.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) break;
    pos = next + sep.size();
  }
  return parts;
}

/// The fuzz input laid out as files under `dir`; returns what readVolume is given.
std::string layOut(const TempDir& dir, const std::string& input) {
  bool folder = false;
  const auto parts = fuzzFiles(input, &folder);
  if (!folder) {
    writeText(dir / "vol.dcm", parts[0]);
    return (dir / "vol.dcm").string();
  }
  for (size_t i = 0; i < parts.size(); ++i) writeText(dir / "vol" / ("slice" + std::to_string(i) + ".dcm"), parts[i]);
  return (dir / "vol").string();
}

/// How readVolume(path) ends in a forked child: "ok", the exception's type, or "signal N".
std::string outcomeInChild(const std::string& path, bool isolated) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("BIUD_DICOM_ISOLATION", isolated ? "1" : "0", 1);
    int code = 0;
    try {
      (void)image::readVolume(path);
    } catch (const IoError&) {
      code = 10;
    } catch (const Error&) {
      code = 11;
    } catch (...) {
      code = 12;
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  switch (WEXITSTATUS(status)) {
    case 0:
      return "ok";
    case 10:
      return "IoError";
    case 11:
      return "Error";
    default:
      return "other exception";
  }
}

/// The message of the biud error `fn` throws (IoError or DataError: a damaged file, or a folder
/// in which GDCM found no series at all).
std::string ioErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const IoError& e) {
    return e.what();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no error";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Every damaged DICOM input of the fuzzing run: before, the read in this process ended it (at
// least the assert() inputs); now it is one IoError naming the folder or file, and this process
// goes on.
TEST(DicomWorker, DamagedDicomIsAnErrorNotACrash) {
  int crashedInProcess = 0, inputs = 0;
  for (const auto& e : stdfs::directory_iterator(sourceDir() / "tests/fuzz/crashes/dicom")) {
    const std::string input = e.path().filename().string();
    SCOPED_TRACE(input);
    TempDir dir("dicomw");
    const std::string path = layOut(dir, input);
    ++inputs;
    if (input.rfind("crash-", 0) == 0) {
      const std::string before = outcomeInChild(path, /*isolated=*/false);
      crashedInProcess += before.rfind("signal", 0) == 0;
    }
    const std::string msg = ioErrorOf([&] { (void)image::readVolume(path); });
    std::printf("%s\n", msg.c_str());
    EXPECT_TRUE(contains(msg, path)) << msg;
    EXPECT_FALSE(contains(msg, "wrong exception type")) << msg;
    EXPECT_NE(msg, "no error");
  }
  EXPECT_EQ(inputs, 6);
  // The test can fail: the same inputs read in-process still stop the process (GDCM unchanged).
  EXPECT_GE(crashedInProcess, 1);
}

// A folder whose damaged file crashes GDCM: the error names that file.
TEST(DicomWorker, CrashNamesTheDamagedFile) {
  TempDir dir("dicomw");
  const std::string path = layOut(dir, "crash-7db3559bfa31714ab918ffdf1c37e7547d871579");
  ASSERT_EQ(outcomeInChild(path, false), "signal 6");
  const std::string msg = ioErrorOf([&] { (void)image::readVolume(path); });
  EXPECT_TRUE(contains(msg, "is damaged: the DICOM library (GDCM) stopped on it (SIGABRT")) << msg;
  EXPECT_TRUE(contains(msg, "damaged: slice")) << msg;
}

// Good DICOM reads exactly as in-process: a CT series (pydicom's test data), its series list,
// header facts and a 2D DICOM picture.
TEST(DicomWorker, IsolatedReadEqualsInProcessRead) {
  const std::string dcm = testDataDir("pydicom");
  const std::string series = dcm + "/dicomdirtests/98892001/CT5N";
  auto bothWays = [](const std::function<void()>& fn) {
    ::setenv("BIUD_DICOM_ISOLATION", "0", 1);
    fn();
    ::setenv("BIUD_DICOM_ISOLATION", "1", 1);
    fn();
  };
  std::vector<Volume> vols;
  std::vector<std::vector<std::pair<std::string, int>>> lists;
  std::vector<image::ImageInfo> infos;
  std::vector<image::Image2D> pics;
  bothWays([&] {
    vols.push_back(image::readVolume(series));
    lists.push_back(image::listDicomSeries(series));
    infos.push_back(image::readImageInfo(dcm + "/CT_small.dcm"));
    pics.push_back(image::readImage2D(dcm + "/CT_small.dcm"));
  });
  ::unsetenv("BIUD_DICOM_ISOLATION");
  ASSERT_EQ(vols.size(), 2u);
  EXPECT_EQ(vols[0].size, vols[1].size);
  EXPECT_EQ(vols[0].spacing, vols[1].spacing);
  EXPECT_EQ(vols[0].origin, vols[1].origin);
  EXPECT_EQ(vols[0].direction, vols[1].direction);
  EXPECT_EQ(vols[0].data, vols[1].data);
  EXPECT_GT(vols[0].numel(), 0);
  EXPECT_EQ(lists[0], lists[1]);
  ASSERT_EQ(lists[0].size(), 1u);
  EXPECT_EQ(infos[0].size, infos[1].size);
  EXPECT_EQ(infos[0].componentType, infos[1].componentType);
  EXPECT_EQ(pics[0].data, pics[1].data);
  EXPECT_EQ(pics[0].size, pics[1].size);
}

// A read that outlives BIUD_DICOM_TIMEOUT is stopped and named.
TEST(DicomWorker, TimeoutStopsTheWorker) {
  ::setenv("BIUD_DICOM_TIMEOUT", "0.0001", 1);
  const std::string series = testDataDir("pydicom") + "/dicomdirtests/98892001/CT5N";
  const std::string msg = ioErrorOf([&] { (void)image::readVolume(series); });
  ::unsetenv("BIUD_DICOM_TIMEOUT");
  EXPECT_TRUE(contains(msg, "took longer than 0.0001 s (BIUD_DICOM_TIMEOUT)")) << msg;
}

// F4: `NDims = 3999999996` in a MetaImage header kept MetaIO looping for minutes; it is refused
// before MetaIO sees it, in readImageInfo and readVolume.
TEST(DicomWorker, MetaImageNDimsIsBounded) {
  for (const char* input :
       {"timeout-7e2a2082f38b6ae30ac2af9d074b7ae158410ef1", "timeout-1a43395b999e8bc9e021fc2482618264fd2a13a6"}) {
    SCOPED_TRACE(input);
    const std::string bytes = fileBytes(sourceDir() / "tests/fuzz/crashes/volume" / input);
    ASSERT_EQ(static_cast<unsigned char>(bytes[0]) % 4, 2);  // the fuzz target's .mha
    TempDir dir("ndims");
    const std::string path = (dir / "vol.mha").string();
    writeText(path, bytes.substr(1));
    for (int i = 0; i < 2; ++i) {
      const std::string msg = ioErrorOf([&] {
        if (i == 0)
          (void)image::readImageInfo(path);
        else
          (void)image::readVolume(path);
      });
      EXPECT_TRUE(contains(msg, "MetaImage header has `NDims = ")) << msg;
      EXPECT_TRUE(contains(msg, "expected a whole number from 1 to 16")) << msg;
      EXPECT_TRUE(contains(msg, path)) << msg;
    }
  }
}

}  // namespace
}  // namespace biud::test
