#include "biud/train/Checkpoint.h"

#include <unistd.h>

#include <algorithm>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"

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
        stdfs::exists(e.path() / "state.json"))
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<stdfs::path> CheckpointManager::latest() const {
  const auto pointer = dir_ / "latest";
  std::error_code ec;
  if (stdfs::exists(pointer, ec)) {
    std::string name = fs::readFile(pointer);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const auto p = dir_ / name;
    if (stdfs::exists(p / "state.json", ec)) return p;
  }
  auto all = list();  // `latest` missing or stale: fall back to the newest complete folder
  if (all.empty()) return std::nullopt;
  return all.back();
}

stdfs::path CheckpointManager::resolve(const std::string& resume) const {
  if (resume == "latest") {
    auto l = latest();
    BIUD_CHECK(l.has_value(), DataError, "--resume latest: no checkpoint in `{}` (start without --resume)", dir_.string());
    return *l;
  }
  const stdfs::path p(resume);
  BIUD_CHECK(stdfs::exists(p / "state.json"), DataError,
             "--resume `{}` is not a checkpoint folder (expected {}/state.json; use a folder under <run>/checkpoints or `latest`)",
             resume, resume);
  return p;
}

stdfs::path CheckpointManager::save(std::int64_t step, const std::function<void(const stdfs::path&)>& write) {
  fs::makeDirs(dir_);
  const std::string name = folderName(step);
  const auto final = dir_ / name;
  const auto tmp = dir_ / fmt::format("{}.tmp-{}", name, ::getpid());
  std::error_code ec;
  stdfs::remove_all(tmp, ec);
  fs::makeDirs(tmp);
  try {
    write(tmp);
  } catch (...) {
    stdfs::remove_all(tmp, ec);
    throw;
  }
  if (stdfs::exists(final, ec)) stdfs::remove_all(final, ec);  // re-save of the same step
  stdfs::rename(tmp, final, ec);
  BIUD_CHECK(!ec, IoError, "cannot rename checkpoint `{}` to `{}`: {}", tmp.string(), final.string(), ec.message());
  fs::atomicWrite(dir_ / "latest", name + "\n");
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keepLast_) < all.size(); ++i) {
    stdfs::remove_all(all[i], ec);
    if (ec) log::warn("train", "could not delete old checkpoint {}: {}", all[i].string(), ec.message());
  }
  return final;
}

}  // namespace biud::train
