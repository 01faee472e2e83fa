#pragma once
/// \file ProjectionJob.h
/// The work behind `biud-drr`: one simulated frontal X-ray per CT of a manifest (or of a folder),
/// in parallel over volumes, resumable, with a paired X-ray manifest (same ids as the CTs).
#include <string>
#include <vector>

#include "biud/config/X2ctConfig.h"
#include "biud/image/Manifest.h"

namespace biud::image {

struct DrrJobOptions {
  std::string out;  ///< output folder: images/<id>.png, manifest.csv, drr.json, failures.jsonl
  int threads = 0;  ///< 0 = hardware threads
  bool progress = true;
};

struct DrrSummary {
  size_t total = 0, done = 0, skipped = 0, failed = 0;
  bool interrupted = false;
  double seconds = 0;
  std::string hash;
};

/// A manifest of the CT volumes under `dir` (recursively): every NIfTI/MetaImage/NRRD file, and
/// every folder holding DICOM files (.dcm, or files named like DICOM series without extension are
/// not guessed). id = the path relative to `dir` without extension, `/` replaced by `_`. No
/// reports, splits or labels. DataError when nothing is found.
Manifest scanVolumeFolder(const std::string& dir);

/// The PNG path of item `id` relative to the output folder: `images/<id>.png`.
std::string drrImagePath(const std::string& id);

/// Run the job. Items whose PNG exists from an earlier run with the same parameters are skipped
/// (PNGs are written atomically, so an existing file is whole); an output folder made with other
/// parameters is refused (ConfigError). Writes drr.json (parameters and hash), manifest.csv (the
/// manifest's columns: report sections, split, patient and labels, with `image` = the X-ray; only
/// items that have an X-ray) and failures.jsonl (id, image, line, error per failed item).
DrrSummary runDrr(const Manifest& manifest, const DrrConfig& cfg, const DrrJobOptions& opt);

}  // namespace biud::image
