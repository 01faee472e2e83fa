// A tiny training world for task tests: 12 CT volumes already on the preprocessing grid with
// reports and labels (8 train, 4 val), two simulated X-rays per CT (ids `<ct>#a`, `<ct>#b`), a
// WordPiece vocabulary, teacher features for the CTs and a biud stage-1 run with random weights.
// The config is the shrunken quickstart recipe, set up for task x2ct (set cfg.task for others).
#pragma once

#include <cmath>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/image/VolumeIO.h"
#include "biud/models/MethodModels.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/Tokenizer.h"
#include "common/TestUtil.h"

namespace biud::test {

inline constexpr int kCts = 12;

inline const char* const kWords[] = {"nodule", "effusion", "emphysema", "normal", "right",
                                     "left",   "lung",     "small",     "large",  "no"};

/// A tiny world: CT volumes already on the preprocessing grid, reports, labels, two simulated
/// X-rays per CT (ids `<ct>#a`, `<ct>#b`), a vocabulary and a fake biud stage-1 run.
struct TinyWorld {
  TempDir dir{"tinyworld"};
  Config cfg;
  std::string pretrained;

  TinyWorld() {
    const auto D = dir.path();
    const std::string vocab = writeTinyVocab(D / "vocab.txt", {std::begin(kWords), std::end(kWords)});
    cfg = loadConfig((sourceDir() / "configs/quickstart.yaml").string(), {});
    shrinkQuickstart(cfg);
    cfg.threads = 1;
    cfg.text.vocab = vocab;
    cfg.data.manifest = (D / "ct.csv").string();
    cfg.data.cache_dir = "";
    cfg.data.pairing = (D / "pre/pairing.csv").string();
    cfg.data.loader.batch_size = 4;
    cfg.data.loader.workers = 1;
    cfg.data.xray.size = 32;
    cfg.model.embed_dim = 32;
    cfg.eval.prompts = "";
    cfg.trainer.val_every = 0;
    cfg.trainer.save_every = 0;
    cfg.logging.tensorboard = false;
    std::string ct = "id,image,findings,impression,split,patient,lung_nodule\n";
    std::string xr = "id,image,findings,impression,split,patient,lung_nodule\n";
    const auto& sp = cfg.data.ct.spacing;
    const auto& sz = cfg.data.ct.size;
    stdfs::create_directories(D / "xr");
    for (int n = 0; n < kCts; ++n) {
      image::Volume v({sz[0], sz[1], sz[2]}, {sp[0], sp[1], sp[2]});
      for (size_t i = 0; i < v.data.size(); ++i)
        v.data[i] = static_cast<float>(800.0 * std::sin(0.01 * static_cast<double>(i) * (n + 1)) - 200.0);
      const std::string id = fmt::format("ct{:02d}", n);
      image::writeVolume((D / (id + ".nii.gz")).string(), v);
      const std::string rep = fmt::format("{} {} lung {} .", kWords[n % 3], kWords[4 + n % 2], kWords[7 + n % 2]);
      const std::string split = n < 8 ? "train" : "val";
      ct += fmt::format("{},{}.nii.gz,{},,{},p{},{}\n", id, id, rep, split, n, n % 2);
      for (const char* view : {"a", "b"}) {
        image::Image2D x({32, 32, 1}, {1, 1, 1});
        for (size_t i = 0; i < x.data.size(); ++i)
          x.data[i] = static_cast<float>(0.5 + 0.5 * std::sin(0.05 * static_cast<double>(i) * (n + 2) + view[0]));
        image::writeImage2D((D / "xr" / (id + view + ".png")).string(), x);
        xr += fmt::format("{}#{},xr/{}{}.png,{},,{},,{}\n", id, view, id, view, rep, split, n % 2);
      }
    }
    writeText(D / "ct.csv", ct);
    writeText(D / "xr.csv", xr);
    cfg.x2ct.xray_manifest = (D / "xr.csv").string();

    // The pretrained biud run: random weights are enough (what matters is that they are frozen).
    Config pc = cfg;
    pc.task = "biud";
    torch::manual_seed(11);
    auto tok = text::makeTokenizer(pc.text);
    models::BiudModel m(pc, tok->vocabSize(), 16);
    pretrained = (D / "pre").string();
    const auto ck = D / "pre/checkpoints/step_000001";
    stdfs::create_directories(ck);
    tensor::saveModule(*m, (ck / "model.safetensors").string());
    writeText(ck / "state.json", "{}");
    writeText(D / "pre/checkpoints/latest", "step_000001");
    writeText(D / "pre/config.resolved.yaml", config::toYaml(pc));
    data::TeacherFeatures tf;
    for (int n = 0; n < kCts; ++n) tf.ids.push_back(fmt::format("ct{:02d}", n));
    tf.h_star = torch::nn::functional::normalize(torch::randn({kCts, 16}),
                                                 torch::nn::functional::NormalizeFuncOptions().dim(1));
    tf.report_embedding = tf.h_star.clone();
    tf.save(data::teacherFeaturesPath(pc.data.pairing));
    cfg.task = "x2ct";
    cfg.x2ct.pretrained = pretrained;
    cfg.trainer.steps = 3;
  }
};

}  // namespace biud::test
