// biud-import: a public data set's release layout -> the standard manifest (docs/data.md, docs/your-data.md).
// Flags only: the importers are image/Import.h, the record and report image/ImportReport.h.
#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/image/Import.h"
#include "biud/image/ImportReport.h"

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-import",
      "Turn a public data set's release layout into biud's manifest: writes <out>/manifest.csv (id, image, report "
      "sections, split, patient, per-item header overrides, one 0/1 column per label) and <out>/import.json (files "
      "read, counts per split and label, every skipped row counted by reason, notes). Nothing else is written; "
      "`biud-preprocess --manifest <out>/manifest.csv` builds the cache from it. One subcommand per release.");
  app.addCommon(biud::app::kOut);
  auto& cli = app.cli();
  cli.require_subcommand(1);

  biud::image::CtRateImportOptions ct;
  std::string trainDir, validDir;
  auto* ctCmd = cli.add_subcommand(
      "ct-rate",
      "CT-RATE (huggingface.co/datasets/ibrahimhamamci/CT-RATE). Reads, under --root (the release folder holding "
      "dataset/, or dataset/ itself): dataset/radiology_text_reports/{train,validation}_reports.csv (VolumeName, "
      "ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN), "
      "dataset/multi_abnormality_labels/{train,valid}_predicted_labels.csv (VolumeName + 18 labels), "
      "dataset/metadata/{train,validation}_metadata.csv (XYSpacing, ZSpacing, RescaleSlope, RescaleIntercept, "
      "ImageOrientationPatient, ImagePositionPatient: written as per-item header overrides, because the release's "
      "NIfTI headers carry none of them), and checks that each volume "
      "dataset/{train,valid}/<split>_<p>/<split>_<p>_<scan>/<VolumeName> exists. Any table may be gzip-compressed "
      "(.csv.gz). Splits: CT-RATE's valid set -> test; a hashed --val-fraction of the training patients -> val; the "
      "rest -> train; reconstructions of one scan and scans of one patient stay in one split.");
  ctCmd->fallthrough();
  ctCmd->add_option("--root", ct.root, "the CT-RATE release folder (holding dataset/)")->required();
  ctCmd->add_option("--splits", ct.splits, "release splits to import: train, valid (default both)");
  ctCmd->add_flag("--one-reconstruction", ct.oneReconstruction,
                  "keep one reconstruction per scan (the lowest reconstruction number with a volume file)");
  ctCmd
      ->add_option("--rescale", ct.rescale,
                   "metadata (default): HU = RescaleSlope * stored value + RescaleIntercept from the metadata CSV, "
                   "CT-CLIP's convention for the released files; file: the files already hold HU (a copy re-exported "
                   "with fixed headers), no rescale is written")
      ->check(CLI::IsMember({"metadata", "file"}));
  ctCmd->add_flag("!--no-geometry", ct.geometry,
                  "do not write the metadata's spacing/orientation/origin (only for a copy whose headers are fixed)");
  ctCmd
      ->add_option("--val-fraction", ct.valFraction,
                   "fraction of training patients that form split `val` (by a hash of the patient id; default 0.02)")
      ->check(CLI::Range(0.0, 1.0));
  ctCmd->add_option("--volume-dir", ct.volumeRoot,
                    "folder holding the split folders of volumes (default: <root>/dataset)");
  ctCmd->add_option("--train-dir", trainDir, "the training volumes' folder under --volume-dir (default train)");
  ctCmd->add_option("--valid-dir", validDir, "the validation volumes' folder under --volume-dir (default valid)");
  ctCmd->add_flag("!--no-check-files", ct.checkFiles,
                  "keep rows whose volume file is missing (default: skip them and count them in import.json)");

  biud::image::MimicCxrImportOptions mx;
  auto* mxCmd = cli.add_subcommand(
      "mimic-cxr",
      "MIMIC-CXR-JPG (PhysioNet mimic-cxr-jpg 2.0.0/2.1.0). Reads, under --root: mimic-cxr-2.0.0-split.csv.gz "
      "(dicom_id, study_id, subject_id, split), mimic-cxr-2.0.0-metadata.csv.gz (ViewPosition), "
      "mimic-cxr-2.0.0-chexpert.csv.gz (or -negbio; 14 labels per study), the images "
      "files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg, and the MIMIC-CXR free-text reports files/pXX/pSUBJECT/sSTUDY.txt "
      "under --reports (mimic-cxr-reports.zip unpacked; default --root) with their FINDINGS:/IMPRESSION: sections. "
      "Tables may be .csv.gz (as shipped) or .csv. id = dicom_id, patient = subject_id, split validate -> val.");
  mxCmd->fallthrough();
  mxCmd->add_option("--root", mx.root, "the MIMIC-CXR-JPG release folder (holding files/ and the tables)")->required();
  mxCmd->add_option("--reports", mx.reports, "folder holding files/pXX/pSUBJECT/sSTUDY.txt (default: --root)");
  mxCmd->add_option("--views", mx.views,
                    "ViewPosition values to keep (default PA AP: frontal only; `all` keeps every image)");
  mxCmd->add_option("--label-table", mx.labels, "label table: chexpert (default), negbio or none")
      ->check(CLI::IsMember({"chexpert", "negbio", "none"}));
  mxCmd->add_option("--uncertain", mx.uncertain, "CheXpert -1.0 (uncertain): unknown (default), positive or negative")
      ->check(CLI::IsMember({"unknown", "positive", "negative"}));
  mxCmd->add_option("--blank", mx.blank, "empty label cell (not mentioned): unknown (default), positive or negative")
      ->check(CLI::IsMember({"unknown", "positive", "negative"}));
  mxCmd->add_flag("--require-report", mx.requireReport, "skip images whose study has no FINDINGS/IMPRESSION text");
  mxCmd->add_flag("!--no-check-files", mx.checkFiles, "keep rows whose image file is missing");

  biud::image::RadChestCtImportOptions rc;
  auto* rcCmd = cli.add_subcommand(
      "rad-chestct",
      "RAD-ChestCT (Draelos et al. 2021; zenodo.org/records/6406114). Reads, under --root (the download folder): "
      "img{train,valid,test}_Abnormality_and_Location_Labels.csv (NoteAcc_DEID + one 0/1 column per "
      "<abnormality>*<location>; .csv.gz also read) and checks that each volume <NoteAcc_DEID>.npz exists under "
      "--volume-dir (default --root). Volumes are read later by biud-preprocess: array `ct` of the .npz (int16 HU, "
      "axes [slice, row, column]); every item gets the spacing override --iso-spacing (0.8 mm, the release's "
      "resampling). No other file of the release (CT_Scan_Metadata_Complete_35747.csv, Summary_3630.csv, Extrema, "
      "Indications) is read. Splits: imgtrain -> train, imgvalid -> val, imgtest -> test (or all -> test with "
      "--all-test).");
  rcCmd->fallthrough();
  rcCmd->add_option("--root", rc.root, "the RAD-ChestCT download folder (holding the label CSVs)")->required();
  rcCmd->add_option("--volume-dir", rc.volumeRoot, "folder holding the <NoteAcc_DEID>.npz files (default: --root)");
  rcCmd->add_option("--splits", rc.splits, "release splits to import: train, valid, test (default all)");
  rcCmd
      ->add_option("--label-names", rc.labels,
                   "own (default): one column per RAD-ChestCT abnormality (the OR over its locations); ct-rate: "
                   "mapped onto the CT-RATE finding names (biud's table, docs/data.md; unmappable names left out "
                   "and listed in import.json notes)")
      ->check(CLI::IsMember({"own", "ct-rate"}));
  rcCmd->add_flag("--all-test", rc.allTest, "put every item in split test (external validation, as CT-CLIP uses it)");
  rcCmd->add_option("--iso-spacing", rc.spacing,
                    "isotropic voxel spacing in mm, one number, written for every volume (default 0.8)");
  rcCmd->add_flag("!--no-check-files", rc.checkFiles, "keep rows whose .npz file is missing");

  biud::image::FolderImportOptions fo;
  auto* foCmd = cli.add_subcommand(
      "folder",
      "Your own labelled CT set. Reads --root, a folder holding one entry per CT: a volume file (.nii.gz, .nii, .mha, "
      ".mhd, .nrrd, .npz) or a sub-folder with one DICOM series (id = the file name without extension, or the "
      "folder name), and --labels, a CSV (or .csv.gz) with the id column and one 0/1 column per label (empty or -1 "
      "= unknown). Optional columns: patient, split, report. Without a split column the splits come from a hash "
      "of the patient (or item) id, so they are the same on every machine.");
  foCmd->fallthrough();
  foCmd->add_option("--root", fo.root, "folder of volumes / DICOM series folders")->required();
  foCmd->add_option("--labels", fo.labels, "labels CSV: id column + one 0/1 column per label")->required();
  foCmd->add_option("--id-column", fo.idColumn, "id column of the labels CSV (default id)");
  foCmd->add_option("--patient-column", fo.patientColumn, "patient column (items of a patient share a split)");
  foCmd->add_option("--split-column", fo.splitColumn, "split column (train/val/test); default: hashed splits");
  foCmd->add_option("--report-column", fo.reportColumn, "report text column");
  foCmd->add_option("--ignore-columns", fo.ignoreColumns, "columns that are neither labels nor the ones above");
  foCmd->add_option("--val-fraction", fo.valFraction, "hashed validation fraction (default 0.1)")
      ->check(CLI::Range(0.0, 1.0));
  foCmd->add_option("--test-fraction", fo.testFraction, "hashed test fraction (default 0.2)")
      ->check(CLI::Range(0.0, 1.0));

  return app.run(argc, argv, [&] {
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "--out DIR is required (manifest.csv and import.json go there)");
    namespace im = biud::image;
    // Import, then check, write manifest.csv + import.json (with the options as applied) and log.
    auto run = [&](const auto& options, auto importer) {
      im::finishImport(app.out(), importer(options), im::importOptionsRecord(options));
      return biud::app::kExitOk;
    };
    if (ctCmd->parsed()) {
      if (!trainDir.empty()) ct.volumeDirs["train"] = trainDir;
      if (!validDir.empty()) ct.volumeDirs["valid"] = validDir;
      return run(ct, im::importCtRate);
    }
    if (mxCmd->parsed()) {
      if (mx.views.size() == 1 && mx.views[0] == "all") mx.views.clear();
      if (mx.labels == "none") mx.labels.clear();
      return run(mx, im::importMimicCxr);
    }
    if (rcCmd->parsed()) return run(rc, im::importRadChestCt);
    if (foCmd->parsed()) return run(fo, im::importFolder);
    return biud::app::kExitUsage;
  });
}
