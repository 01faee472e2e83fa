#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `synth:` — the synthetic chest CT / X-ray / report benchmark (biud-synth, docs/synth.md).
struct SynthConfig {
  int n_ct = 200;
  int n_cxr = 1000;
  std::vector<double> spacing = {1.5, 1.5, 3.0};
  std::vector<int> size = {128, 128, 64};
  int xray_size = 256;
  double healthy_fraction = 0.3;
  std::map<std::string, double> finding_rates;  ///< per finding; empty = built-in defaults
  std::vector<double> split = {0.7, 0.1, 0.2};
  std::vector<double> xray_split;  ///< X-ray corpus train/val/test fractions (empty = `split`)
  int n_external = 0;

  void visit(config::Visitor& v) {
    v.field("n_ct", n_ct, "CT studies with reports", config::atLeast(0));
    v.field("n_cxr", n_cxr, "X-ray studies with reports (teacher corpus, other patients)", config::atLeast(0));
    v.field("spacing", spacing, "CT voxel spacing in mm (x, y, z)", config::sizeIs(3) & config::positive());
    v.field("size", size, "CT volume size in voxels (x, y, z)", config::sizeIs(3) & config::atLeast(16));
    v.field("xray_size", xray_size, "X-ray side length in pixels", config::atLeast(32));
    v.field("healthy_fraction", healthy_fraction, "fraction of studies with no finding", config::range(0, 1));
    v.field("finding_rates", finding_rates,
            "prevalence per finding among non-healthy studies, by id (lung_nodule, lung_mass, pleural_effusion, "
            "pneumothorax, consolidation, emphysema, cardiomegaly, pericardial_effusion, atelectasis, "
            "arterial_calcification); findings left out keep their defaults (docs/synth.md)",
            config::range(0, 1));
    v.field("split", split, "train/val/test fractions", config::sizeIs(3) & config::range(0, 1));
    v.field("xray_split", xray_split,
            "train/val/test fractions of the X-ray corpus (the expert's data), drawn independently of the CT "
            "split; empty = the same fractions as `split`",
            config::range(0, 1));
    if (v.reading() && !xray_split.empty() && xray_split.size() != 3)
      v.fail("xray_split", "needs 3 fractions (train, val, test) or none (= split)");
    v.field("n_external", n_external, "extra CT studies with shifted acquisition (split `external`)",
            config::atLeast(0));
  }
};

}  // namespace biud
