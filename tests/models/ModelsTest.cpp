// Shapes, gradient flow, save/load, position interpolation, checkpointing, decoding invariants.
#include <cstdlib>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/models/Attention.h"
#include "biud/models/Fusion.h"
#include "biud/models/Heads.h"
#include "biud/models/Registry.h"
#include "biud/models/ReportDecoder.h"
#include "biud/models/ResNet.h"
#include "biud/models/ViT3D.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

using namespace biud;
using namespace biud::models;
using biud::test::TempDir;

namespace {
using Shape = std::vector<std::int64_t>;

// Every parameter of `m` received a finite, non-zero gradient.
void expectAllGrads(torch::nn::Module& m) {
  for (auto& p : m.named_parameters(true)) {
    ASSERT_TRUE(p.value().grad().defined()) << "no gradient reached " << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << "zero gradient at " << p.key();
  }
}
NetConfig net(const std::string& arch) {
  NetConfig c;
  c.arch = arch;
  c.preset = "tiny";
  return c;
}
}  // namespace

TEST(Attention, MatchesHandWrittenSoftmaxWithPaddingAndCausalCache) {
  torch::manual_seed(0);
  auto q = torch::randn({2, 3, 4, 8}), k = torch::randn({2, 3, 6, 8}), v = torch::randn({2, 3, 6, 8});
  auto pad = torch::tensor({1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}).view({2, 6});
  auto s = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(8.0);
  // causal with the 4 queries being the last 4 of 6 positions
  auto causal = torch::ones({4, 6}, torch::kBool).tril(2);
  auto allowed = pad.to(torch::kBool).view({2, 1, 1, 6}) & causal.view({1, 1, 4, 6});
  auto want = torch::matmul(torch::softmax(s.masked_fill(~allowed, -1e30), -1), v);
  EXPECT_LT((attention(q, k, v, pad, true) - want).abs().max().item<double>(), 1e-5);
}

TEST(ViT3D, ShapesGradientsAndTokenDropout) {
  torch::manual_seed(0);
  auto enc = makeVisualEncoder(net("vit3d"));
  auto x = torch::randn({2, 1, 32, 64, 64});
  auto out = enc->encode(x);
  EXPECT_EQ(out.pooled.sizes(), (Shape{2, 64}));
  EXPECT_EQ(out.tokens.sizes(), (Shape{2, 4 * 4 * 4, 64}));
  (out.pooled.pow(2).sum() + out.tokens.sum()).backward();
  expectAllGrads(*enc);

  auto c = net("vit3d");
  c.token_dropout = 0.5;
  c.pool = "mean";
  auto drop = makeVisualEncoder(c);
  drop->train();
  EXPECT_EQ(drop->encode(x).tokens.size(1), 32);
  drop->eval();  // no dropping at evaluation
  EXPECT_EQ(drop->encode(x).tokens.size(1), 64);
}

TEST(ViT3D, PositionTableInterpolatesTrilinearly) {
  ViT3DOptions o;
  o.image_size = {16, 32, 32};
  o.patch = {4, 8, 8};  // grid 4x4x4
  o.dim = 6;
  o.heads = 2;
  ViT3D m(o);
  // A table linear in the depth index i (value i) must interpolate to (i'+0.5)*4/8-0.5 on a
  // grid twice as deep (align_corners=false), clamped to [0, 3] at the borders.
  {
    torch::NoGradGuard ng;
    auto t = torch::arange(4, torch::kFloat32).view({4, 1, 1, 1}).expand({4, 4, 4, 6}).reshape({1, 64, 6});
    m->pos_embed.copy_(t);
  }
  EXPECT_TRUE(torch::equal(m->positionEmbedding({4, 4, 4}), m->pos_embed));
  auto p = m->positionEmbedding({8, 4, 4}).view({8, 4, 4, 6});
  for (int i = 0; i < 8; ++i) {
    const double want = std::clamp((i + 0.5) * 0.5 - 0.5, 0.0, 3.0);
    EXPECT_NEAR(p[i][1][2][3].item<double>(), want, 1e-6) << i;
  }
  // A bigger input runs and gives the bigger grid.
  EXPECT_EQ(m->encode(torch::randn({1, 1, 32, 32, 32})).tokens.size(1), 8 * 4 * 4);
  // sincos: deterministic, distinct per position, sized for any grid.
  auto s = sincosPosition3d({2, 3, 4}, 12);
  EXPECT_EQ(s.sizes(), (Shape{24, 12}));
  EXPECT_NEAR(s[0][2].item<double>(), 1.0, 1e-6);                     // cos(0) of the depth axis (after 2 sin)
  EXPECT_NEAR(s[1 * 12 + 0][0].item<double>(), std::sin(1.0), 1e-6);  // depth 1, first freq
}

