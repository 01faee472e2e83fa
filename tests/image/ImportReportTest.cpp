// image/ImportReport.h (what biud-import does after an importer ran), called in-process: the
// options record of each release, the summary line, and the files written or the error raised,
// against values worked out by hand.
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/image/ImportReport.h"
#include "common/TestUtil.h"

namespace im = biud::image;
using Record = std::map<std::string, std::string>;

namespace {

im::ImportResult smallResult() {
  im::ImportResult r;
  r.dataset = "folder";
  r.manifest.labelNames = {"a", "b"};
  for (const auto& [id, split] :
       std::vector<std::pair<std::string, std::string>>{{"x", "train"}, {"y", "val"}, {"z", "train"}}) {
    im::ManifestItem it;
    it.id = id;
    it.split = split;
    it.images = {"/data/" + id + ".nii.gz"};
    it.labels = {1.0f, NAN};
    r.manifest.items.push_back(it);
  }
  r.skipped.push_back({"labels.csv", 5, "w", "volume file not found"});
  r.notes.push_back("a note");
  return r;
}

}  // namespace

TEST(ImportReport, OptionsRecordPerRelease) {
  im::CtRateImportOptions ct;
  ct.root = "/ct";
  ct.volumeRoot = "/vol";
  ct.oneReconstruction = true;
  EXPECT_EQ(im::importOptionsRecord(ct), (Record{{"root", "/ct"},
                                                 {"splits", "train,valid"},
                                                 {"one_reconstruction", "true"},
                                                 {"rescale", "metadata"},
                                                 {"geometry", "true"},
                                                 {"val_fraction", "0.02"},
                                                 {"volumes", "/vol"},
                                                 {"check_files", "true"}}));
  im::MimicCxrImportOptions mx;
  mx.root = "/mx";
  mx.views.clear();  // `--views all`
  mx.checkFiles = false;
  EXPECT_EQ(im::importOptionsRecord(mx), (Record{{"root", "/mx"},
                                                 {"reports", ""},
                                                 {"views", ""},
                                                 {"labels", "chexpert"},
                                                 {"uncertain", "unknown"},
                                                 {"blank", "unknown"},
                                                 {"require_report", "false"},
                                                 {"check_files", "false"}}));
  im::RadChestCtImportOptions rc;
  rc.root = "/rc";
  rc.splits = {"test"};
  rc.allTest = true;
  EXPECT_EQ(im::importOptionsRecord(rc), (Record{{"root", "/rc"},
                                                 {"volumes", ""},
                                                 {"splits", "test"},
                                                 {"labels", "own"},
                                                 {"all_test", "true"},
                                                 {"spacing", "0.8"},
                                                 {"check_files", "true"}}));
  im::FolderImportOptions fo;
  fo.root = "/cts";
  fo.labels = "l.csv";
  fo.testFraction = 0.25;
  EXPECT_EQ(im::importOptionsRecord(fo), (Record{{"root", "/cts"},
                                                 {"labels", "l.csv"},
                                                 {"id_column", "id"},
                                                 {"patient_column", ""},
                                                 {"split_column", ""},
                                                 {"report_column", ""},
                                                 {"val_fraction", "0.1"},
                                                 {"test_fraction", "0.25"}}));
}

TEST(ImportReport, SummaryCountsSplitsInNameOrder) {
  EXPECT_EQ(im::importSummary(smallResult()), "folder: 3 items (2 train, 1 val), 2 labels, 1 rows skipped");
}

TEST(ImportReport, FinishWritesTheFilesOrNamesTheFirstSkippedRow) {
  biud::test::TempDir d("import-report");
  const auto r = smallResult();
  im::finishImport(d.str(), r, {{"root", "/cts"}});
  const std::string manifest = biud::test::readText(d / "manifest.csv");
  EXPECT_NE(manifest.find("/data/y.nii.gz"), std::string::npos) << manifest;
  const auto j = nlohmann::json::parse(biud::test::readText(d / "import.json"));
  EXPECT_EQ(j["options"]["root"], "/cts");
  im::ImportResult empty = r;
  empty.manifest.items.clear();
  try {
    im::finishImport((d / "none").string(), empty, {});
    ADD_FAILURE() << "no error for an empty import";
  } catch (const biud::DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "folder: no item could be imported (1 rows skipped; the first: w: volume file not found). "
              "Check --root");
  }
  EXPECT_FALSE(std::filesystem::exists(d / "none" / "manifest.csv"));
}
