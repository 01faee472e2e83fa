// biud-import: a public data set's release layout -> the standard manifest (docs/data.md, docs/your-data.md).
#include <filesystem>
#include <map>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/image/Import.h"

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace

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
  ctCmd->add_option("--rescale", ct.rescale,
                    "metadata (default): HU = RescaleSlope * stored value + RescaleIntercept from the metadata CSV, "
                    "CT-CLIP's convention for the released files; file: the files already hold HU (a copy re-exported "
                    "with fixed headers), no rescale is written")
      ->check(CLI::IsMember({"metadata", "file"}));
  ctCmd->add_flag("!--no-geometry", ct.geometry,
                  "do not write the metadata's spacing/orientation/origin (only for a copy whose headers are fixed)");
  ctCmd->add_option("--val-fraction", ct.valFraction,
                    "fraction of training patients that form split `val` (by a hash of the patient id; default 0.02)")
      ->check(CLI::Range(0.0, 1.0));
  ctCmd->add_option("--volumes", ct.volumeRoot, "folder holding the split folders of volumes (default: <root>/dataset)");
  ctCmd->add_option("--train-dir", trainDir, "name of the training volumes' folder under --volumes (default train)");
  ctCmd->add_option("--valid-dir", validDir, "name of the validation volumes' folder under --volumes (default valid)");
  ctCmd->add_flag("!--no-check-files", ct.checkFiles,
                  "keep rows whose volume file is missing (default: skip them and count them in import.json)");

  return app.run(argc, argv, [&] {
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "biud-import: --out DIR is required (manifest.csv and import.json go there)");
    biud::image::ImportResult r;
    std::map<std::string, std::string> options;
    if (ctCmd->parsed()) {
      if (!trainDir.empty()) ct.volumeDirs["train"] = trainDir;
      if (!validDir.empty()) ct.volumeDirs["valid"] = validDir;
      r = biud::image::importCtRate(ct);
      options = {{"root", ct.root},
                 {"splits", joined(ct.splits)},
                 {"one_reconstruction", ct.oneReconstruction ? "true" : "false"},
                 {"rescale", ct.rescale},
                 {"geometry", ct.geometry ? "true" : "false"},
                 {"val_fraction", fmt::format("{}", ct.valFraction)},
                 {"volumes", ct.volumeRoot},
                 {"check_files", ct.checkFiles ? "true" : "false"}};
    }
    BIUD_CHECK(!r.manifest.items.empty(), biud::DataError,
               "biud-import {}: no item could be imported ({} rows skipped; the first: {}). Check --root", r.dataset,
               r.skipped.size(), r.skipped.empty() ? std::string("none") : r.skipped.front().id + ": " + r.skipped.front().reason);
    biud::image::writeImport(app.out(), r, options);
    std::map<std::string, size_t> splits;
    for (const auto& it : r.manifest.items) ++splits[it.split];
    std::string s;
    for (const auto& [k, v] : splits) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", v, k);
    for (const auto& n : r.notes) biud::log::info("import", "{}", n);
    biud::log::info("import", "{}: {} items ({}), {} labels, {} rows skipped -> {}/manifest.csv, {}/import.json",
                    r.dataset, r.manifest.items.size(), s, r.manifest.labelNames.size(), r.skipped.size(), app.out(),
                    app.out());
    if (!r.skipped.empty())
      biud::log::warn("import", "{} rows skipped; counted by reason in {}/import.json", r.skipped.size(), app.out());
    return biud::app::kExitOk;
  });
}
