#pragma once
/// \file Nifti.h
/// A minimal NIfTI-1 writer (.nii / .nii.gz, int16 HU) so that biud-synth does not depend on
/// the image I/O layer. To be replaced by image::writeVolume (include/biud/image/VolumeIO.h)
/// once that exists; it writes the same geometry.
#include <string>

#include "biud/image/Volume.h"

namespace biud::synth {

/// Write `v` (LPS, HU) as NIfTI-1 with int16 voxels (rounded, clamped to [-32768, 32767]).
/// NIfTI's world space is RAS: the affine is the LPS affine with its x and y rows negated, stored
/// both as qform (code 1, scanner) and sform (code 1). `.gz` suffix -> gzip. Written atomically.
void writeNifti(const std::string& path, const image::Volume& v, int gzipLevel = 1);
/// The bytes writeNifti would write (gzip-compressed when `path` ends in `.gz`).
std::string encodeNifti(const image::Volume& v, const std::string& path, int gzipLevel = 1);

}  // namespace biud::synth
