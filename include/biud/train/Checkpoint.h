#pragma once
/// \file Checkpoint.h
/// Checkpoint folders under <run>/checkpoints/: step_000500/{model.pt, optimizer.pt, rng.pt,
/// state.json, rank<k>.json}. A checkpoint is written into a temporary folder and renamed when
/// complete; `latest` (a file holding the folder name) is replaced atomically afterwards, so a
/// crash at any moment leaves the previous checkpoint usable. Only the newest `keep_last` stay.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace biud::train {

namespace stdfs = std::filesystem;

class CheckpointManager {
 public:
  CheckpointManager(stdfs::path dir, int keepLast);
  /// Write a checkpoint for `step` through `write(folder)`; returns the final folder. Any failure
  /// (a full disk, a read-only or vanished folder) is one IoError naming the checkpoint and saying
  /// that the previous one is intact; nothing of the failed save remains. A second signal during
  /// the save does not interrupt it (app::SaveScope).
  stdfs::path save(std::int64_t step, const std::function<void(const stdfs::path&)>& write);
  /// Newest complete checkpoint, if any.
  std::optional<stdfs::path> latest() const;
  /// Complete checkpoints, oldest first.
  std::vector<stdfs::path> list() const;
  /// `latest` -> newest in this run (DataError if none); a path -> that folder (checked).
  stdfs::path resolve(const std::string& resume) const;
  /// Remove the temporary folders of saves that never finished (`step_N.tmp-PID`,
  /// `step_N.old-PID`): called once when a run starts. Returns how many.
  size_t removeTemporaries() const;
  const stdfs::path& dir() const { return dir_; }
  static std::string folderName(std::int64_t step);

 private:
  stdfs::path dir_;
  int keepLast_;
};

}  // namespace biud::train
