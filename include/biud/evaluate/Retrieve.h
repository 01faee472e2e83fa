#pragma once
/// \file Retrieve.h
/// biud-retrieve: language-guided retrieval (METHOD §2). Pairs every CT study with the X-rays of
/// the teacher corpus whose reports are closest to its own and caches the teacher features of the
/// kept X-rays. The report features come either from the frozen teacher's text tower (default) or
/// from precomputed feature files (ctFeatures / xrayFeatures); the teacher image features either
/// from the teacher's image tower or from imageFeatures. The passes run in resumable chunks
/// (retrieval/Chunked.h); the search is retrieval/TopK.h. Each source is set up by its own
/// function; a further pairing source (another feature kind, a fixed pairing) is one more.
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"

namespace biud::evaluate {

/// biud-retrieve's flags (see its --help).
struct RetrieveOptions {
  std::string teacher;  ///< clip2d run; empty: model.teacher
  int topK = 5;
  std::int64_t block = 8192, queryBlock = 4096, chunk = 4096, stopAfter = -1;
  std::string precision = "fp32";
  bool keepWork = false, fresh = false, normalize = false;
  std::string ctFeatures, ctIds, xrayFeatures, xrayIds, imageFeatures, imageIds;
  bool featureMode() const { return !ctFeatures.empty() || !xrayFeatures.empty(); }
  /// Called once the sources are set up: the output folder.
  std::function<std::string()> prepareOut;
};

struct RetrieveResult {
  bool complete = false;  ///< false: stopped (signal or stopAfter); the finished chunks are kept
  std::string out, pairing;
  nlohmann::json json;  ///< what <out>/retrieve.json holds (when complete)
};

/// Pair, then write <out>/pairing.csv, <out>/teacher_features.safetensors and <out>/retrieve.json
/// (work chunks in <out>/retrieve-work/, removed unless keepWork). `cfg`: data.manifest,
/// data.xray_manifest, data.report_sections, model.teacher (paths already absolute).
RetrieveResult retrieve(const RetrieveOptions& opt, const Config& cfg, const c10::Device& device);

}  // namespace biud::evaluate
