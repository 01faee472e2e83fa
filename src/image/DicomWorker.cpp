// DICOM reads in a child process (include/biud/image/DicomWorker.h): the parent side spawns
// `biud-dicom-worker`, waits with a timeout and turns a crash into an IoError; the worker side
// runs the in-process reader of VolumeIO.cpp and writes the result to a file.
#include "biud/image/DicomWorker.h"

#include <fcntl.h>
#include <itkMultiThreaderBase.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <thread>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "DicomWorker.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"

extern char** environ;

namespace biud::image {

namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kMagic[8] = {'B', 'I', 'U', 'D', 'D', 'W', '0', '1'};

bool endsWithLower(std::string s, const char* suffix) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

const char* envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

stdfs::path workerPath() {
  if (const char* w = std::getenv("BIUD_DICOM_WORKER"); w && *w) return w;
  std::error_code ec;
  const auto dir = fs::executableDir();
  for (const auto& p : {dir / "biud-dicom-worker", dir / ".." / "bin" / "biud-dicom-worker"})
    if (stdfs::is_regular_file(p, ec)) return p;
  return {};
}

/// Bytes of the input: a file's size, or the sum over a folder's regular files (GDCM's series
/// scan is not recursive).
std::uint64_t inputBytes(const std::string& path) {
  std::error_code ec;
  if (!stdfs::is_directory(path, ec)) return stdfs::file_size(path, ec);
  std::uint64_t sum = 0;
  for (const auto& e : stdfs::directory_iterator(path, ec))
    if (e.is_regular_file(ec)) sum += e.file_size(ec);
  return sum;
}

std::string signalName(int sig) {
  switch (sig) {
    case SIGABRT:
      return "SIGABRT: an assertion in the DICOM library";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL: out of memory or killed";
    default:
      return fmt::format("signal {}", sig);
  }
}

std::string readText(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string lastLine(const std::string& s) {
  size_t end = s.find_last_not_of(" \r\n\t");
  if (end == std::string::npos) return {};
  size_t start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1, end + 1 - (start == std::string::npos ? 0 : start + 1));
}

[[noreturn]] void rethrowWorkerError(const std::string& err) {
  const size_t nl = err.find('\n');
  const std::string type = err.substr(0, nl);
  const std::string msg = nl == std::string::npos ? std::string("(no message)") : err.substr(nl + 1);
  if (type == "DataError") throw DataError(msg);
  if (type == "ValueError") throw ValueError(msg);
  if (type == "ConfigError") throw ConfigError(msg);
  throw IoError(msg);
}

/// The outcome of one worker run: the output file's bytes, or why there are none.
struct WorkerRun {
  bool ok = false;
  std::string out;  ///< OUT's bytes when ok
  std::string err;  ///< OUT.err ("Type\nmessage") when the worker reported an error
  int signal = 0;   ///< the signal that ended the worker
  bool timedOut = false;
  std::string logTail;  ///< last line of the worker's stderr
};

WorkerRun runWorker(const char* op, const std::string& path, const std::string& series) {
  static std::atomic<unsigned> counter{0};
  const auto base = stdfs::temp_directory_path() /
                    fmt::format("biud-dicom-{}-{}", static_cast<long>(::getpid()), counter.fetch_add(1));
  const std::string out = base.string(), err = out + ".err", log = out + ".log";
  const std::string worker = workerPath().string();
  std::vector<std::string> args{worker, op, path, series, out};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The worker starts with the default signal dispositions and an empty mask, whatever the
  // caller's threads block (the loader blocks SIGINT in its workers).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, worker.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  BIUD_CHECK(rc == 0, IoError,
             "cannot start the DICOM reader `{}` for `{}`: {} (set BIUD_DICOM_ISOLATION=0 to read in-process)", worker,
             path, std::strerror(rc));

  const double timeout = std::atof(envOr("BIUD_DICOM_TIMEOUT", "900"));
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  WorkerRun r;
  auto nap = std::chrono::microseconds(200);
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR)
      BIUD_THROW(IoError, "DICOM reader for `{}`: waitpid failed: {}", path, std::strerror(errno));
    if (timeout > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      r.timedOut = true;
      break;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(20000));
  }
  std::error_code ec;
  const std::string logText = readText(log);
  r.logTail = lastLine(logText);
  if (!r.timedOut && WIFEXITED(status) && WEXITSTATUS(status) == 0 && stdfs::exists(out, ec)) {
    r.ok = true;
    r.out = readText(out);
    // What the worker logged (a warning about several series, say) reaches this process's log.
    if (!logText.empty()) std::fputs(logText.c_str(), stderr);
  } else if (!r.timedOut && WIFEXITED(status) && stdfs::exists(err, ec)) {
    r.err = readText(err);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  } else if (!r.timedOut) {
    r.err = fmt::format("IoError\nDICOM `{}`: the DICOM reader `{}` ended with exit code {} and no result ({})", path,
                        worker, WIFEXITED(status) ? WEXITSTATUS(status) : -1, r.logTail);
  }
  for (const auto& f : {out, err, log, out + ".tmp"}) stdfs::remove(f, ec);
  return r;
}

