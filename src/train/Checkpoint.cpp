#include "biud/train/Checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"

namespace biud::train {

CheckpointManager::CheckpointManager(stdfs::path dir, int keepLast) : dir_(std::move(dir)), keepLast_(keepLast) {}

std::string CheckpointManager::folderName(std::int64_t step) { return fmt::format("step_{:06d}", step); }

std::vector<stdfs::path> CheckpointManager::list() const {
  std::vector<stdfs::path> out;
  std::error_code ec;
  if (!stdfs::is_directory(dir_, ec)) return out;
  for (const auto& e : stdfs::directory_iterator(dir_)) {
    const auto name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step_", 0) == 0 && name.find(".tmp") == std::string::npos &&
        name.find(".old-") == std::string::npos && stdfs::exists(e.path() / "state.json"))
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
/// Modification time of `p` itself (a link's own time, not its target's); nullopt when absent.
std::optional<struct timespec> ownMtime(const stdfs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return st.st_mtim;
}
bool later(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}
}  // namespace

std::optional<stdfs::path> CheckpointManager::pointer() const {
  const auto link = dir_ / "latest";
  std::error_code ec;
  const auto st = stdfs::symlink_status(link, ec);
  if (ec || !stdfs::exists(st)) return std::nullopt;
  std::string name;
  if (stdfs::is_symlink(st)) {
    name = stdfs::read_symlink(link, ec).string();  // relative (`step_000500`); an absolute target is used as is
    if (ec) return std::nullopt;
  } else if (stdfs::is_regular_file(st)) {
    name = fs::readFile(link);  // the text form of runs written before the link
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ' || name.back() == '\r')) name.pop_back();
  } else {
    return std::nullopt;
  }
  if (name.empty()) return std::nullopt;
  const auto p = stdfs::path(name).is_absolute() ? stdfs::path(name) : dir_ / name;
  if (!stdfs::exists(p / "state.json", ec)) return std::nullopt;
  return p;
}

std::optional<stdfs::path> CheckpointManager::latest() const {
  auto all = list();
  const auto named = pointer();
  if (!named) {  // `latest` missing, dangling or stale: the complete folder of the highest step
    if (all.empty()) return std::nullopt;
    return all.back();
  }
  // A save renames its folder into place and moves `latest` afterwards: a complete folder of a
  // later step whose state.json is newer than `latest` itself was saved by a process that died
  // in between. (A later step written *before* `latest` moved is from an earlier timeline: the
  // run was resumed from an older checkpoint; `latest` wins then.)
  const auto linkTime = ownMtime(dir_ / "latest");
  for (auto it = all.rbegin(); it != all.rend() && it->filename().string() > named->filename().string(); ++it) {
    const auto t = ownMtime(*it / "state.json");
    if (linkTime && t && later(*t, *linkTime)) return *it;
  }
  return named;
}

void CheckpointManager::setLatest(const std::string& name) const {
  const auto link = dir_ / "latest";
  const auto tmp = dir_ / fmt::format("latest.tmp-{}", ::getpid());
  std::error_code ec;
  stdfs::remove(tmp, ec);
  stdfs::create_symlink(name, tmp, ec);  // relative: the run folder can move
  if (ec) {
    // A file system without symbolic links (some network and FUSE mounts): the text form.
    log::warn("train", "cannot create the symbolic link `{}` ({}): writing `latest` as a text file", tmp.string(),
              ec.message());
    fs::atomicWrite(link, name + "\n");
    return;
  }
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    stdfs::remove(tmp, ec);
    BIUD_THROW(IoError,
               "cannot move `{}` to `{}`: {}; the checkpoint `{}` is complete (resume from it with --resume {})",
               tmp.string(), link.string(), std::strerror(err), (dir_ / name).string(), (dir_ / name).string());
  }
  if (fs::syncEachFile()) {
    const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
}

stdfs::path CheckpointManager::resolve(const std::string& resume) const {
  if (resume == "latest") {
    auto l = latest();
    BIUD_CHECK(l.has_value(), DataError, "--resume latest: no checkpoint in `{}` (start without --resume)",
               dir_.string());
    return *l;
  }
  const stdfs::path p(resume);
  BIUD_CHECK(stdfs::exists(p / "state.json"), DataError,
             "--resume `{}` is not a checkpoint folder (expected {}/state.json; use a folder under <run>/checkpoints "
             "or `latest`)",
             resume, resume);
  return p;
}

size_t CheckpointManager::removeTemporaries() const {
  size_t n = 0;
  std::error_code ec;
  if (!stdfs::is_directory(dir_, ec)) return 0;
  for (const auto& e : stdfs::directory_iterator(dir_, ec)) {
    const auto name = e.path().filename().string();
    const bool link = name.rfind("latest.tmp-", 0) == 0;  // a temporary `latest` link never renamed
    if (!link && (name.rfind("step_", 0) != 0 ||
                  (name.find(".tmp-") == std::string::npos && name.find(".old-") == std::string::npos)))
      continue;
    std::error_code rec;
    stdfs::remove_all(e.path(), rec);
    if (rec)
      log::warn("train", "could not remove the unfinished checkpoint folder `{}`: {}", e.path().string(),
                rec.message());
    else
      ++n;
  }
  if (n > 0)
    log::info("train", "removed {} unfinished checkpoint folder(s) left in `{}` by an interrupted save", n,
              dir_.string());
  return n;
}

stdfs::path CheckpointManager::save(std::int64_t step, const std::function<void(const stdfs::path&)>& write) {
  // A second SIGINT/SIGTERM does not interrupt a save (biud/core/Process.h).
  app::SaveScope saving;
  const auto previous = latest();
  const std::string keep = previous ? fmt::format("; the previous checkpoint `{}` is intact", previous->string())
                                    : std::string("; there is no earlier checkpoint");
  const std::string name = folderName(step);
  const auto final = dir_ / name;
  const auto tmp = dir_ / fmt::format("{}.tmp-{}", name, ::getpid());
  std::error_code ec;
  try {
    fs::makeDirs(dir_);
    stdfs::remove_all(tmp, ec);
    fs::makeDirs(tmp);
    write(tmp);
  } catch (const std::exception& e) {
    stdfs::remove_all(tmp, ec);
    // One line naming the folder, whatever threw (LibTorch appends stack traces).
    if (const auto* be = dynamic_cast<const Error*>(&e))
      BIUD_THROW(IoError, "cannot save checkpoint `{}`: {}{}", final.string(), be->what(), keep);
    BIUD_THROW(IoError, "cannot save checkpoint `{}`: {}{}", final.string(), firstLine(e.what()), keep);
  }
  // A re-save of the same step: the old folder is moved aside first and removed only once the new
  // one is in place, so that no moment exists without a complete checkpoint of this step.
  const auto old = dir_ / fmt::format("{}.old-{}", name, ::getpid());
  const bool had = stdfs::exists(final, ec);
  if (had) {
    stdfs::rename(final, old, ec);
    BIUD_CHECK(!ec, IoError, "cannot move the earlier checkpoint `{}` aside: {}{}", final.string(), ec.message(), keep);
  }
  stdfs::rename(tmp, final, ec);
  if (ec) {
    const std::string why = ec.message();
    if (had) stdfs::rename(old, final, ec);
    stdfs::remove_all(tmp, ec);
    BIUD_THROW(IoError, "cannot rename checkpoint `{}` to `{}`: {}{}", tmp.string(), final.string(), why, keep);
  }
  if (had) stdfs::remove_all(old, ec);
  setLatest(name);
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keepLast_) < all.size(); ++i) {
    stdfs::remove_all(all[i], ec);
    if (ec) log::warn("train", "could not delete old checkpoint {}: {}", all[i].string(), ec.message());
  }
  return final;
}

}  // namespace biud::train
