#pragma once
// Internal to src/image: the in-process readers (VolumeIO.cpp) and their isolated twins
// (DicomWorker.cpp). Public entry points are in include/biud/image/VolumeIO.h.
#include <string>
#include <utility>
#include <vector>

#include "biud/image/VolumeIO.h"

namespace biud::image::detail {

/// True when a read of `path` may reach GDCM: a folder, or a file that is not NIfTI, MetaImage,
/// NRRD, .npz, PNG or JPEG by its name.
bool mayReachGdcm(const std::string& path);
/// True when isolated reads are wanted and possible (not disabled, not inside the worker, worker found).
bool dicomIsolation();

// In-process readers (VolumeIO.cpp), exactly what the public functions did before isolation.
Volume readRawInProcess(const std::string& path, const std::string& series);
ImageInfo readImageInfoInProcess(const std::string& path);
Image2D readImage2DInProcess(const std::string& path);
std::vector<std::pair<std::string, int>> listDicomSeriesInProcess(const std::string& dir);

// The same through the worker process (DicomWorker.cpp).
Volume isolatedRawVolume(const std::string& path, const std::string& series);
ImageInfo isolatedImageInfo(const std::string& path);
Image2D isolatedImage2D(const std::string& path);
std::vector<std::pair<std::string, int>> isolatedSeries(const std::string& dir);

}  // namespace biud::image::detail