/// A folder that crashed the reader: which of its files crash it alone (at most the first 3, of
/// at most 2000 files tried), so that the error can name them.
std::vector<std::string> crashingFiles(const std::string& dir) {
  std::vector<std::string> files, bad;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (files.size() > 2000) files.resize(2000);
  for (const auto& f : files) {
    const auto r = runWorker("info", f, "");
    if (r.signal != 0 || r.timedOut) bad.push_back(stdfs::path(f).filename().string());
    if (bad.size() == 3) break;
  }
  return bad;
}

/// The worker's result, or the error that says why there is none.
std::string checkedRun(const char* op, const std::string& path, const std::string& series, const char* kind) {
  WorkerRun r = runWorker(op, path, series);
  if (r.ok) return std::move(r.out);
  if (!r.err.empty()) rethrowWorkerError(r.err);
  std::error_code ec;
  const bool folder = stdfs::is_directory(path, ec);
  if (r.timedOut)
    BIUD_THROW(
        IoError,
        "{} `{}`: reading it took longer than {} s (BIUD_DICOM_TIMEOUT) and was stopped: a damaged file makes the "
        "DICOM reader loop; remove or replace it, or raise BIUD_DICOM_TIMEOUT for a very large series",
        kind, path, envOr("BIUD_DICOM_TIMEOUT", "900"));
  std::string which;
  if (folder) {
    const auto bad = crashingFiles(path);
    which = bad.empty() ? std::string(" (no single file crashes it alone)")
                        : fmt::format(" (damaged: {})", fmt::join(bad, ", "));
  }
  BIUD_THROW(IoError,
             "{} `{}` is damaged: the DICOM library (GDCM) stopped on it ({}{}){}; remove or replace the damaged "
             "file(s) — `biud-dicom-worker info FILE '' /tmp/out` shows GDCM's own message",
             kind, path, signalName(r.signal), r.logTail.empty() ? "" : ": " + r.logTail, which);
}

/// Splits OUT into its JSON header and the float payload.
json parseOut(const std::string& bytes, const std::string& path, const float** data, size_t* n) {
  BIUD_CHECK(bytes.size() >= 16 && std::memcmp(bytes.data(), kMagic, 8) == 0, IoError,
             "DICOM `{}`: the reader's result is malformed ({} bytes)", path, bytes.size());
  std::uint64_t len = 0;
  std::memcpy(&len, bytes.data() + 8, 8);
  BIUD_CHECK(len <= bytes.size() - 16, IoError, "DICOM `{}`: the reader's result is truncated", path);
  json j = json::parse(bytes.data() + 16, bytes.data() + 16 + len);
  const size_t payload = bytes.size() - 16 - len;
  BIUD_CHECK(payload % sizeof(float) == 0, IoError, "DICOM `{}`: the reader's result is truncated", path);
  if (data) *data = reinterpret_cast<const float*>(bytes.data() + 16 + len);
  if (n) *n = payload / sizeof(float);
  return j;
}

Volume volumeFromOut(const std::string& bytes, const std::string& path) {
  const float* data = nullptr;
  size_t n = 0;
  const json j = parseOut(bytes, path, &data, &n);
  Volume v;
  v.size = j.at("size").get<std::array<int, 3>>();
  v.spacing = j.at("spacing").get<std::array<double, 3>>();
  v.origin = j.at("origin").get<std::array<double, 3>>();
  v.direction = j.at("direction").get<std::array<double, 9>>();
  BIUD_CHECK(v.numel() >= 0 && static_cast<std::uint64_t>(v.numel()) == n, IoError,
             "DICOM `{}`: the reader's result holds {} voxels for a {}x{}x{} volume", path, n, v.size[0], v.size[1],
             v.size[2]);
  v.data.assign(data, data + n);
  return v;
}

void writeOut(const std::string& out, const json& j, const std::vector<float>* data) {
  const std::string head = j.dump();
  const std::uint64_t len = head.size();
  std::string bytes(kMagic, 8);
  bytes.append(reinterpret_cast<const char*>(&len), 8);
  bytes += head;
  if (data) bytes.append(reinterpret_cast<const char*>(data->data()), data->size() * sizeof(float));
  fs::atomicWrite(out, bytes);
}

json volumeJson(const Volume& v) {
  return json{{"size", v.size}, {"spacing", v.spacing}, {"origin", v.origin}, {"direction", v.direction}};
}

const char* errorType(const Error& e) {
  if (dynamic_cast<const DataError*>(&e)) return "DataError";
  if (dynamic_cast<const ValueError*>(&e)) return "ValueError";
  if (dynamic_cast<const ConfigError*>(&e)) return "ConfigError";
  return "IoError";
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

}  // namespace

