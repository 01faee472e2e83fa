#pragma once
/// \file Manifest.h
/// Dataset manifests (torch-free, so that the synthetic generator and the evaluation tools can
/// use them): one item per line of a CSV or JSONL file.
///
/// Columns (CSV header or JSON keys):
///   `id`        required, unique
///   `image`     required; several images separated by `;` (CSV) or a JSON array; paths relative
///               to the manifest's folder unless absolute
///   `report`, `findings`, `impression`   optional report text (whole, or sections)
///   `split`     optional (train / val / test ...)
///   `patient`   optional; items of one patient never share a batch (unique_patient sampler)
///   `spacing_x`, `spacing_y`, `spacing_z`, `rescale_slope`, `rescale_intercept`, `orientation`,
///   `origin`    optional per-item facts that override the volume file's header (VolumeOverrides,
///               Volume.h): public releases keep them in metadata tables (CT-RATE)
///   anything else: a label column, 0/1 (also 0.0/1.0, true/false); empty, NaN or -1 = unknown.
/// A column that is neither known nor a valid label column is an error naming the column, the
/// file, the line and the value.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "biud/image/Volume.h"

namespace biud::image {

struct ManifestItem {
  std::string id;
  std::vector<std::string> images;  ///< resolved paths
  std::string report, findings, impression;
  std::string split, patient;
  std::vector<float> labels;  ///< one per Manifest::labelNames; NaN = unknown
  VolumeOverrides overrides;  ///< header facts replaced from the manifest (CT volumes)
  int line = 0;               ///< 1-based line in the manifest (CSV: first line of the record)

  /// Report text from the named sections ("findings", "impression", "report"), joined by a space;
  /// falls back to `report` when the sections are empty.
  std::string text(const std::vector<std::string>& sections = {"findings", "impression"}) const;
  /// Group key for batching: the patient, or the id when no patient is given.
  const std::string& group() const { return patient.empty() ? id : patient; }
};

struct ManifestOptions {
  /// Label columns to use, in this order; empty = every column that is not a known one.
  /// A name not in the file is an error.
  std::vector<std::string> labels;
  /// Extra columns to ignore (neither known nor labels), e.g. metadata.
  std::vector<std::string> ignore;
  /// Check that every image path exists (off: biud-preprocess reports missing files per item).
  bool checkFiles = false;
};

struct Manifest {
  std::string path;
  std::vector<std::string> labelNames;
  std::vector<ManifestItem> items;

  /// Indices of the items of one split (all items when `split` is empty).
  std::vector<size_t> indicesOf(const std::string& split) const;
  /// Index of an id, or -1.
  long find(const std::string& id) const;
};

/// Read a CSV (.csv) or JSON-lines (.jsonl) manifest. Throws DataError/IoError naming file,
/// line and column.
Manifest readManifest(const std::string& path, const ManifestOptions& opt = {});
/// Write a manifest as CSV (paths as given, labels as 0/1/empty), atomically. The override
/// columns are written when any item has overrides (empty where an item has none).
void writeManifestCsv(const std::string& path, const Manifest& m);

/// Public releases (CT-RATE, MIMIC-CXR-JPG, ...) are turned into manifests by the importers of
/// Import.h (`biud-import`).

/// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines. `lines` gets the
/// 1-based line each record starts on.
std::vector<std::vector<std::string>> parseCsv(const std::string& text, const std::string& name,
                                               std::vector<int>* lines = nullptr);

/// The numbers in one table field, separated by spaces, commas, semicolons or backslashes and
/// optionally in brackets or quotes (`[0.75, 0.75]`, `1\\0\\0\\0\\1\\0` as DICOM writes
/// them, `(-170.5, -180, 55)`). `ok` (if given) is false when a piece is not a number.
std::vector<double> parseNumberList(const std::string& field, bool* ok = nullptr);

/// FINDINGS / IMPRESSION sections of a free-text radiology report (case-insensitive headings).
void splitReportSections(const std::string& report, std::string& findings, std::string& impression);

}  // namespace biud::image
