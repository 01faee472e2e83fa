#pragma once
/// \file PreprocessJob.h
/// The work behind `biud-preprocess`: read every manifest item's CT, preprocess it and append it
/// to the cache, in parallel over volumes; resumable; failures recorded and skipped.
#include <string>
#include <vector>

#include "biud/config/DataConfig.h"
#include "biud/image/Manifest.h"

namespace biud::image {

struct PreprocessJobOptions {
  std::string out;          ///< cache folder
  int threads = 0;          ///< 0 = hardware threads
  bool progress = true;
};

struct PreprocessSummary {
  size_t total = 0, done = 0, skipped = 0, failed = 0;
  size_t disagreed = 0;    ///< volumes whose header disagreed with the manifest's overrides
  size_t implausible = 0;  ///< volumes that failed data.ct.hu_check (warned, or failed with `error`)
  bool interrupted = false;
  double seconds = 0;
  std::string hash;
};

/// Read the CT of a manifest item: its first image, with the item's header overrides
/// (spacing, rescale, orientation, origin from the manifest) applied, in LPS+. One line per
/// override that disagrees with the file's header goes to `disagreements`.
Volume readItemVolume(const ManifestItem& it, std::vector<std::string>* disagreements = nullptr);

/// data.ct.hu_check on a HU volume (before resampling): an empty string when the values look
/// like chest-CT HU (at least data.ct.min_air_fraction of the voxels in [-1100, -900]) or the
/// check is off; otherwise the reason, naming `what` — thrown as DataError with `error`.
std::string checkHu(const Volume& hu, const CtPreprocessConfig& cfg, const std::string& what);

/// Run the job. Items already in the cache with the same preprocessing hash are skipped; a
/// partial record left by a crash is cut off and redone; a cache folder built with other
/// parameters is refused (ConfigError). Writes index.json, failures.jsonl (one JSON object per
/// failed item: id, image, line, error), notes.jsonl (one JSON object per item whose header
/// disagreed with its manifest overrides or whose HU values look implausible: id, image, notes)
/// and returns the counts.
PreprocessSummary runPreprocess(const Manifest& manifest, const CtPreprocessConfig& cfg,
                                const PreprocessJobOptions& opt);

}  // namespace biud::image