TEST(ViT3D, CheckpointingGivesTheSameGradients) {
  auto c = net("vit3d");
  torch::manual_seed(3);
  auto a = makeVisualEncoder(c);
  c.checkpointing = true;
  torch::manual_seed(3);
  auto b = makeVisualEncoder(c);
  a->train();
  b->train();
  auto x = torch::randn({2, 1, 32, 64, 64});
  a->encode(x).pooled.pow(2).sum().backward();
  b->encode(x).pooled.pow(2).sum().backward();
  auto pa = a->named_parameters(true), pb = b->named_parameters(true);
  for (auto& kv : pa) {
    ASSERT_TRUE(pb[kv.key()].grad().defined()) << kv.key();
    EXPECT_LT((kv.value().grad() - pb[kv.key()].grad()).abs().max().item<double>(), 1e-5) << kv.key();
  }
}

TEST(ResNet3D, ShapesAndGradients) {
  torch::manual_seed(0);
  for (const char* arch : {"resnet3d18", "resnet3d50"}) {
    auto enc = makeVisualEncoder(net(arch));
    auto out = enc->encode(torch::randn({2, 1, 16, 16, 16}));
    const std::int64_t d = std::string(arch) == "resnet3d18" ? 64 : 256;  // tiny width 8
    EXPECT_EQ(enc->dim(), d) << arch;
    EXPECT_EQ(out.pooled.sizes(), (Shape{2, d})) << arch;
    EXPECT_EQ(out.tokens.sizes(), (Shape{2, 1, d})) << arch;  // strides 32: 1 token per side
    out.pooled.pow(2).sum().backward();
    expectAllGrads(*enc);
  }
}

// The 3D stem's stride-2 convolution computed over the input's 2x2x2 phases equals torch's
// strided conv3d: outputs and both gradients, for odd and even sizes, the quickstart's 7x7x7 and a
// 3x7x7 stem, 1 and 2 input channels, and a padding wider than the phases need (the crop path).
TEST(ResNet3D, StemByPhasesEqualsTheStridedConvolution) {
  torch::manual_seed(0);
  struct Case {
    Shape x, w, pad;
  };
  const std::vector<Case> cases = {{{2, 1, 21, 30, 29}, {4, 1, 7, 7, 7}, {3, 3, 3}},
                                   {{1, 1, 12, 16, 17}, {3, 1, 3, 7, 7}, {1, 3, 3}},
                                   {{2, 2, 9, 10, 11}, {5, 2, 4, 3, 5}, {1, 1, 2}},
                                   {{1, 1, 8, 8, 8}, {2, 1, 3, 3, 3}, {3, 3, 3}}};
  for (const auto& c : cases) {
    auto x = torch::randn(c.x, torch::requires_grad());
    auto w = torch::randn(c.w, torch::requires_grad());
    auto ref = torch::conv3d(x, w, {}, 2, c.pad);
    auto out = conv3dStride2ByPhases(x, w, c.pad);
    ASSERT_EQ(out.sizes(), ref.sizes()) << tensor::shapeStr(c.x) << " * " << tensor::shapeStr(c.w);
    const double scale = ref.abs().max().item<double>();
    EXPECT_LT((out - ref).abs().max().item<double>(), 1e-5 * scale) << tensor::shapeStr(c.x);
    auto g = torch::randn_like(ref);
    auto gr = torch::autograd::grad({ref}, {x, w}, {g});
    auto go = torch::autograd::grad({out}, {x, w}, {g});
    for (int k = 0; k < 2; ++k)
      EXPECT_LT((go[k] - gr[k]).abs().max().item<double>(), 1e-5 * gr[k].abs().max().item<double>())
          << (k == 0 ? "input" : "weight") << " gradient, " << tensor::shapeStr(c.x);
  }
}

