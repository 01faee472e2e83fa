// The pieces of the `finetune` task against PyTorch (the BCE with pos_weight) and hand-worked
// values (pos_weight, layer-wise lr decay, label-fraction subsets).
#include <cmath>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "biud/train/FinetuneTask.h"
#include "biud/train/Optim.h"
#include "common/TestUtil.h"

using namespace biud;

namespace {
const double kNaN = std::nan("");
}

TEST(FinetuneLoss, MaskedBceMatchesTorchBceWithLogitsWithPosWeight) {
  torch::manual_seed(3);
  auto logits = torch::randn({6, 4}, torch::kFloat64) * 3;
  auto labels = (torch::rand({6, 4}, torch::kFloat64) > 0.6).to(torch::kFloat64);
  labels[1][2] = kNaN;  // unknown entries contribute nothing
  labels[4][0] = kNaN;
  labels[5][3] = kNaN;
  auto pw = torch::tensor({0.5, 1.0, 3.0, 7.5}, torch::kFloat64);
  test::TempDir d("bce");
  tensor::writeSafetensors((d / "in.safetensors").string(),
                           {{"logits", logits}, {"labels", labels}, {"pos_weight", pw}});
  test::runPython("train_finetune_bce.py",
                  test::quote((d / "in.safetensors").string()) + " " + test::quote((d / "out.safetensors").string()));
  auto ref = tensor::readSafetensors((d / "out.safetensors").string());

  auto x = logits.clone().requires_grad_(true);
  auto loss = train::maskedBce(x, labels, pw);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), ref.at("loss").item<double>(), 1e-12);
  EXPECT_TRUE(torch::allclose(x.grad(), ref.at("grad"), 1e-12, 1e-14)) << x.grad() << ref.at("grad");
  EXPECT_NEAR(train::maskedBce(logits, labels).item<double>(), ref.at("loss_plain").item<double>(), 1e-12);
}

TEST(FinetuneLoss, MaskedBceByHandAndAllUnknown) {
  // One known entry: logit 0, label 1, pos_weight 3 -> 3 * log 2; the NaN entry is ignored.
  auto l = train::maskedBce(torch::zeros({1, 2}), torch::tensor({{1.0f, NAN}}), torch::tensor({3.0f, 9.0f}));
  EXPECT_NEAR(l.item<double>(), 3 * std::log(2.0), 1e-6);
  auto none = train::maskedBce(torch::zeros({2, 2}), torch::full({2, 2}, NAN));
  EXPECT_EQ(none.item<double>(), 0.0);
  EXPECT_THROW(train::maskedBce(torch::zeros({2, 2}), torch::zeros({2, 3})), ValueError);
}

