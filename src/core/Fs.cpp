#include "biud/core/Fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
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
  BIUD_SYSCHECK(::rename(temp_.c_str(), target_.c_str()), "cannot rename `{}` to `{}`", temp_.string(),
                target_.string());
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

std::string readTextFile(const stdfs::path& path, std::uint64_t maxBytes) {
  std::string raw = readFile(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  // Inflate every gzip member (concatenated members are legal, as `zcat` reads them).
  std::string out;
  z_stream zs{};
  BIUD_CHECK(inflateInit2(&zs, 15 + 32) == Z_OK, IoError, "`{}`: cannot start the gzip decoder", path.string());
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(std::min<size_t>(raw.size(), 1u << 30));
  size_t consumed = 0;
  char buf[1 << 16];
  int rc = Z_OK;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    const uInt before = zs.avail_in;
    rc = inflate(&zs, Z_NO_FLUSH);
    consumed += before - zs.avail_in;
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > maxBytes) {
      inflateEnd(&zs);
      BIUD_THROW(IoError, "`{}`: inflates to more than {} bytes; not a table", path.string(), maxBytes);
    }
    if (rc == Z_STREAM_END) {
      if (consumed >= raw.size()) break;
      // Another gzip member follows (or trailing garbage, which is an error below).
      if (raw.size() - consumed < 2 || static_cast<unsigned char>(raw[consumed]) != 0x1f) break;
      inflateReset(&zs);
      continue;
    }
    if (zs.avail_in == 0 && consumed < raw.size()) {
      zs.next_in = reinterpret_cast<Bytef*>(raw.data() + consumed);
      zs.avail_in = static_cast<uInt>(std::min<size_t>(raw.size() - consumed, 1u << 30));
      continue;
    }
    if (rc != Z_OK) break;
    if (zs.avail_in == 0 && consumed >= raw.size() && zs.avail_out != 0) {
      rc = Z_BUF_ERROR;  // all input used, output not full, no stream end: the data ends early
      break;
    }
  }
  inflateEnd(&zs);
  BIUD_CHECK(rc == Z_STREAM_END, IoError,
             "`{}` is a truncated or damaged gzip file ({}); download it again or check it with `gzip -t`",
             path.string(), rc == Z_BUF_ERROR ? "the data ends early" : "corrupt data");
  return out;
}

bool isGzipName(const stdfs::path& path) {
  const std::string n = path.filename().string();
  return n.size() > 3 && (n.compare(n.size() - 3, 3, ".gz") == 0 || n.compare(n.size() - 3, 3, ".GZ") == 0);
}

std::string withoutGz(const std::string& name) { return isGzipName(name) ? name.substr(0, name.size() - 3) : name; }

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