TEST(ResNet, ChannelsLastWeightsKeepValuesResultsAndCheckpoints) {
  // ResNet keeps its convolution weights channels-last (oneDNN's fast layout); BIUD_CHANNELS_LAST=0
  // keeps PyTorch's default layout. Same seed: the same values; forward and gradients equal within float
  // rounding (sums in another order); its safetensors checkpoint reads back with the same values.
  for (int dims : {2, 3}) {
    auto o = resnetPreset("resnet18", dims);
    o.width = 8;
    o.in_channels = 1;
    ::setenv("BIUD_CHANNELS_LAST", "0", 1);
    torch::manual_seed(0);
    ResNet plain(o);
    ::setenv("BIUD_CHANNELS_LAST", "1", 1);
    torch::manual_seed(0);
    ResNet fast(o);
    ::unsetenv("BIUD_CHANNELS_LAST");
    const auto fmt = dims == 3 ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::ChannelsLast;
    auto w = fast->named_parameters()["layer1.0.conv1.weight"];
    EXPECT_TRUE(w.is_contiguous(fmt)) << dims;
    EXPECT_FALSE(w.is_contiguous()) << dims;
    EXPECT_TRUE(plain->named_parameters()["layer1.0.conv1.weight"].is_contiguous()) << dims;
    // The 1-channel stem too: channels-last strides (the input-channel stride is 1), not the default ones.
    EXPECT_EQ(fast->named_parameters()["conv1.weight"].stride(1), 1) << dims;
    EXPECT_NE(plain->named_parameters()["conv1.weight"].stride(1), 1) << dims;
    const auto a = tensor::stateDict(*plain), b = tensor::stateDict(*fast);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
    torch::manual_seed(1);
    auto x = dims == 3 ? torch::randn({2, 1, 24, 40, 40}) : torch::randn({4, 1, 48, 48});
    auto ya = plain->forward(x), yb = fast->forward(x);
    EXPECT_TRUE(torch::allclose(ya, yb, 1e-4, 1e-5)) << dims << ": " << (ya - yb).abs().max().item<float>();
    ya.pow(2).sum().backward();
    yb.pow(2).sum().backward();
    for (auto& p : plain->named_parameters()) {  // PyTorch's own layouts differ by ~2e-5 of max |g| here
      auto g = fast->named_parameters()[p.key()].grad();
      const float diff = (p.value().grad() - g).abs().max().item<float>(), scale = g.abs().max().item<float>();
      EXPECT_LE(diff, 1e-4f * scale) << dims << " " << p.key();
    }
    TempDir d;
    tensor::writeSafetensors((d / "fast.safetensors").string(), tensor::stateDict(*fast));
    const auto back = tensor::readSafetensors((d / "fast.safetensors").string());
    for (const auto& [k, t] : a) EXPECT_TRUE(torch::equal(back.at(k), b.at(k))) << k;
  }
}

