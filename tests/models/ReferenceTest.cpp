// Networks against their Python originals: BERT (HF transformers, real all-MiniLM-L6-v2 weights),
// ResNet-50 and ViT-B/16 (torchvision, random weights), loaded through safetensors by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/TestUtil.h"
#include "biud/core/Error.h"
#include "biud/models/Registry.h"
#include "biud/models/ResNet.h"
#include "biud/models/ViT2D.h"
#include "biud/tensor/Safetensors.h"

using namespace biud;
using biud::test::TempDir;

namespace {
double maxAbs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }
}  // namespace

TEST(Reference, BertMatchesHfTransformersOnMiniLM) {
  TempDir tmp("bert");
  test::runPython("models_bert.py", test::quote(tmp.str()));
  const auto folder = test::readText(tmp / "folder.txt");
  auto ref = tensor::readSafetensors((tmp / "ref.safetensors").string());
  NetConfig cfg;
  cfg.arch = "bert";
  cfg.weights = folder;
  cfg.pool = "mean";
  auto bert = models::makeTextEncoder(cfg);
  bert->eval();
  EXPECT_EQ(bert->opt.hidden_size, 384);
  EXPECT_EQ(bert->opt.num_hidden_layers, 6);
  torch::NoGradGuard ng;
  auto out = bert->encode(ref["ids"], ref["mask"]);
  ASSERT_EQ(out.hidden.sizes(), ref["hidden"].sizes());
  // Padded positions are not defined by the model's contract; compare the real tokens.
  auto m = ref["mask"].to(torch::kBool).unsqueeze(-1);
  const double err = maxAbs(out.hidden.masked_fill(~m, 0), ref["hidden"].masked_fill(~m, 0));
  EXPECT_LT(err, 1e-4) << "max |C++ - HF| over real tokens";
  EXPECT_LT(maxAbs(out.pooled, ref["mean"]), 1e-4);
}

TEST(Reference, ResNet50AndViTB16MatchTorchvision) {
  TempDir tmp("tv");
  test::runPython("models_torchvision.py", test::quote(tmp.str()));
  auto ref = tensor::readSafetensors((tmp / "ref.safetensors").string());
  torch::NoGradGuard ng;

  auto ro = models::resnetPreset("resnet50", 2);
  ro.num_classes = 1000;
  models::ResNet r(ro);
  tensor::loadModule(*r, (tmp / "resnet50.safetensors").string());  // strict: every name must match
  r->eval();
  auto yr = r->forward(ref["x"]);
  EXPECT_LT(maxAbs(yr, ref["resnet50"]), 1e-4 * std::max(1.0, ref["resnet50"].abs().max().item<double>()));

  auto vo = models::vit2dPreset("vit_b_16");
  vo.image_size = 64;
  vo.num_classes = 1000;
  models::ViT2D v(vo);
  tensor::loadModule(*v, (tmp / "vit_b_16.safetensors").string());
  v->eval();
  auto yv = v->forward(ref["x"]);
  EXPECT_LT(maxAbs(yv, ref["vit_b_16"]), 1e-4);

  // The registry's encoder (no classifier) loads the same file, skipping the head.
  NetConfig c;
  c.arch = "resnet50";
  c.preset = "base";
  c.weights = (tmp / "resnet50.safetensors").string();
  auto enc = models::makeVisualEncoder(c);
  enc->eval();
  auto e = enc->encode(ref["x"]);
  EXPECT_EQ(e.pooled.sizes(), (std::vector<std::int64_t>{2, 2048}));
  EXPECT_EQ(e.tokens.sizes(), (std::vector<std::int64_t>{2, 4, 2048}));  // 64/32 = 2x2 feature map
  EXPECT_LT(maxAbs(torch::nn::functional::linear(e.pooled, r->fc->weight, r->fc->bias), ref["resnet50"]),
            1e-4 * std::max(1.0, ref["resnet50"].abs().max().item<double>()));

}

TEST(Reference, HfFolderWithOnlyBinExplainsConversion) {
  TempDir tmp("bin");
  test::writeText(tmp / "config.json", "{\"model_type\": \"bert\"}");
  test::writeText(tmp / "pytorch_model.bin", "not read");
  try {
    models::findHfCheckpoint(tmp.str());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pytorch_model.bin"), std::string::npos) << e.what();
  }
}
