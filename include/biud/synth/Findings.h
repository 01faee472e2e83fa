#pragma once
/// \file Findings.h
/// The ten findings of the synthetic chest benchmark, their ids (the column names of every
/// manifest and label file) and one sampled occurrence of a finding in a study.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "biud/core/Rng.h"

namespace biud::synth {

/// Findings in column order. The ids (findingId) are fixed: other components and the docs use them.
enum class Finding : int {
  LungNodule = 0,
  LungMass,
  PleuralEffusion,
  Pneumothorax,
  Consolidation,
  Emphysema,
  Cardiomegaly,
  PericardialEffusion,
  Atelectasis,
  ArterialCalcification,
};
constexpr int kNumFindings = 10;

/// "lung_nodule", "lung_mass", ... in enum order.
const std::array<std::string, kNumFindings>& findingIds();
const std::string& findingId(Finding f);
/// The finding with id `id`, or nullopt.
std::optional<Finding> findingFromId(const std::string& id);
/// Default prevalence of each finding among non-healthy studies (used where `synth.finding_rates`
/// does not name the finding).
const std::map<std::string, double>& defaultFindingRates();
/// Validate user rates (unknown ids are ConfigErrors naming the id and the allowed ids) and fill in
/// the defaults for the findings the user left out.
std::array<double, kNumFindings> resolveFindingRates(const std::map<std::string, double>& userRates);

enum class Side { None, Right, Left, Bilateral };
const char* sideName(Side s);  ///< "", "right", "left", "bilateral"

/// One finding as placed in a phantom and described in the report. Geometry is in patient mm
/// (LPS physical coordinates of the volume).
struct FindingInstance {
  Finding type = Finding::LungNodule;
  Side side = Side::None;
  std::string lobe;        ///< e.g. "right lower lobe"; empty where not applicable
  double size_mm = 0;      ///< nodule/mass diameter, effusion depth, rim thickness ...
  int severity = 1;        ///< 1 small/mild, 2 moderate, 3 large/severe
  int count = 1;           ///< nodules, calcified spots
  bool uncertain = false;  ///< reported with hedging ("possible", "cannot be excluded"); still label 1
  std::string detail;      ///< finding-specific word (e.g. "coronary", "aortic" for calcification)
  std::array<double, 3> center_mm{0, 0, 0};  ///< where the finding is centred (for checks and meta)
  double extent_mm = 0;                      ///< second size (effusion height, consolidation radius ...)
  double value = 0;                          ///< finding-specific number (cardiothoracic ratio, HU drop of emphysema)
  /// Spheres (x, y, z, radius in mm) that make up the finding: nodules, mass lobules,
  /// emphysematous holes, calcified plaques.
  std::vector<std::array<double, 4>> blobs;
  /// Capsules (x0, y0, z0, x1, y1, z1, radius in mm) inside the finding: the air bronchograms of
  /// a consolidation (painted only where the consolidation is; empty = none, and the report then
  /// does not mention them).
  std::vector<std::array<double, 7>> tubes;
  /// Elevation of the right and left hemidiaphragm in mm caused by the finding (lower-lobe
  /// atelectasis: volume loss); already applied to the Anatomy's dome heights.
  std::array<double, 2> dome_raise_mm{0, 0};
};

/// The labels of a study: 1 where the finding is present (also when reported with hedging).
using Labels = std::array<int, kNumFindings>;

/// Draw which findings a study has: healthy with probability `healthyFraction`, otherwise each
/// finding independently with its rate (at least one).
Labels sampleLabels(Rng& rng, double healthyFraction, const std::array<double, kNumFindings>& rates);

}  // namespace biud::synth