TEST(ResNet3D, PoolingMeanMaxGemOverTheLastStage) {
  // Each pooling worked out from the tokens (the last stage's feature map) by hand; GeM at its
  // initial p = 3 is the cube root of the mean cube, and its p receives a gradient.
  torch::manual_seed(1);
  const auto x = torch::randn({2, 1, 40, 40, 40});  // 2 x 2 x 2 = 8 tokens per volume
  std::map<std::string, torch::Tensor> pooled;
  for (const char* pool : {"mean", "max", "gem"}) {
    auto c = net("resnet3d18");
    c.pool = pool;
    torch::manual_seed(2);  // the same weights for all three
    auto enc = makeVisualEncoder(c);
    auto out = enc->encode(x);
    ASSERT_EQ(out.tokens.sizes(), (Shape{2, 8, 64})) << pool;
    EXPECT_EQ(out.pooled.sizes(), (Shape{2, 64})) << pool;
    const auto t = out.tokens.detach();
    torch::Tensor want;
    if (std::string(pool) == "mean") want = t.mean(1);
    if (std::string(pool) == "max") want = std::get<0>(t.max(1));
    if (std::string(pool) == "gem") want = t.clamp_min(1e-6).pow(3).mean(1).pow(1.0 / 3);
    EXPECT_TRUE(torch::allclose(out.pooled.detach(), want, 1e-5, 1e-6)) << pool;
    pooled[pool] = out.pooled.detach();
    if (std::string(pool) == "gem") {
      out.pooled.sum().backward();
      // Keep the dict: find() points into it (ASan: heap-use-after-free on a temporary's item).
      const auto params = enc->named_parameters();
      const auto* p = params.find("gem_p");
      ASSERT_NE(p, nullptr);
      EXPECT_GT(p->grad().abs().item<double>(), 0.0);
    }
  }
  // GeM lies between the mean and the max (power-mean inequality).
  EXPECT_TRUE((pooled["gem"] >= pooled["mean"] - 1e-5).all().item<bool>());
  EXPECT_TRUE((pooled["gem"] <= pooled["max"] + 1e-5).all().item<bool>());
  auto bad = net("resnet3d18");
  bad.pool = "cls";
  EXPECT_THROW(makeVisualEncoder(bad), ConfigError);
}

TEST(ResNet3D, StemKernelDepthFromConfigIsTheStemsConvolution) {
  // model.ct_encoder.stem_kernel_depth: the stem's weight is [8, 1, 3, 7, 7] and the stem's
  // output is torch::conv3d with that weight, stride 2 and padding (1, 3, 3), worked out here.
  auto c = net("resnet3d18");
  c.stem_kernel_depth = 3;
  torch::manual_seed(3);
  auto enc = makeVisualEncoder(c);
  auto* r = dynamic_cast<ResNetImpl*>(enc.get());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->opt.stem_kernel_depth, 3);
  const auto params = enc->named_parameters();
  const auto* w = params.find("conv1.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->sizes(), (Shape{8, 1, 3, 7, 7}));
  torch::NoGradGuard ng;
  const auto x = torch::randn({1, 1, 12, 20, 20});
  const auto got = r->conv1.forward(x);
  const auto want = torch::conv3d(x, *w, {}, 2, {1, 3, 3});
  ASSERT_EQ(got.sizes(), (Shape{1, 8, 6, 10, 10}));
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  // The default stays the inflated torchvision stem (7 slices); a 2D ResNet has no depth.
  auto def = makeVisualEncoder(net("resnet3d18"));
  EXPECT_EQ(def->named_parameters().find("conv1.weight")->sizes(), (Shape{8, 1, 7, 7, 7}));
  auto flat = net("resnet18");
  flat.stem_kernel_depth = 3;
  EXPECT_THROW(makeVisualEncoder(flat), ConfigError);
}

TEST(ResNet3D, InflationFrom2dKeepsActivationsOfStackedSlices) {
  // I3D's "boring video" property: on a volume of identical slices, an inflated convolution
  // equals the 2D convolution of one slice (away from the depth borders).
  torch::manual_seed(0);
  auto o2 = resnetPreset("resnet18", 2);
  o2.width = 8;
  o2.num_classes = 10;
  ResNet r2(o2);
  auto o3 = resnetPreset("resnet18", 3);
  o3.width = 8;
  o3.in_channels = 1;
  o3.stem_kernel_depth = 3;
  ResNet r3(o3);
  auto w = inflate2dTo3d(tensor::stateDict(*r2), *r3);
  EXPECT_EQ(w.count("fc.weight"), 0u);  // the 3D encoder has no classifier
  tensor::loadStateDict(*r3, w);        // strict: every 3D weight came from 2D
  auto img = torch::randn({1, 1, 16, 16});
  auto vol = img.unsqueeze(2).expand({1, 1, 5, 16, 16}).contiguous();
  torch::NoGradGuard ng;
  auto w2 = r2->named_parameters()["conv1.weight"].sum(1, true);  // RGB stem summed to 1 channel
  auto y2 = torch::conv2d(img, w2, {}, 2, 3);
  auto y3 = torch::conv3d(vol, r3->named_parameters()["conv1.weight"], {}, 2, {1, 3, 3});
  EXPECT_LT((y3.select(2, 1) - y2).abs().max().item<double>(), 1e-5);  // depth 1 of 3 outputs sees slices 1..3
  auto k2 = r2->named_parameters()["layer1.0.conv1.weight"];
  EXPECT_LT((r3->named_parameters()["layer1.0.conv1.weight"].sum(2) - k2).abs().max().item<double>(), 1e-6);
  // Through the registry: 2D weights named for a 3D ResNet are inflated on load (stem depth 7).
  TempDir tmp("infl");
  tensor::saveModule(*r2, (tmp / "r18.safetensors").string());
  auto c = net("resnet3d18");
  c.weights = (tmp / "r18.safetensors").string();
  auto enc = makeVisualEncoder(c);
  auto w3 = enc->named_parameters()["layer2.0.conv2.weight"];
  EXPECT_EQ(w3.dim(), 5);
  EXPECT_LT((w3.sum(2) - r2->named_parameters()["layer2.0.conv2.weight"]).abs().max().item<double>(), 1e-6);
}