TEST(FinetuneLoss, PositiveWeightsByHand) {
  // label 0: 2 positives, 2 negatives -> 1; label 1: 1 positive, 2 negatives (NaN skipped) -> 2;
  // label 2: no positive -> 1; label 3: 1 positive, 3 negatives, clamped at 2.5.
  auto y = torch::tensor({{1.0, 0.0, 0.0, 1.0}, {0.0, 0.0, 0.0, 0.0}, {0.0, kNaN, 0.0, 0.0}, {1.0, 1.0, 0.0, 0.0}});
  auto w = train::positiveWeights(y, 2.5);
  ASSERT_EQ(w.numel(), 4);
  EXPECT_FLOAT_EQ(w[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(w[1].item<float>(), 2.0f);
  EXPECT_FLOAT_EQ(w[2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(w[3].item<float>(), 2.5f);
}

namespace {
/// ct_encoder (a 2-block ViT3D) + head, named like the finetune task's module.
struct Net : torch::nn::Module {
  Net() {
    NetConfig c;
    c.arch = "vit3d";
    c.preset = "tiny";
    c.depth = 2;
    c.image_size = {16, 16, 16};
    c.patch = {8, 8, 8};
    enc = register_module("ct_encoder", models::makeVisualEncoder(c));
    head = register_module("head", torch::nn::Linear(enc->dim(), 3));
  }
  std::shared_ptr<models::VisualEncoderImpl> enc;
  torch::nn::Linear head{nullptr};
};
}  // namespace

TEST(LayerDecay, LayerIdsByHand) {
  EXPECT_EQ(train::encoderLayerId("patch_embed.proj.weight", 3), 0);
  EXPECT_EQ(train::encoderLayerId("pos_embed", 3), 0);
  EXPECT_EQ(train::encoderLayerId("cls_token", 3), 0);
  EXPECT_EQ(train::encoderLayerId("blocks.0.attn.qkv.weight", 3), 1);
  EXPECT_EQ(train::encoderLayerId("blocks.1.mlp.fc1.bias", 3), 2);
  EXPECT_EQ(train::encoderLayerId("norm.weight", 3), 3);
  // ResNet: stem 0, stages 1..4, the rest after them.
  EXPECT_EQ(train::encoderLayerId("conv1.weight", 5), 0);
  EXPECT_EQ(train::encoderLayerId("bn1.bias", 5), 0);
  EXPECT_EQ(train::encoderLayerId("layer3.1.conv2.weight", 5), 3);
  EXPECT_EQ(train::encoderLayerId("fc.weight", 5), 5);
  EXPECT_EQ(train::encoderLayerId("layers_extra.weight", 5), 5);  // not `layerK.`
  EXPECT_EQ(train::encoderNumLayers({"conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.bias", "fc.weight"}), 5);
  EXPECT_EQ(train::encoderNumLayers({"patch_embed.proj.weight", "blocks.0.x", "blocks.11.y", "norm.weight"}), 13);
  // BERT (text encoders): embeddings 0, encoder.layer.i is i + 1, pooler after.
  EXPECT_EQ(train::encoderLayerId("embeddings.word_embeddings.weight", 4), 0);
  EXPECT_EQ(train::encoderLayerId("encoder.layer.2.attention.self.query.weight", 4), 3);
  EXPECT_EQ(train::encoderLayerId("pooler.dense.weight", 4), 4);
  EXPECT_EQ(train::encoderNumLayers({"embeddings.LayerNorm.weight", "encoder.layer.0.x", "encoder.layer.2.y"}), 4);
  // ViT-2D (torchvision names).
  EXPECT_EQ(train::encoderLayerId("conv_proj.weight", 3), 0);
  EXPECT_EQ(train::encoderLayerId("class_token", 3), 0);
  EXPECT_EQ(train::encoderLayerId("encoder.pos_embedding", 3), 0);
  EXPECT_EQ(train::encoderLayerId("encoder.layers.encoder_layer_1.ln_1.weight", 3), 2);
  EXPECT_EQ(train::encoderLayerId("encoder.ln.weight", 3), 3);
}

TEST(LayerDecay, LearningRatesByHandThroughTheOptimizer) {
  Net net;
  OptimizerConfig cfg;
  cfg.lr = 1e-3;
  cfg.layer_decay = 0.5;
  // buildOptimizer applies optimizer.layer_decay itself (no module_lr entries needed).
  // 2 blocks -> 3 layers: stem 0.5^3, block 0 0.5^2, block 1 0.5^1, final norm 0.5^0; head untouched.
  auto lrOf = [](torch::nn::Module& m, const OptimizerConfig& c) {
    std::vector<train::ParamGroupInfo> groups;
    auto opt = train::buildOptimizer(m, c, &groups);
    const auto lrs = train::groupLrs(*opt);
    EXPECT_EQ(lrs.size(), groups.size());
    std::map<std::string, double> out;
    for (size_t g = 0; g < groups.size(); ++g)
      for (const auto& n : groups[g].names) {
        EXPECT_DOUBLE_EQ(lrs[g], groups[g].lr) << n;  // the optimizer's own group lr
        out[n] = groups[g].lr;
      }
    return out;
  };
  auto m = lrOf(net, cfg);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.patch_embed.proj.weight"), 1.25e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.pos_embed"), 1.25e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.blocks.0.norm1.weight"), 2.5e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.blocks.0.attn.qkv.weight"), 2.5e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.blocks.1.norm1.weight"), 5e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.blocks.1.mlp.fc2.bias"), 5e-4);
  EXPECT_DOUBLE_EQ(m.at("ct_encoder.norm.weight"), 1e-3);
  EXPECT_DOUBLE_EQ(m.at("head.weight"), 1e-3);
  EXPECT_DOUBLE_EQ(m.at("head.bias"), 1e-3);
  EXPECT_EQ(train::parameterLrs(net, cfg), m);

  // decay 1 = off: every parameter at lr.
  cfg.layer_decay = 1.0;
  for (const auto& [n, lr] : lrOf(net, cfg)) EXPECT_DOUBLE_EQ(lr, 1e-3) << n;

  // A user's module_lr is the base the decay multiplies; frozen parameters are not counted.
  OptimizerConfig c2;
  c2.lr = 1e-3;
  c2.layer_decay = 0.5;
  c2.module_lr = {{"ct_encoder", 1e-4}};
  for (auto& p : net.enc->named_parameters())
    if (p.key().rfind("blocks.0.", 0) == 0) p.value().set_requires_grad(false);
  auto m2 = lrOf(net, c2);
  EXPECT_DOUBLE_EQ(m2.at("ct_encoder.blocks.1.norm1.weight"), 5e-5);
  EXPECT_DOUBLE_EQ(m2.at("ct_encoder.pos_embed"), 1.25e-5);
  EXPECT_EQ(m2.count("ct_encoder.blocks.0.norm1.weight"), 0u);
  EXPECT_DOUBLE_EQ(m2.at("head.weight"), 1e-3);
  // Linear probe (encoder frozen): only the head, at lr, whatever the decay.
  models::freeze(*net.enc);
  OptimizerConfig c3;
  c3.lr = 1e-3;
  c3.layer_decay = 0.5;
  auto m3 = lrOf(net, c3);
  EXPECT_EQ(m3.size(), 2u);
  EXPECT_DOUBLE_EQ(m3.at("head.weight"), 1e-3);
}

