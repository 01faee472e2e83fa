#pragma once
/// \file Phantom.h
/// Analytic chest phantoms rasterised into HU volumes. Anatomy is described in physical
/// millimetres (LPS: x -> patient left, y -> posterior, z -> superior), so the same patient can be
/// rendered on any grid (CT at 1.5 x 1.5 x 3 mm, a coarse grid for X-ray projection, a shifted
/// grid for the external set).
#include <array>
#include <cstdint>
#include <vector>

#include "biud/core/Rng.h"
#include "biud/image/Volume.h"
#include "biud/synth/Findings.h"

namespace biud::synth {

/// How a study is acquired: the grid and the scanner's imperfections.
struct Acquisition {
  std::array<int, 3> size{128, 128, 64};
  std::array<double, 3> spacing{1.5, 1.5, 3.0};
  double fill = 0.85;                      ///< body width / field-of-view width (sets the patient scale)
  double noise_sd = 12;                    ///< HU, standard deviation of the image noise after blurring
  double slice_thickness_mm = 3.0;         ///< reconstructed slice thickness (blur along z)
  double kernel_sigma_vox = 0.5;           ///< in-plane blur of the reconstruction kernel, voxels
  double hu_scale = 1.0, hu_offset = 0.0;  ///< calibration: HU' = scale * HU + offset
};

/// Tissue and finding classes of the label map (uint8 per voxel). Later paints win.
enum Tissue : std::uint8_t {
  kAir = 0,
  kFat,
  kMuscle,
  kMediastinum,
  kLungRight,
  kLungLeft,
  kHeart,
  kPericardialFat,
  kAbdomen,
  kBone,
  kMarrow,
  kCsf,
  kAirway,
  kAirwayWall,
  kAorta,
  kVessel,
  kStomachGas,
  // findings
  kNodule = 32,
  kMass,
  kFluid,
  kPneumothorax,
  kConsolidation,
  kEmphysema,
  kEmphysemaHole,
  kPericardialFluid,
  kAtelectasis,
  kCalcification,
  kBronchogram,
};

/// One patient's anatomy (mm, physical LPS coordinates of the volume it is rendered into).
struct Anatomy {
  double scale = 0.5;                    ///< patient size relative to a 340 mm wide adult chest
  double cx = 0, cy = 0;                 ///< body centre in the axial plane
  double body_a = 0, body_b = 0;         ///< body half-width (x) and half-depth (y)
  double fat = 0, muscle = 0;            ///< subcutaneous fat and chest-wall thickness
  double cav_a = 0, cav_b = 0;           ///< thoracic cavity (inside the ribs) half-axes
  double z_base = 0, height = 0;         ///< lung base (dome top, mean of sides) and lung height
  double dome_right = 0, dome_left = 0;  ///< dome tops (right higher: the liver)
  double dome_depth = 0;                 ///< how far the costophrenic recesses reach below the domes
  std::array<double, 3> heart_c{0, 0, 0};
  std::array<double, 3> heart_r{0, 0, 0};  ///< semi-axes after any cardiomegaly
  double heart_angle = 0.6;                ///< axial rotation (rad): the apex points left-anterior
  double peri_fat = 0;                     ///< pericardial fat thickness
  double peri_fluid = 0;                   ///< pericardial effusion thickness (0 = none)
  double aorta_r = 0, trachea_r = 0, z_carina = 0, z_arch = 0;
  double lung_hu = -850;  ///< parenchyma attenuation (breathing)
  double fat_hu = -100, muscle_hu = 40;
  std::uint64_t texture_seed = 0;  ///< lung texture, vessel trees, ribs jitter

  /// Lung membership: 0 none, 1 right lung, 2 left lung (before findings, vessels excluded).
  int lungAt(double x, double y, double z) const;
  /// "right upper lobe" ... for a point in a lung (empty elsewhere).
  std::string lobeAt(double x, double y, double z) const;
  double zApex() const { return z_base + height; }
};

/// A rendered study: the HU volume, the label map (same grid) and what was put where.
struct Phantom {
  image::Volume volume;              ///< HU, float
  std::vector<std::uint8_t> labels;  ///< Tissue per voxel
  Anatomy anatomy;
  Acquisition acquisition;
  std::vector<FindingInstance> findings;
};

/// Draw a patient that fills `acq.fill` of the field of view. `cardiomegaly` enlarges the heart
/// (severity 1-3); 0 draws a normal heart.
Anatomy sampleAnatomy(Rng& rng, const Acquisition& acq);

/// Place one instance of every finding whose label is 1 (geometry, laterality, lobe, size,
/// severity). May change the anatomy (cardiomegaly, pericardial effusion).
std::vector<FindingInstance> placeFindings(Rng& rng, Anatomy& anatomy, const Labels& labels);

/// Rasterise anatomy + findings on `acq`'s grid (centred on the origin), add blur and noise drawn
/// from `noiseSeed`. `withLabels` keeps the label map.
Phantom render(const Anatomy& anatomy, const std::vector<FindingInstance>& findings, const Acquisition& acq,
               std::uint64_t noiseSeed, bool withLabels);

/// Physical coordinate of voxel index `i` along `axis` for a grid centred on the origin.
inline double voxelToMm(const Acquisition& acq, int axis, double i) {
  return (i - 0.5 * (acq.size[axis] - 1)) * acq.spacing[axis];
}

}  // namespace biud::synth
