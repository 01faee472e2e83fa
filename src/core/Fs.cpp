#include "biud/core/Fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include "biud/core/Error.h"

namespace biud::fs {

namespace {

std::atomic<bool> g_sync{true};

void fsyncDir(const stdfs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string uniqueSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<unsigned long>(::getpid())};
  return fmt::format(".tmp.{}.{:x}", ::getpid(), rng() & 0xffffffffULL);
}

}  // namespace

void makeDirs(const stdfs::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  stdfs::create_directories(dir, ec);
  BIUD_CHECK(!ec, IoError, "cannot create folder `{}`: {}", dir.string(), ec.message());
}

AtomicFile::AtomicFile(stdfs::path target) : target_(std::move(target)) {
  makeDirs(target_.parent_path());
  temp_ = target_;
  temp_ += uniqueSuffix();
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  BIUD_SYSCHECK(fd_, "cannot create `{}` (writing `{}`)", temp_.string(), target_.string());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t n) {
  BIUD_CHECK(fd_ >= 0 && !committed_, IoError, "write to closed file `{}`", target_.string());
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    BIUD_SYSCHECK(w < 0 ? -1 : 0, "cannot write `{}`", temp_.string());
    p += w;
    n -= static_cast<std::size_t>(w);
    size_ += static_cast<std::uint64_t>(w);
  }
}

void setSyncEachFile(bool on) { g_sync = on; }
bool syncEachFile() { return g_sync.load(); }
void syncAll() { ::sync(); }

void AtomicFile::commit() {
  if (g_sync.load()) BIUD_SYSCHECK(::fsync(fd_), "cannot flush `{}`", temp_.string());
  BIUD_SYSCHECK(::close(fd_), "cannot close `{}`", temp_.string());
  fd_ = -1;
  BIUD_SYSCHECK(::rename(temp_.c_str(), target_.c_str()), "cannot rename `{}` to `{}`", temp_.string(), target_.string());
  committed_ = true;
  if (g_sync.load()) fsyncDir(target_.parent_path());
}

void atomicWrite(const stdfs::path& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data);
  f.commit();
}

void requireFile(const stdfs::path& path, std::string_view what) {
  std::error_code ec;
  BIUD_CHECK(stdfs::exists(path, ec), IoError, "{} `{}` does not exist", what, path.string());
}

std::string readFile(const stdfs::path& path) {
  requireFile(path, "file");
  std::ifstream in(path, std::ios::binary);
  BIUD_CHECK(in.good(), IoError, "cannot open `{}` for reading", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  BIUD_CHECK(!in.bad(), IoError, "error while reading `{}`", path.string());
  return ss.str();
}

std::vector<std::uint8_t> readBytes(const stdfs::path& path) {
  const std::string s = readFile(path);
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

stdfs::path makeRunDir(const stdfs::path& base, const std::string& name, const std::string& prefix) {
  const stdfs::path dir = base / (name.empty() ? prefix + "-" + timestamp() : name);
  makeDirs(dir);
  return dir;
}

stdfs::path executableDir() {
  std::error_code ec;
  const auto exe = stdfs::read_symlink("/proc/self/exe", ec);
  return ec ? stdfs::current_path() : exe.parent_path();
}

}  // namespace biud::fs
