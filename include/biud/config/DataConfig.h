#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `data.ct:` — CT preprocessing (METHOD §7). Default: the small CPU preset.
struct CtPreprocessConfig {
  std::vector<double> spacing = {1.5, 1.5, 3.0};  ///< mm, x y z
  std::vector<int> size = {96, 96, 48};           ///< voxels, x y z after crop/pad
  double hu_min = -1000, hu_max = 1000;
  double scale = 1000;    ///< value = clip(HU) / scale
  double pad_value = -1;  ///< in scaled units
  std::string crop = "center";
  double body_threshold = -500;  ///< HU; body mask for crop = body
  std::string window = "default";
  std::string storage = "int16";
  int shard_mb = 2048;                ///< cache shard size (not part of the preprocessing hash)
  std::string grid = "itk";           ///< resampling grid: itk or torch (CT-CLIP's)
  bool clip_before_resample = false;  ///< clip HU to the window before resampling (CT-CLIP's zero-shot loader)
  std::string hu_check = "warn";      ///< chest-CT plausibility of HU values (not part of the hash)
  double min_air_fraction = 0.01;     ///< hu_check threshold (not part of the hash)
  /// mm; every voxel spacing of a volume read (after the manifest's overrides) must lie in it
  /// (not part of the hash). image::VolumeReadOptions::spacingRange has the same default.
  std::vector<double> spacing_range = {0.05, 20.0};

  void visit(config::Visitor& v) {
    v.field("spacing", spacing, "target voxel spacing in mm (x, y, z)", config::sizeIs(3) & config::positive());
    v.field("size", size, "volume size after crop/pad in voxels (x, y, z)", config::sizeIs(3) & config::atLeast(1));
    v.field("hu_min", hu_min, "HU window lower bound");
    v.field("hu_max", hu_max, "HU window upper bound");
    v.field("scale", scale, "scaled value = clip(HU, hu_min, hu_max) / scale", config::positive());
    v.field("pad_value", pad_value, "padding value in scaled units");
    v.field("crop", crop,
            "crop/pad window: center, or body = centred on the largest connected region above body_threshold",
            config::oneOf({"center", "body"}));
    v.field("body_threshold", body_threshold, "HU threshold of the body mask used by crop = body");
    v.field("window", window,
            "default = clip [hu_min, hu_max] / scale; lung = clip [-1350, 150] mapped linearly to [-1, 1]",
            config::oneOf({"default", "lung"}));
    v.field("storage", storage, "cache voxel type", config::oneOf({"int16", "float16"}));
    v.field("shard_mb", shard_mb, "cache shard size in MiB (a new shard file starts beyond it)", config::atLeast(1));
    v.field("grid", grid,
            "resampling grid: itk = same first-voxel centre, size round(n * old / new) (ITK's ResampleImageFilter); "
            "torch = size floor(n * old / new), samples at (o + 0.5) * n / size - 0.5 "
            "(torch.nn.functional.interpolate(mode='trilinear', align_corners=False), as CT-CLIP's data loaders)",
            config::oneOf({"itk", "torch"}));
    v.field("clip_before_resample", clip_before_resample,
            "clip HU to the window before resampling instead of after it: voxels next to values beyond the window "
            "differ (CT-CLIP's zero-shot loader scripts/data_inference_nii.py clips before, its training loader "
            "scripts/data.py after; configs/data/ct_rate_ctclip_zeroshot.yaml)");
    v.field("hu_check", hu_check,
            "chest-CT plausibility check before preprocessing: fewer than min_air_fraction of the voxels in "
            "[-1100, -900] HU (air, lung) means the HU values are wrong (rescale intercept missing or applied "
            "twice): warn, error (the item fails) or off",
            config::oneOf({"warn", "error", "off"}));
    v.field("min_air_fraction", min_air_fraction, "hu_check: least fraction of voxels in [-1100, -900] HU",
            config::range(0, 1));
    v.field("spacing_range", spacing_range,
            "[min, max] voxel spacing in mm a volume may have once the manifest's overrides are applied: a zero, "
            "NaN, tiny or huge spacing is a broken header and fails the volume (widen for micro-CT or thick slabs)",
            config::sizeIs(2) & config::positive());
    if (v.reading() && hu_min >= hu_max) v.fail("hu_min", "must be below hu_max");
    if (v.reading() && spacing_range.size() == 2 && !(spacing_range[0] < spacing_range[1]))
      v.fail("spacing_range", "must be [min, max] with min < max");
  }
};

/// `data.xray:` — 2D X-ray preprocessing.
struct XrayPreprocessConfig {
  int size = 224;
  bool pad_square = true;

