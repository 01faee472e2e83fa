#pragma once
/// \file Import.h
/// Public data set releases -> biud's standard manifest (Manifest.h), each read the way the
/// release lays itself out (its folders, CSV files and columns, label names), torch-free.
/// `biud-import <dataset> --root DIR --out DIR` writes `manifest.csv` and `import.json`.
///
/// Every importer records what it read, what it kept and what it skipped with the reason, so a
/// user can see that nothing was silently dropped.
#include <map>
#include <string>
#include <vector>

#include "biud/image/Manifest.h"

namespace biud::image {

/// One row of a release that did not become a manifest item, and why.
struct ImportSkip {
  std::string file;    ///< the table the row is in
  int line = 0;        ///< its 1-based line there (0 = not tied to a line)
  std::string id;      ///< the item it would have been
  std::string reason;  ///< short and stable ("volume file not found", ...), counted in import.json
};

struct ImportResult {
  Manifest manifest;
  std::string dataset;                 ///< "ct-rate", "mimic-cxr", "rad-chestct"
  std::vector<std::string> filesRead;  ///< every table read, in order
  std::vector<ImportSkip> skipped;
  std::vector<std::string> notes;  ///< things a user should know (a table missing, a convention applied)
};

/// Write `<out>/manifest.csv` (image paths made absolute: the importers build them from the
/// root as given, a manifest resolves relative paths against its own folder) and `<out>/import.json` (dataset, options,
/// files read, counts per split, label positives per label, skipped rows counted by reason with the first 100 listed,
/// notes), atomically. `options` is stored as given.
void writeImport(const std::string& outDir, const ImportResult& r, const std::map<std::string, std::string>& options);

/// CT-RATE (Hamamci et al. 2024; the Hugging Face release `ibrahimhamamci/CT-RATE`). `root` is
/// the release folder (the one holding `dataset/`, or `dataset/` itself):
///   dataset/radiology_text_reports/{train_reports,validation_reports}.csv
///       VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN
///   dataset/multi_abnormality_labels/{train,valid}_predicted_labels.csv   VolumeName + 18 labels
///   dataset/metadata/{train,validation}_metadata.csv
///       VolumeName, XYSpacing ("[x, y]"), ZSpacing, RescaleSlope, RescaleIntercept,
///       ImageOrientationPatient, ImagePositionPatient, ...
///   dataset/{train,valid}/<split>_<patient>/<split>_<patient>_<scan>/<split>_<patient>_<scan>_<rec>.nii.gz
struct CtRateImportOptions {
  std::string root;
  /// Folder holding the `train/` and `valid/` volume folders (default: <dataset>/); e.g. a
  /// re-exported copy such as `train_fixed/` is named with volumeDirs below.
  std::string volumeRoot;
  /// Folder name of each split's volumes under volumeRoot (default train, valid).
  std::map<std::string, std::string> volumeDirs;
  std::vector<std::string> splits = {"train", "valid"};
  /// Keep one reconstruction per scan (the lowest reconstruction number with a volume file).
  bool oneReconstruction = false;
  /// "metadata": HU = RescaleSlope * v + RescaleIntercept with the metadata's values (the released
  /// files store raw values; CT-CLIP's convention). "file": the files already hold HU (a copy
  /// re-exported with fixed headers): no rescale column is written.
  std::string rescale = "metadata";
  /// Write the metadata's spacing/orientation/origin as header overrides (CT-RATE's NIfTI
  /// headers do not carry them).
  bool geometry = true;
  /// Fraction of training patients moved to split `val` (chosen by a hash of the patient id, so
  /// the same on every machine); CT-RATE's `valid` set becomes split `test` (the benchmark set
  /// of CT-CLIP and BIUD).
  double valFraction = 0.02;
  /// Skip rows whose volume file does not exist (off: keep them; biud-preprocess reports them).
  bool checkFiles = true;
};
ImportResult importCtRate(const CtRateImportOptions& opt);

/// MIMIC-CXR-JPG (Johnson et al. 2019; PhysioNet `mimic-cxr-jpg`, 2.0.0 / 2.1.0). `root` is the
/// release folder:
///   mimic-cxr-2.0.0-split.csv.gz     dicom_id, study_id, subject_id, split (train/validate/test)
///   mimic-cxr-2.0.0-metadata.csv.gz  dicom_id, ..., ViewPosition (PA, AP, LATERAL, LL, ...)
///   mimic-cxr-2.0.0-chexpert.csv.gz  subject_id, study_id + 14 CheXpert labels (1.0, 0.0, -1.0, empty)
///   files/p10/p10000032/s50414267/<dicom_id>.jpg
/// and the free-text reports of MIMIC-CXR (`mimic-cxr-reports.zip`, unpacked: files/pXX/pSUBJECT/
/// sSTUDY.txt; FINDINGS:/IMPRESSION: sections) under `reports` (default: root).
/// id = dicom_id, patient = subject_id, split validate -> val; labels are per study.
struct MimicCxrImportOptions {
  std::string root;
  std::string reports;
  /// ViewPosition values kept (default frontal: PA, AP); empty = every image.
  std::vector<std::string> views = {"PA", "AP"};
  /// Label table: chexpert (default), negbio, or empty for none.
  std::string labels = "chexpert";
  /// -1.0 (uncertain) and empty (not mentioned): unknown, positive or negative.
  std::string uncertain = "unknown";
  std::string blank = "unknown";
  bool checkFiles = true;
  /// Skip images whose study has no FINDINGS/IMPRESSION text (retrieval and training need one).
  bool requireReport = false;
};
ImportResult importMimicCxr(const MimicCxrImportOptions& opt);

/// A user's own labelled CT set: `root` holds one entry per CT — a volume file (.nii.gz, .nii,
/// .mha, .mhd, .nrrd, .npz) or a folder holding one DICOM series — and `labels` is a CSV with an
/// id column (the file name without extension, or the folder name) and one 0/1 column per label
/// (empty or -1 = unknown), optionally patient, split and report columns. Without a split column
/// the splits are drawn by a hash of the patient (or item) id.
struct FolderImportOptions {
  std::string root, labels;
  std::string idColumn = "id", patientColumn, splitColumn, reportColumn;
  std::vector<std::string> ignoreColumns;
  double valFraction = 0.1, testFraction = 0.2;
};
ImportResult importFolder(const FolderImportOptions& opt);

/// CT-RATE's VolumeName `train_123_a_1` (with or without `.nii.gz`) -> split, patient
/// (`train_123`), scan (`train_123_a`), reconstruction (1). False when it does not parse.
struct CtRateName {
  std::string split, patient, scan;
  int reconstruction = 0;
};
bool parseCtRateName(const std::string& volumeName, CtRateName& out);

/// Whether a patient id falls into the hashed validation fraction (FNV-1a of the id).
bool inHashedFraction(const std::string& id, double fraction);

/// RAD-ChestCT (Draelos et al., Medical Image Analysis 2021; Zenodo record 6406114, the external
/// validation set of CT-CLIP). `root` is the download folder:
///   img{train,valid,test}_Abnormality_and_Location_Labels.csv
///       NoteAcc_DEID + one 0/1 column per `<abnormality>*<location>` pair
///   <NoteAcc_DEID>.npz   (trn00001.npz, val00001.npz, tst00001.npz ...): numpy.savez_compressed
///       with key `ct`: int16 HU clipped to [-1000, 1000], resampled to 0.8 x 0.8 x 0.8 mm, axes
///       [slice, row, column] (slices from the highest position along the slice normal down)
/// Labels: `own` = one column per abnormality (the OR over its locations, the release's names);
/// `ct-rate` = biud's mapping onto the CT-RATE finding names (radChestCtToCtRate; CT-CLIP's own
/// mapping is not public), unmapped CT-RATE names left out and listed in the notes.
struct RadChestCtImportOptions {
  std::string root;
  std::string volumeRoot;  ///< folder holding the .npz files (default: root)
  std::vector<std::string> splits = {"train", "valid", "test"};
  std::string labels = "own";  ///< own | ct-rate
  /// Every item in split `test` (CT-CLIP evaluates all of RAD-ChestCT as external data).
  bool allTest = false;
  bool checkFiles = true;
  double spacing = 0.8;  ///< mm, written as the spacing override of every volume
};
ImportResult importRadChestCt(const RadChestCtImportOptions& opt);

/// biud's mapping of RAD-ChestCT abnormality names onto CT-RATE finding names: CT-RATE name ->
/// the RAD-ChestCT abnormalities whose OR (over every location) gives it. CT-RATE names with no
/// counterpart are absent.
const std::vector<std::pair<std::string, std::vector<std::string>>>& radChestCtToCtRate();

}  // namespace biud::image
