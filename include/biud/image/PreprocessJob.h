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
  bool interrupted = false;
  double seconds = 0;
  std::string hash;
};

/// Run the job. Items already in the cache with the same preprocessing hash are skipped; a
/// partial record left by a crash is cut off and redone; a cache folder built with other
/// parameters is refused (ConfigError). Writes index.json, failures.jsonl (one JSON object per
/// failed item: id, image, line, error) and returns the counts.
PreprocessSummary runPreprocess(const Manifest& manifest, const CtPreprocessConfig& cfg,
                                const PreprocessJobOptions& opt);

}  // namespace biud::image
