#pragma once
/// \file Checkpoint.h
/// Checkpoint folders under <run>/checkpoints/: step_000500/{model.safetensors, ema.safetensors,
/// config.json, vocab.txt, optimizer.pt, rng.pt, state.json}. A checkpoint is written into a
/// temporary folder and renamed when complete; `latest` is then replaced atomically (a temporary
/// symlink renamed over it), so a crash at any moment leaves the previous checkpoint usable. Only
/// the newest `keep_last` stay.
///
/// `latest` is a relative symbolic link to the newest folder (`latest -> step_000500`), the form
/// Python tooling expects (open `run/checkpoints/latest/model.safetensors`). Runs written before
/// the switch hold a text file with the folder name; it is still read, and replaced by the link at
/// their next save. On a file system without symbolic links the text file is written instead.
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
  /// Newest complete checkpoint, if any: the one `latest` names (link or text file), unless a
  /// complete folder of a later step was written after `latest` was (the process died between
  /// renaming that folder into place and moving `latest`); without a usable `latest`, the
  /// complete folder of the highest step.
  std::optional<stdfs::path> latest() const;
  /// The folder `latest` names (link or old text file) when it is a complete checkpoint.
  std::optional<stdfs::path> pointer() const;
  /// Complete checkpoints, oldest first.
  std::vector<stdfs::path> list() const;
  /// `latest` -> newest in this run (DataError if none); a path -> that folder (checked).
  stdfs::path resolve(const std::string& resume) const;
  /// Remove the temporary folders of saves that never finished (`step_N.tmp-PID`,
  /// `step_N.old-PID`) and temporary links (`latest.tmp-PID`): called once when a run starts.
  /// Returns how many.
  size_t removeTemporaries() const;
  const stdfs::path& dir() const { return dir_; }
  static std::string folderName(std::int64_t step);
  /// Point `latest` at the folder `name` (atomically: a temporary link renamed over it; the text
  /// file where links cannot be made).
  void setLatest(const std::string& name) const;

 private:
  stdfs::path dir_;
  int keepLast_;
};

}  // namespace biud::train