TEST(LabelFraction, HandWorkedStratifiedSubset) {
  // 10 cases; label A positive in cases 0-5, label B only in case 9. 20% -> 2 cases: B (the
  // rarest) gets its one positive first, A gets round(0.2 * 6) = 1 positive.
  std::vector<std::vector<double>> y(10, {0.0, 0.0});
  for (int i = 0; i < 6; ++i) y[static_cast<size_t>(i)][0] = 1;
  y[9][1] = 1;
  for (std::uint64_t seed : {0ull, 1ull, 7ull, 12345ull}) {
    auto s = train::labelFractionSubset(y, 0.2, seed);
    ASSERT_EQ(s.size(), 2u) << seed;
    EXPECT_EQ(s[1], 9) << seed;
    EXPECT_LT(s[0], 6) << seed;
  }
  // 100% is everything, in order; unknown labels are neither positive nor negative.
  auto all = train::labelFractionSubset(y, 1.0, 3);
  EXPECT_EQ(all, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_THROW(train::labelFractionSubset(y, 0.0, 3), ConfigError);
}

TEST(LabelFraction, DeterministicBySeedAndStratified) {
  // 300 cases, prevalences 50%, 20%, 3% (NaN sprinkled in).
  std::vector<std::vector<double>> y;
  std::int64_t pos[3] = {0, 0, 0};
  for (int i = 0; i < 300; ++i) {
    std::vector<double> r{i % 2 == 0 ? 1.0 : 0.0, i % 5 == 1 ? 1.0 : 0.0, i % 33 == 4 ? 1.0 : 0.0};
    if (i % 17 == 3) r[0] = kNaN;
    for (int l = 0; l < 3; ++l) pos[l] += r[static_cast<size_t>(l)] == 1.0;
    y.push_back(r);
  }
  for (double f : {0.01, 0.1, 0.5}) {
    auto a = train::labelFractionSubset(y, f, 11), b = train::labelFractionSubset(y, f, 11);
    auto c = train::labelFractionSubset(y, f, 12);
    EXPECT_EQ(a, b) << f;
    EXPECT_NE(a, c) << f;
    EXPECT_EQ(static_cast<double>(a.size()), std::max(1.0, std::round(f * 300))) << f;
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_EQ(std::set<std::int64_t>(a.begin(), a.end()).size(), a.size());
    // Every label keeps at least its share of positives (at least one), whatever the seed.
    for (int l = 0; l < 3; ++l) {
      std::int64_t p = 0;
      for (auto i : a) p += y[static_cast<size_t>(i)][static_cast<size_t>(l)] == 1.0;
      EXPECT_GE(p, std::max<std::int64_t>(1, std::llround(f * static_cast<double>(pos[l])))) << f << " label " << l;
    }
  }
  // 1% of 300 = 3 cases, and each label with positives has one.
  auto s = train::labelFractionSubset(y, 0.01, 5);
  for (int l = 0; l < 3; ++l) {
    int p = 0;
    for (auto i : s) p += y[static_cast<size_t>(i)][static_cast<size_t>(l)] == 1.0;
    EXPECT_GE(p, 1) << l;
  }
}