TEST(Models, SaveLoadRoundTripAndRegistryErrors) {
  TempDir tmp("rt");
  torch::manual_seed(1);
  auto a = makeVisualEncoder(net("vit3d"));
  const auto f = (tmp / "vit.safetensors").string();
  tensor::saveModule(*a, f);
  torch::manual_seed(2);
  auto c = net("vit3d");
  c.weights = f;
  auto b = makeVisualEncoder(c);
  a->eval();
  b->eval();
  auto x = torch::randn({1, 1, 32, 64, 64});
  EXPECT_TRUE(torch::equal(a->encode(x).pooled, b->encode(x).pooled));
  // Wrong architecture for the file: a clear error naming the file.
  auto wrong = net("vit3d");
  wrong.dim = 96;
  wrong.heads = 4;
  wrong.weights = f;
  try {
    makeVisualEncoder(wrong);
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("shape mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
  try {
    makeVisualEncoder(net("vit3"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean `vit3d`"), std::string::npos) << e.what();
  }
}

TEST(Heads, TemperatureIsClampedAndProjectionNormalised) {
  Temperature t(0.07, 0.01, 1.0);
  EXPECT_NEAR(t->forward().item<double>(), 0.07, 1e-6);
  {
    torch::NoGradGuard ng;
    t->log_tau.fill_(std::log(1e-4));
  }
  EXPECT_NEAR(t->forward().item<double>(), 0.01, 1e-6);
  EXPECT_NEAR(t->scale().item<double>(), 100.0, 1e-3);
  ProjectionHead h(64, 32, 128);
  auto y = h->forward(torch::randn({5, 64}));
  EXPECT_LT((y.norm(2, -1) - 1).abs().max().item<double>(), 1e-5);
  DistillAdapter ad(64, 2048);
  EXPECT_EQ(ad->forward(torch::randn({3, 64})).sizes(), (Shape{3, 2048}));
}

TEST(Fusion, CrossAttendsToCtAndTiesMlmToWordEmbeddings) {
  torch::manual_seed(0);
  auto tc = net("bert");
  tc.vocab_size = 100;
  auto bert = makeTextEncoder(tc);
  auto fusion = makeFusionEncoder(net("fusion"), bert, /*ctDim=*/48);
  auto ids = torch::randint(1, 100, {2, 7});
  auto mask = torch::ones({2, 7}, torch::kLong);
  mask[1].narrow(0, 5, 2).fill_(0);
  auto ct = torch::randn({2, 10, 48}, torch::requires_grad());
  auto h = fusion->forward(bert->encode(ids, mask).hidden, mask, ct);
  EXPECT_EQ(h.sizes(), (Shape{2, 7, 64}));
  auto logits = fusion->mlmLogits(h);
  EXPECT_EQ(logits.sizes(), (Shape{2, 7, 100}));
  logits.logsumexp(-1).sum().backward();
  EXPECT_GT(ct.grad().abs().sum().item<double>(), 0.0);  // the text sees the CT tokens
  expectAllGrads(*fusion);
  // Tied: the MLM decoder is the word embedding table, which gets gradient through both paths.
  EXPECT_EQ(fusion->named_parameters().find("cls.predictions.decoder.weight"), nullptr);
  EXPECT_GT(bert->embeddings->word_embeddings->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(ReportDecoder, KvCacheBeamAndGreedy) {
  torch::manual_seed(0);
  auto dc = net("report_decoder");
  dc.vocab_size = 120;  // > the default BERT special ids
  dc.max_len = 32;
  auto dec = makeReportDecoder(dc, /*memoryDim=*/48);
  dec->opt.bos_id = 1;
  dec->opt.eos_id = 2;
  dec->eval();
  auto mem = torch::randn({2, 9, 48});
  auto ids = torch::randint(3, 120, {2, 6});
  // Teacher forcing == incremental decoding with the cache (1 token, then 2, then 3).
  torch::Tensor full, inc;
  {
    torch::NoGradGuard ng;
    full = dec->forward(ids, mem);
    auto cache = dec->startCache(mem);
    inc = torch::cat({dec->step(ids.narrow(1, 0, 1), cache), dec->step(ids.narrow(1, 1, 2), cache),
                      dec->step(ids.narrow(1, 3, 3), cache)},
                     1);
  }
  EXPECT_EQ(full.sizes(), (Shape{2, 6, 120}));
  EXPECT_LT((full - inc).abs().max().item<double>(), 1e-5);
  // Causality: changing a later token leaves earlier logits unchanged.
  auto ids2 = ids.clone();
  ids2[0][4] = 7;
  {
    torch::NoGradGuard ng;
    auto f2 = dec->forward(ids2, mem);
    EXPECT_LT((f2.narrow(1, 0, 4) - full.narrow(1, 0, 4)).abs().max().item<double>(), 1e-6);
  }
  auto g = dec->greedy(mem, {}, 12);
  auto b1 = dec->beamSearch(mem, {}, 1, 1.0, 12);
  ASSERT_EQ(g.tokens.size(), 2u);
  EXPECT_EQ(g.tokens, b1.tokens);
  // Greedy tokens are the argmax of teacher forcing on its own output.
  {
    torch::NoGradGuard ng;
    auto seq = g.tokens[0];
    std::vector<std::int64_t> in{1};
    in.insert(in.end(), seq.begin(), seq.end() - 1);
    auto lf = dec->forward(torch::tensor(in).unsqueeze(0), mem.narrow(0, 0, 1));
    auto am = lf.argmax(-1)[0];
    for (std::size_t i = 0; i < seq.size(); ++i)
      EXPECT_EQ(am[static_cast<std::int64_t>(i)].item<std::int64_t>(), seq[i]);
  }
  // Beam scores are the teacher-forced log-probability of the returned tokens (penalty 0 = raw sum).
  auto b4 = dec->beamSearch(mem, {}, 4, 0.0, 12);
  for (int i = 0; i < 2; ++i) {
    torch::NoGradGuard ng;
    const auto& seq = b4.tokens[static_cast<std::size_t>(i)];
    std::vector<std::int64_t> in{1};
    in.insert(in.end(), seq.begin(), seq.end() - 1);
    auto lp = torch::log_softmax(dec->forward(torch::tensor(in).unsqueeze(0), mem.narrow(0, i, 1)).to(torch::kFloat64),
                                 -1)[0];
    double sum = 0;
    for (std::size_t t = 0; t < seq.size(); ++t) sum += lp[static_cast<std::int64_t>(t)][seq[t]].item<double>();
    EXPECT_NEAR(b4.scores[static_cast<std::size_t>(i)], sum, 1e-4);
  }
  // Gradients reach every parameter in teacher forcing.
  dec->train();
  dec->forward(ids, mem).logsumexp(-1).sum().backward();
  expectAllGrads(*dec);
}

// One tower of a biud checkpoint (e.g. the X-ray teacher's text encoder) initialises a network:
// `weights` may name a run folder (checkpoints/latest) or a checkpoint folder, and
// `weights_prefix` selects the tower's keys. The other towers in the file are not read.
TEST(Models, WeightsFromOneTowerOfARunCheckpoint) {
  TempDir tmp("tower");
  torch::manual_seed(3);
  NetConfig tc{"bert"};
  tc.vocab_size = 50;
  auto teacherText = makeTextEncoder(tc);
  auto other = makeVisualEncoder(net("vit3d"));
  tensor::TensorMap all;
  for (const auto& [k, v] : tensor::stateDict(*teacherText)) all["text_encoder." + k] = v;
  for (const auto& [k, v] : tensor::stateDict(*other)) all["image_encoder." + k] = v;
  const auto ck = tmp / "run" / "checkpoints" / "step_000010";
  std::filesystem::create_directories(ck);
  tensor::writeSafetensors((ck / "model.safetensors").string(), all);
  biud::fs::atomicWrite((ck / "state.json").string(), "{}");
  biud::fs::atomicWrite((tmp / "run" / "checkpoints" / "latest").string(), "step_000010\n");

  auto ids = torch::randint(0, 50, {2, 7});
  auto mask = torch::ones({2, 7}, torch::kLong);
  teacherText->eval();
  const auto want = teacherText->encode(ids, mask).pooled;
  for (const auto& where : {(tmp / "run").string(), ck.string()}) {
    torch::manual_seed(4);
    NetConfig c = tc;
    c.weights = where;
    c.weights_prefix = "text_encoder.";
    auto student = makeTextEncoder(c);
    student->eval();
    EXPECT_TRUE(torch::equal(student->encode(ids, mask).pooled, want)) << where;
  }
  // Without the prefix the file's other towers do not fit: a clear error naming the file.
  NetConfig bad = tc;
  bad.weights = (tmp / "run").string();
  EXPECT_THROW(makeTextEncoder(bad), biud::Error);
}

// trainMode(): train() everywhere except the largest fully frozen submodules, whose dropout and
// batch-norm statistics must stay off; parameter-free modules follow their parent.
namespace {
struct FrozenPart : torch::nn::Module {
  torch::nn::Linear lin = register_module("lin", torch::nn::Linear(4, 4));
  torch::nn::Dropout drop = register_module("drop", torch::nn::Dropout(0.5));
  torch::nn::BatchNorm1d bn = register_module("bn", torch::nn::BatchNorm1d(4));
  torch::Tensor forward(const torch::Tensor& x) { return bn(drop(lin(x))); }
};
struct MixedPart : torch::nn::Module {
  torch::nn::Linear lin = register_module("lin", torch::nn::Linear(4, 4));
  std::shared_ptr<FrozenPart> frozen = register_module("frozen", std::make_shared<FrozenPart>());
  torch::nn::Dropout drop = register_module("drop", torch::nn::Dropout(0.5));
  torch::Tensor forward(const torch::Tensor& x) { return drop(frozen->forward(lin(x))); }
};
struct Root : torch::nn::Module {
  std::shared_ptr<MixedPart> mixed = register_module("mixed", std::make_shared<MixedPart>());
  torch::nn::Dropout drop = register_module("drop", torch::nn::Dropout(0.5));
};
}  // namespace

TEST(Models, TrainModeKeepsFrozenPartsInEvalMode) {
  Root root;
  auto& mixed = *root.mixed;
  freeze(*mixed.frozen);
  mixed.lin->weight.requires_grad_(false);  // partly frozen: its bias still trains
  root.eval();
  trainMode(root);
  EXPECT_TRUE(root.is_training());
  EXPECT_TRUE(mixed.is_training());
  EXPECT_TRUE(mixed.lin->is_training());
  EXPECT_TRUE(mixed.drop->is_training());  // dropout beside trainable layers
  EXPECT_TRUE(root.drop->is_training());
  EXPECT_FALSE(mixed.frozen->is_training());
  for (const auto& c : mixed.frozen->children()) EXPECT_FALSE(c->is_training());
  // A frozen batch norm keeps its running statistics through a forward in training mode.
  const auto mean = mixed.frozen->bn->running_mean.clone();
  mixed.forward(torch::randn({8, 4}));
  EXPECT_TRUE(torch::equal(mean, mixed.frozen->bn->running_mean));
  // Without trainMode(), train() would have changed them (the test can fail).
  root.train();
  mixed.forward(torch::randn({8, 4}));
  EXPECT_FALSE(torch::equal(mean, mixed.frozen->bn->running_mean));
}
