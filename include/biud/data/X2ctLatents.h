#pragma once
/// \file X2ctLatents.h
/// The frozen CT/report latents of an x2ct run (X2ctTask.h writes them at its start;
/// biud-x2ct-eval reads them) and where an x2ct run finds its X-rays and latents. Data side: no
/// task code, so evaluation (evaluate/X2ctEval.h) reads them without the task.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "biud/config/Config.h"

namespace biud::data {

/// Frozen latents of the CTs and their reports, one row per CT (normalised, [N, d], float32, CPU).
struct X2ctLatents {
  std::vector<std::string> ids;
  torch::Tensor ct, report;
  std::string key;  ///< what they were computed from (checkpoint, manifest, report sections)
  /// Row of `id`, or -1.
  std::int64_t row(const std::string& id) const;
  std::map<std::string, std::int64_t> index;
};

/// Read `path` (safetensors: `ct`, `report`; metadata: `ids` as JSON, `key`). IoError/DataError
/// naming the file when it is unreadable.
X2ctLatents readX2ctLatents(const std::string& path);
/// Write atomically.
void writeX2ctLatents(const std::string& path, const X2ctLatents& l);
/// The CT an X-ray belongs to: its id up to the first `#` (biud-drr writes one X-ray per CT with
/// the CT's id; several views of one scan can be listed as `<ct id>#<view>`).
std::string x2ctScanId(const std::string& xrayId);
/// Where a run keeps its latents: x2ct.latent_cache, or <runDir>/latents.safetensors.
std::string x2ctLatentPath(const Config& cfg, const std::string& runDir);
/// The X-ray manifest of the task: x2ct.xray_manifest, or data.xray_manifest.
std::string x2ctXrayManifest(const Config& cfg);

}  // namespace biud::data
