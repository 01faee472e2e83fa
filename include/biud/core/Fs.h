#pragma once
/// \file Fs.h
/// File helpers. Everything a user keeps is written atomically: a temp file in the same folder,
/// fsync, rename over the target, fsync of the folder. A crash leaves the old file or the new.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace biud::fs {

namespace stdfs = std::filesystem;

/// Write `data` to `path` atomically (creates parent folders).
void atomicWrite(const stdfs::path& path, std::string_view data);
/// Whether atomic writes fsync each file before the rename (default on: survives power loss).
/// Tools that write thousands of small files (biud-synth, biud-drr) turn it off and call
/// syncAll() once at the end; the temp + rename keeps every file whole either way.
void setSyncEachFile(bool on);
bool syncEachFile();
/// Flush every file system buffer to disk (sync(2)).
void syncAll();
/// Read a whole file; IoError naming the file if it cannot.
std::string readFile(const stdfs::path& path);
/// Read a whole text file (a table, a manifest, a report), inflating it first when it is
/// gzip-compressed (starts with the gzip magic bytes, e.g. PhysioNet's `.csv.gz`): the same
/// bytes as `zcat file`. IoError naming the file when it cannot be read or the gzip stream is
/// truncated or damaged; the inflated size is bounded by `maxBytes`.
std::string readTextFile(const stdfs::path& path, std::uint64_t maxBytes = std::uint64_t{16} << 30);
/// Whether a path names a gzip-compressed table (ends in `.gz`, case-insensitive).
bool isGzipName(const stdfs::path& path);
/// The file name without a trailing `.gz` (`labels.csv.gz` -> `labels.csv`), for extension checks.
std::string withoutGz(const std::string& name);
/// Read a whole binary file.
std::vector<std::uint8_t> readBytes(const stdfs::path& path);
/// IoError naming the file (and `what` it should be) unless it exists.
void requireFile(const stdfs::path& path, std::string_view what = "input file");
/// Create a folder and its parents; IoError on failure.
void makeDirs(const stdfs::path& dir);

/// Streaming atomic writer: write() pieces, then commit(). Destroyed without commit() = discarded.
class AtomicFile {
 public:
  explicit AtomicFile(stdfs::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, std::size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// Bytes written so far.
  std::uint64_t size() const { return size_; }
  void commit();
  const stdfs::path& tempPath() const { return temp_; }

 private:
  stdfs::path target_, temp_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool committed_ = false;
};

/// `base/<name>`; when `name` is empty, `base/<prefix>-YYYYmmdd-HHMMSS`. Created if missing.
stdfs::path makeRunDir(const stdfs::path& base, const std::string& name, const std::string& prefix = "run");
/// Current local time as "YYYYmmdd-HHMMSS".
std::string timestamp();
/// Directory holding the running executable (for finding sibling libraries and data).
stdfs::path executableDir();

}  // namespace biud::fs
