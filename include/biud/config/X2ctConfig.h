#pragma once
/// \file X2ctConfig.h
/// `x2ct:` — X2CT-CLIP (METHOD §6): simulated X-rays from CT (`x2ct.drr`, used by biud-drr) and
/// the tri-modal training task `x2ct` (loss weights live in `loss.trimodal`).
#include "biud/core/Schema.h"

namespace biud {

/// `x2ct.drr:` — how biud-drr turns a CT volume into a frontal chest X-ray.
struct DrrConfig {
  std::string projector = "drr";  ///< mean | drr
  std::string beam = "parallel";  ///< parallel | cone (drr only)
  double spacing = 1.0;           ///< isotropic resampling, mm
  double hu_min = -1000, hu_max = 1000;
  double mu_water = 0.02;          ///< linear attenuation of water, 1/mm
  double source_distance = 1000;   ///< cone beam: source to isocentre, mm
  double detector_distance = 500;  ///< cone beam: isocentre to detector, mm
  int bits = 8;
  int size = 0;  ///< 0 = native pixel grid; else pad to square and resize to size x size

  void visit(config::Visitor& v) {
    v.field("projector", projector,
            "mean = mean intensity of the windowed HU along the AP axis (the X2CT-CLIP code); drr = Beer-Lambert line "
            "integral of mu = mu_water (1 + HU/1000)",
            config::oneOf({"mean", "drr"}));
    v.field("beam", beam, "drr geometry: parallel rays along AP, or a point source (cone beam)",
            config::oneOf({"parallel", "cone"}));
    v.field("spacing", spacing, "isotropic voxel size (mm) the CT is resampled to before projecting",
            config::range(0.1, 20));
    v.field("hu_min", hu_min, "lower end of the HU window (values below are clipped)");
    v.field("hu_max", hu_max, "upper end of the HU window (values above are clipped)");
    v.field("mu_water", mu_water, "linear attenuation coefficient of water in 1/mm (drr)", config::positive());
    v.field("source_distance", source_distance, "cone beam: X-ray source to the volume centre, mm", config::positive());
    v.field("detector_distance", detector_distance, "cone beam: volume centre to the detector plane, mm",
            config::atLeast(0));
    v.field("bits", bits, "PNG bit depth (8 or 16)", config::range(8, 16));
    v.field("size", size, "output side length in pixels; 0 = native grid (one pixel per resampled voxel)",
            config::atLeast(0));
    if (v.reading() && hu_min >= hu_max) v.fail("hu_min", "must be below hu_max");
    if (v.reading() && bits != 8 && bits != 16) v.fail("bits", "must be 8 or 16");
  }
};

/// `x2ct:` — the tri-modal task: frozen CT and report towers from a pretrained run, cached latents,
/// a trainable X-ray encoder (model.xray_encoder) with its projection.
struct X2ctConfig {
  /// Run folder (or checkpoint folder) whose CT and report towers are frozen: a biud stage-1 run.
  std::string pretrained;
  /// Simulated X-ray manifest written by biud-drr (ids = CT ids); empty = data.xray_manifest.
  std::string xray_manifest;
  /// File of cached CT/report latents; empty = <run>/latents.safetensors.
  std::string latent_cache;
  std::string batching = "experiment";
  bool learn_temperature = true;
  std::vector<double> fewshot_fractions = {0.01, 0.025, 0.05, 0.1, 1.0};
  std::string external_split = "external";
  std::vector<std::string> ct_only_findings = {"lung_nodule", "emphysema", "pericardial_effusion",
                                               "arterial_calcification"};
  DrrConfig drr;

  void visit(config::Visitor& v) {
    v.field("pretrained", pretrained,
            "run folder of the pretrained CT/report model whose towers are frozen (a biud stage-1 run)");
    v.field("xray_manifest", xray_manifest, "simulated X-ray manifest from biud-drr; empty = data.xray_manifest");
    v.field("latent_cache", latent_cache, "cached CT and report latents; empty = <run>/latents.safetensors");
    v.field("batching", batching,
            "experiment = at most one item per scan/patient in a batch; random = plain shuffled batches",
            config::oneOf({"experiment", "random"}));
    v.field("learn_temperature", learn_temperature, "learn tau (within loss.trimodal.temperature_min/max)");
    v.field("fewshot_fractions", fewshot_fractions, "label fractions of the linear-probe few-shot evaluation",
            config::range(0, 1, true));
    v.field("external_split", external_split, "split used for external validation (biud-x2ct-eval)");
    v.field("ct_only_findings", ct_only_findings,
            "findings that are hard to see on a radiograph (grouped separately in the evaluation table)");
    v.section("drr", drr, "simulated X-rays (biud-drr)");
  }
};

}  // namespace biud