namespace detail {

bool mayReachGdcm(const std::string& path) {
  std::error_code ec;
  if (stdfs::is_directory(path, ec)) return true;
  for (const char* e : {".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".npz", ".png", ".jpg", ".jpeg"})
    if (endsWithLower(path, e)) return false;
  return true;
}

bool dicomIsolation() {
  if (std::string(envOr("BIUD_DICOM_ISOLATION", "1")) == "0") return false;
  static const bool found = [] {
    const bool ok = !workerPath().empty();
    if (!ok)
      log::debug("image",
                 "biud-dicom-worker not found next to {}: DICOM is read in-process (a damaged file can "
                 "stop this process)",
                 fs::executableDir().string());
    return ok;
  }();
  return found;
}

Volume isolatedRawVolume(const std::string& path, const std::string& series) {
  return volumeFromOut(checkedRun("volume", path, series, "volume"), path);
}

ImageInfo isolatedImageInfo(const std::string& path) {
  const json j = parseOut(checkedRun("info", path, "", "image"), path, nullptr, nullptr);
  ImageInfo info;
  info.dimension = j.at("dimension").get<int>();
  info.size = j.at("size").get<std::vector<int>>();
  info.components = j.at("components").get<int>();
  info.componentType = j.at("componentType").get<std::string>();
  return info;
}

Image2D isolatedImage2D(const std::string& path) {
  return volumeFromOut(checkedRun("image2d", path, "", "image"), path);
}

std::vector<std::pair<std::string, int>> isolatedSeries(const std::string& dir) {
  const json j = parseOut(checkedRun("series", dir, "", "DICOM folder"), dir, nullptr, nullptr);
  std::vector<std::pair<std::string, int>> out;
  for (const auto& s : j.at("series")) out.emplace_back(s.at(0).get<std::string>(), s.at(1).get<int>());
  return out;
}

}  // namespace detail

int dicomWorkerMain(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: biud-dicom-worker volume|info|image2d|series PATH SERIES OUT\n"
                 "Internal helper of biud's readers: reads DICOM in its own process (see DicomWorker.h).\n");
    return 64;
  }
  const std::string op = argv[1], path = argv[2], series = argv[3], out = argv[4];
  ::setenv("BIUD_DICOM_ISOLATION", "0", 1);  // this process reads in-process
  // The caller decides when to stop: Ctrl-C in a terminal reaches the whole process group, and
  // a worker killed by it would look like a damaged file.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  rlimit core{0, 0};
  ::setrlimit(RLIMIT_CORE, &core);
  // Bounded memory: GDCM allocates data-element lengths from the file as given (F6). 2 GiB +
  // 32 bytes per input byte covers a float volume of 16-bit slices several times over. Few
  // threads and arenas keep the reserved address space small. ASan reserves terabytes of address
  // space, so no limit there.
  ::mallopt(M_ARENA_MAX, 2);
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(1);
  if (!kAsan) {
    const double gb = std::atof(envOr("BIUD_DICOM_MAX_GB", "0"));
    const std::uint64_t limit =
        gb > 0 ? static_cast<std::uint64_t>(gb * (1ull << 30)) : (2ull << 30) + 32 * inputBytes(path);
    rlimit as{limit, limit};
    ::setrlimit(RLIMIT_AS, &as);
  }
  try {
    if (op == "volume") {
      const Volume v = detail::readRawInProcess(path, series);
      writeOut(out, volumeJson(v), &v.data);
    } else if (op == "image2d") {
      const Image2D v = detail::readImage2DInProcess(path);
      writeOut(out, volumeJson(v), &v.data);
    } else if (op == "info") {
      const ImageInfo i = detail::readImageInfoInProcess(path);
      writeOut(out,
               json{{"dimension", i.dimension},
                    {"size", i.size},
                    {"components", i.components},
                    {"componentType", i.componentType}},
               nullptr);
    } else if (op == "series") {
      json s = json::array();
      for (const auto& [uid, n] : detail::listDicomSeriesInProcess(path)) s.push_back(json::array({uid, n}));
      writeOut(out, json{{"series", s}}, nullptr);
    } else {
      std::fprintf(stderr, "biud-dicom-worker: unknown operation `%s`\n", op.c_str());
      return 64;
    }
    return 0;
  } catch (const Error& e) {
    fs::atomicWrite(out + ".err", std::string(errorType(e)) + "\n" + e.what());
  } catch (const std::bad_alloc&) {
    fs::atomicWrite(
        out + ".err",
        fmt::format("IoError\nDICOM `{}` is damaged: reading it needs more memory than its size can justify "
                    "(a data-element length in a file is larger than the file?); remove or replace the "
                    "damaged file, or raise BIUD_DICOM_MAX_GB (GiB) for an unusual series",
                    path));
  } catch (const std::exception& e) {
    fs::atomicWrite(out + ".err", fmt::format("IoError\nDICOM `{}` is unreadable: {}", path, e.what()));
  }
  return 2;
}

}  // namespace biud::image
