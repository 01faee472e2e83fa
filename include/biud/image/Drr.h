#pragma once
/// \file Drr.h
/// Digitally reconstructed radiographs: a frontal chest X-ray from a CT-like HU volume.
#include <cstdint>
#include <string>

#include "biud/image/Volume.h"

namespace biud::image {

/// Beer-Lambert parallel-beam projection along the anterior-posterior axis (j):
/// mu = mu_water * (1 + HU / 1000) (clamped at 0), L(i, k) = sum_j mu * spacing_y, I = exp(-L).
/// Returns the line integral L = -log I as an image of size {nx, nz, 1}, row 0 = the most
/// superior slice, column 0 = patient right (radiological display: patient right on the left).
Image2D lineIntegralAP(const Volume& hu, double muWaterPerMm = 0.02);

/// The mean along the anterior-posterior axis (X2CT-CLIP code's mean-intensity projection): same
/// image layout as lineIntegralAP, values in the volume's units.
Image2D meanAP(const Volume& hu);

/// Cone-beam variant of lineIntegralAP: a point source `sourceDistance` mm in front (anterior, -j)
/// of the volume centre; detector pixel (i, k) is the ray through the centre of voxel column
/// (i, *, k) in the coronal plane through the volume centre (a virtual detector at the isocentre,
/// so the image keeps the volume's x/z grid). Each slice j adds mu(x(t), y_j, z(t)) (bilinear in
/// the slice, 0 outside) times the ray length through the slice, spacing_y * |d| / |d_y|. With a
/// very distant source this equals lineIntegralAP. Same image layout as lineIntegralAP.
Image2D lineIntegralAPCone(const Volume& hu, double sourceDistance, double muWaterPerMm = 0.02);

/// Display an X-ray: L normalised by its `quantile` (0..1), raised to `gamma`, bilinearly
/// resampled to width x height. Values in [0, 1]: bone bright, lungs dark, air black.
Image2D displayXray(const Image2D& lineIntegral, int width, int height, double gamma = 1.0, double quantile = 0.995);

/// Write a [0, 1] image as an 8-bit grey PNG (atomic). Row 0 of the image is the top row.
void writePng8(const std::string& path, const Image2D& img);

}  // namespace biud::image
