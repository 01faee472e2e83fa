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
  std::string out;  ///< cache folder
  int threads = 0;  ///< 0 = hardware threads
  bool progress = true;
  /// Re-check the crc32 of every record already in the cache before skipping its item
  /// (damaged records are redone). Off = trust them (biud-preprocess --trust-existing).
  bool verifyExisting = true;
};

struct PreprocessSummary {
  size_t total = 0, done = 0, skipped = 0, failed = 0;
  size_t disagreed = 0;    ///< volumes whose header disagreed with the manifest's overrides
  size_t implausible = 0;  ///< volumes that failed data.ct.hu_check (warned, or failed with `error`)
  size_t damaged = 0;      ///< records of earlier runs that failed their checksum (redone)
  bool interrupted = false;
  double seconds = 0;
  std::string hash;
};

/// Read the CT of a manifest item: its first image, with the item's header overrides
/// (spacing, rescale, orientation, origin from the manifest) applied, in LPS+. One line per
/// override that disagrees with the file's header goes to `disagreements`.
/// `spacingRange` is data.ct.spacing_range: a spacing outside it (after the overrides) is an error.
Volume readItemVolume(const ManifestItem& it, std::vector<std::string>* disagreements = nullptr,
                      const std::vector<double>& spacingRange = {0.05, 20.0});

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

/// What an evaluation app reads (biud-zeroshot, biud-embed, biud-finetune, biud-report): the
/// items of `splits` (all when empty) served from a cache, never from raw volumes decoded again
/// at every call. `cacheDir` (data.cache_dir) is used when it holds these preprocessing
/// parameters and every evaluated item (or records why it could not read one); otherwise the
/// items are preprocessed now into `fallbackDir` (resumable: a second call finds them there). Items that cannot be read
/// are left out of `manifest` and listed in `failures` (one JSON object per line: id, image, line, error), so one bad
/// volume costs its own result only.
struct EvalCache {
  Manifest manifest;                  ///< the items that can be evaluated (same order)
  std::string cacheDir;               ///< the cache that holds them
  std::vector<std::string> failures;  ///< JSON lines
  size_t built = 0;                   ///< items preprocessed by this call
};
EvalCache prepareEvalCache(const Manifest& m, const std::vector<std::string>& splits, const CtPreprocessConfig& cfg,
                           const std::string& cacheDir, const std::string& fallbackDir, int threads = 0,
                           bool progress = true);

}  // namespace biud::image
