#pragma once
/// \file Dataset.h
/// The synthetic benchmark as files (biud-synth): CT volumes with reports, a separate X-ray
/// corpus with its own reports (the teacher's data), labels, splits and an external test set with
/// shifted acquisition. Layout and columns: docs/synth.md.
///
/// Deterministic: case `i` of a cohort is drawn from deriveSeed(deriveSeed(seed, cohort), i) only,
/// so the files do not depend on the number of threads.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "biud/config/SynthConfig.h"
#include "biud/synth/Findings.h"
#include "biud/synth/Phantom.h"
#include "biud/synth/Report.h"

namespace biud::synth {

/// Which population a case belongs to; each has its own seed stream and acquisition.
enum class Cohort { CT, External, XRay };
const char* cohortName(Cohort c);  ///< "ct", "external", "cxr"

/// Draw the acquisition of one case of `cohort` (grid from the config, scanner variation).
Acquisition sampleAcquisition(Rng& rng, const SynthConfig& cfg, Cohort cohort);

/// One generated case in memory: exactly what generateDataset writes for it.
struct SynthCase {
  std::string id, patient;
  Cohort cohort = Cohort::CT;
  Labels labels{};
  Phantom phantom;      ///< HU volume (CT cohorts) or the coarse phantom the X-ray was projected from
  image::Image2D xray;  ///< [0, 1] frontal X-ray (XRay cohort only)
  Report report;
};

/// Generate case `index` of `cohort`. `withLabelMap` keeps the phantom's label map (tests).
SynthCase makeCase(const SynthConfig& cfg, std::uint64_t seed, Cohort cohort, int index, bool withLabelMap = false);

/// Split of every case: a seeded permutation cut by the `split` fractions (train, val, test).
std::vector<std::string> assignSplits(int n, const std::vector<double>& fractions, std::uint64_t seed);

struct GenerateOptions {
  std::string out;  ///< output folder (created)
  std::uint64_t seed = 0;
  int threads = 0;             ///< 0 = all cores
  bool meta = true;            ///< write ct/meta.jsonl (acquisition, anatomy landmarks, finding geometry)
  std::function<bool()> stop;  ///< polled between cases; true = stop early (files written so far are complete)
};

struct GenerateSummary {
  int n_ct = 0, n_external = 0, n_cxr = 0;
  double seconds_ct = 0, seconds_cxr = 0;
  std::array<int, kNumFindings> ct_positives{}, cxr_positives{};
  int ct_healthy = 0, cxr_healthy = 0;
  bool stopped = false;
};

/// Write the whole data set into `opt.out`. Throws ConfigError on invalid settings.
GenerateSummary generateDataset(const SynthConfig& cfg, const GenerateOptions& opt);

/// One CSV field quoted per RFC 4180 when it holds a comma, quote, CR or LF.
std::string csvField(const std::string& s);

}  // namespace biud::synth