  void visit(config::Visitor& v) {
    v.field("size", size, "X-ray side length in pixels after resize", config::atLeast(8));
    v.field("pad_square", pad_square, "pad to square before resizing (keeps the aspect ratio)");
  }
};

/// `data.loader:` — batching and background loading.
struct LoaderConfig {
  int batch_size = 8;
  int workers = 2;
  int prefetch = 4;
  bool shuffle = true;
  bool drop_last = true;
  std::string sampler = "unique_patient";

  void visit(config::Visitor& v) {
    v.field("batch_size", batch_size, "items per batch on each rank", config::atLeast(1));
    v.field("workers", workers, "loader threads", config::atLeast(0));
    v.field("prefetch", prefetch, "batches prepared ahead", config::atLeast(1));
    v.field("shuffle", shuffle, "shuffle every epoch (deterministic per seed and epoch)");
    v.field("drop_last", drop_last, "drop the last incomplete batch");
    v.field("sampler", sampler, "unique_patient never puts two items of one patient/scan in a batch",
            config::oneOf({"random", "sequential", "unique_patient"}));
  }
};

/// `data.augment:` — training-time augmentation of CT volumes.
struct AugmentConfig {
  bool flip = false;
  double intensity_shift = 0.0;
  double intensity_scale = 0.0;
  std::vector<int> random_crop;  ///< empty = no random crop

  void visit(config::Visitor& v) {
    v.field("flip", flip, "random left-right flip (off by default: laterality is in the reports)");
    v.field("intensity_shift", intensity_shift, "uniform random shift in scaled units (0 = off)", config::atLeast(0));
    v.field("intensity_scale", intensity_scale, "uniform random relative scale (0 = off)", config::range(0, 1));
    v.field("random_crop", random_crop, "random crop size in voxels (x, y, z); empty = off");
  }
};

/// `data:` — where the data is and how it becomes tensors.
struct DataConfig {
  std::string manifest;       ///< CT manifest (CSV/JSONL)
  std::string xray_manifest;  ///< teacher corpus (X-ray + report)
  std::string cache_dir;      ///< preprocessed cache (biud-preprocess); empty = raw files
  std::string pairing;        ///< pairing file from biud-retrieve
  /// METHOD §2 option: each epoch, each CT's teacher X-ray is drawn from its `pairing_top_k` best
  /// retrieved X-rays with probability softmax(score / pairing_tau). 1 = always rank 1 (default).
  int pairing_top_k = 1;
  /// Retrieval sampling temperature tau_r. Teacher report similarities sit very close together:
  /// on quickstart-style data (400 CTs, 3000 X-rays, 600-step teacher) the mean top-1 cosine is 0.972 and
  /// ranks 2 and 5 are on average only 0.0034 and 0.0080 below it, so tau must be of the order of
  /// those gaps: at 0.005 rank 1 gets 42% of the draws and rank 5 10%; at 0.02 the top 5 are
  /// nearly uniform (25% / 17%), tau -> 0 gives rank 1 only (docs/retrieval.md).
  double pairing_tau = 0.005;
  std::string train_split = "train", val_split = "val", test_split = "test";
  std::vector<std::string> report_sections = {"findings", "impression"};
  CtPreprocessConfig ct;
  XrayPreprocessConfig xray;
  LoaderConfig loader;
  AugmentConfig augment;

  void visit(config::Visitor& v) {
    v.field("manifest", manifest,
            "CT manifest: CSV or JSONL with id, image, report/findings/impression, split, labels");
    v.field("xray_manifest", xray_manifest, "X-ray manifest (the teacher corpus)");
    v.field("cache_dir", cache_dir, "preprocessed cache written by biud-preprocess (empty = read raw files)");
    v.field("pairing", pairing, "CT -> X-ray pairing file written by biud-retrieve");
    v.field("pairing_top_k", pairing_top_k,
            "sample each CT's teacher X-ray per epoch from its top-K retrieved X-rays (1 = always rank 1; "
            "needs biud-retrieve --top-k >= K)",
            config::atLeast(1));
    v.field("pairing_tau", pairing_tau,
            "temperature tau_r of the per-epoch top-K draw, probability softmax(score / tau_r) "
            "(teacher report scores of the top 5 lie within ~0.01 of each other, hence the small default)",
            config::positive());
    v.field("train_split", train_split, "split name used for training");
    v.field("val_split", val_split, "split name used for validation");
    v.field("test_split", test_split, "split name used for testing");
    v.field("report_sections", report_sections, "report sections used as text",
            config::nonEmpty() & config::oneOf({"findings", "impression", "report"}));
    v.section("ct", ct, "CT preprocessing");
    v.section("xray", xray, "X-ray preprocessing");
    v.section("loader", loader, "batching and loading");
    v.section("augment", augment, "augmentation");
  }
};

}  // namespace biud
