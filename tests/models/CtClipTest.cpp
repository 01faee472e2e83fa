// CT-CLIP in biud (models/CtVit.h, models/CtClip.h) against CT-CLIP's own PyTorch code
// (tests/reference/ctclip_reference.py runs ibrahimethemhamamci/CT-CLIP's modules unchanged) on
// the same random weights and inputs: CTViT tokens, codebook choices, image and text latents,
// CTCLIP.forward's logits; the importer's reading of a torch.save'd checkpoint and of the released
// model's layout; CT-CLIP's own preprocessing of NIfTI files vs biud's cache.
//
// CT-CLIP quantises every CTViT token to its nearest codebook entry (cosine similarity). A token
// whose two best codes are within float rounding of each other may pick the other code in another
// implementation; the tests compare codes wherever CT-CLIP's top-2 gap exceeds 1e-5 (all must
// agree) and the latents at 1e-4 (seeded inputs with no such near-tie).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/config/Config.h"
#include "biud/core/Error.h"
#include "biud/data/TextBatch.h"
#include "biud/image/CtCache.h"
#include "biud/models/CtClip.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/Tokenizer.h"
#include "common/TestUtil.h"

using namespace biud;
using biud::test::TempDir;
namespace stdfs = std::filesystem;

namespace {

double maxAbs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

const std::vector<std::string> kWords = {"is",  "present", "not",   "pleural", "effusion", "lung",    "nodule",
                                         "##s", "the",     "heart", ",",       "medical",  "material"};

/// A small CT-CLIP (CTViT and BERT widths cut down, patch sizes as released).
nlohmann::json smallConfig(const std::string& vocab, std::int64_t imageSize, std::int64_t frames, int seed) {
  return {{"seed", seed},
          {"image",
           {{"dim", 32},
            {"codebook_size", 8},
            {"image_size", imageSize},
            {"patch_size", 20},
            {"temporal_patch_size", 10},
            {"spatial_depth", 2},
            {"temporal_depth", 2},
            {"dim_head", 16},
            {"heads", 2}}},
          {"text",
           {{"vocab_size", static_cast<int>(kWords.size()) + 6},
            {"hidden_size", 64},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"intermediate_size", 128}}},
          {"latent", 16},
          {"vocab", vocab},
          {"forward", true},
          {"video", {2, frames}},
          {"texts", {"Pleural effusion is present.", "Pleural effusion is not present.", "Lung nodules, the HEART."}}};
}

/// Runs ctclip_reference.py; false (the test skips) without CT-CLIP's source.
bool reference(const std::string& args, std::string* out = nullptr) {
  const auto o = test::runPython("ctclip_reference.py", args);
  if (out) *out = o;
  return o.rfind("SKIP", 0) != 0 && o.find("\nSKIP ") == std::string::npos;
}

/// CT-CLIP's ctclip.pt -> ctclip.safetensors with the shipped converter (Python's torch.load).
std::string convert(const stdfs::path& dir) {
  const auto out = (dir / "ctclip.safetensors").string();
  auto r = test::run(test::quote(test::python()) + " " +
                     test::quote((test::sourceDir() / "scripts" / "ctclip_to_safetensors.py").string()) + " " +
                     test::quote((dir / "ctclip.pt").string()) + " " + test::quote(out));
  EXPECT_EQ(r.rc, 0) << r.out;
  return out;
}

models::CtClip importSmall(const stdfs::path& dir, std::vector<std::string>* dropped = nullptr) {
  const auto file = (dir / "ctclip.pt").string();
  auto sd = models::readCtClipCheckpoint(file);
  models::CtClipHints hints;
  hints.text_heads = 4;
  auto opts = models::inferCtClipOptions(sd, hints, file);
  models::CtClip model(opts);
  auto tensors = models::selectCtClipTensors(sd, model, file, dropped);
  tensor::loadStateDict(*model, tensors, {}, file);
  model->eval();
  return model;
}

}  // namespace

TEST(CtClip, EqualsCtClipCodeOnRandomWeights) {
  TempDir t("ctclip");
  const auto vocab = test::writeTinyVocab(t / "vocab.txt", kWords);
  test::writeText(t / "small.json", smallConfig(vocab, 80, 20, 3).dump());
  if (!reference("model " + test::quote((t / "m").string()) + " " + test::quote((t / "small.json").string())))
    GTEST_SKIP() << "CT-CLIP's source is not installed (tests/reference/ctclip_setup.py)";
  // The .pt as CT-CLIP saves it (an OrderedDict state dict), read without Python, holds what
  // torch.load gives (written out by scripts/ctclip_to_safetensors.py), bit for bit.
  {
    const auto fromPt = models::readCtClipCheckpoint((t / "m" / "ctclip.pt").string());
    const auto fromTorch = models::readCtClipCheckpoint(convert(t / "m"));
    ASSERT_EQ(fromPt.size(), fromTorch.size());
    for (const auto& [k, v] : fromTorch) {
      ASSERT_TRUE(fromPt.count(k)) << k;
      EXPECT_EQ(fromPt.at(k).sizes(), v.sizes()) << k;
      EXPECT_EQ(fromPt.at(k).scalar_type(), v.scalar_type()) << k;
      EXPECT_TRUE(v.numel() == 0 || torch::equal(fromPt.at(k).contiguous(), v)) << k;
    }
  }
  std::vector<std::string> dropped;
  auto model = importSmall(t / "m", &dropped);
  // The architecture read from the shapes is the one the reference was built with.
  const auto& im = model->opt.image;
  EXPECT_EQ(im.dim, 32);
  EXPECT_EQ(im.codebook_size, 8);
  EXPECT_EQ(im.image_size, 80);
  EXPECT_EQ(im.heads, 2);
  EXPECT_EQ(im.dim_head, 16);
  EXPECT_EQ(im.spatial_depth, 2);
  EXPECT_EQ(im.temporal_depth, 2);
  EXPECT_EQ(model->opt.latent_dim, 16);
  EXPECT_EQ(model->opt.text.num_hidden_layers, 2);
  EXPECT_EQ(model->opt.text.intermediate_size, 128);
  // What the zero-shot model never reads, and only that, is dropped.
  for (const char* k :
       {"visual_transformer.to_pixels.0.weight", "visual_transformer.to_patch_emb_first_frame.2.weight",
        "visual_transformer.vq._codebook.cluster_size", "to_visual_latent_extra.weight",
        "text_transformer.pooler.dense.weight", "visual_transformer.enc_spatial_transformer.layers.0.1.null_kv"})
    EXPECT_NE(std::find(dropped.begin(), dropped.end(), k), dropped.end()) << k;

  auto ref = tensor::readSafetensors((t / "m" / "ref.safetensors").string());
  torch::NoGradGuard ng;
  const auto video = ref["video"];  // CT-CLIP's [B, 1, k, i, j]
  // CTViT before the quantiser.
  auto encoded = model->visual_transformer->encode(video);
  ASSERT_EQ(encoded.sizes(), ref["encoded"].sizes());
  EXPECT_LT(maxAbs(encoded, ref["encoded"]), 1e-4);
  // Codebook choices: equal wherever CT-CLIP's choice is not a near-tie.
  auto tokens = model->visual_transformer->forward(video);
  ASSERT_EQ(tokens.sizes(), ref["tokens"].sizes());
  const auto flatRef = ref["tokens"].reshape({-1, im.dim}), flatGot = tokens.reshape({-1, im.dim});
  const auto differ = (flatRef - flatGot).abs().amax(-1) > 1e-6;
  const auto clear = ref["gap"] > 1e-5;
  EXPECT_EQ((differ & clear).sum().item<std::int64_t>(), 0) << "codes differ on tokens whose top-2 gap exceeds 1e-5";
  EXPECT_EQ(differ.sum().item<std::int64_t>(), 0) << "near-tie tokens chose another code: pick another seed";
  EXPECT_LT(maxAbs(tokens, ref["tokens"]), 1e-4);
  // Image latents from a biud-layout volume ([z, y, x]: the in-plane transpose of CT-CLIP's).
  auto il = model->encodeImage(video.transpose(3, 4));
  EXPECT_LT(maxAbs(il, ref["image_latents"]), 1e-4);
  // Text latents from CT-CLIP's tokenizer output (padded to 512 as zero_shot.py does).
  auto tl = model->encodeText(ref["ids"], ref["mask"]);
  EXPECT_LT(maxAbs(tl, ref["text_latents"]), 1e-4);
  // CTCLIP.forward(texts 0 and 1, image b) = exp(temperature) * <text, image>.
  auto logits = model->logitScale() * torch::matmul(il, tl.slice(0, 0, 2).t());
  EXPECT_LT(maxAbs(logits, ref["logits"]), 1e-4 * model->logitScale());
  EXPECT_NEAR(model->logitScale(), std::exp(2.3), 1e-5);
  std::cout << "max |biud - CT-CLIP|: tokens before VQ " << maxAbs(encoded, ref["encoded"]) << ", image latents "
            << maxAbs(il, ref["image_latents"]) << ", text latents " << maxAbs(tl, ref["text_latents"]) << ", logits "
            << maxAbs(logits, ref["logits"]) << "; smallest top-2 code gap " << ref["gap"].min().item<double>() << "\n";

  // biud's WordPiece gives BertTokenizer(vocab, do_lower_case=True)'s ids.
  TextConfig tc;
  tc.vocab = vocab;
  tc.max_length = 512;
  auto tok = text::makeTokenizer(tc);
  auto tb = data::tokenizeBatch(
      *tok, {"Pleural effusion is present.", "Pleural effusion is not present.", "Lung nodules, the HEART."}, 512);
  const auto L = tb.ids.size(1);
  ASSERT_LE(L, 512);
  EXPECT_TRUE(torch::equal(tb.ids, ref["ids"].slice(1, 0, L))) << tb.ids << ref["ids"].slice(1, 0, L);
  EXPECT_EQ(ref["mask"].slice(1, L).sum().item<std::int64_t>(), 0);
  // The text latent does not depend on the padding length.
  EXPECT_LT(maxAbs(model->encodeText(tb.ids, tb.mask), ref["text_latents"]), 1e-4);
}

TEST(CtClip, CheckpointErrorsNameTheKey) {
  TempDir t("ctclip_err");
  models::CtClipOptions o;
  o.image.dim = 16, o.image.heads = 2, o.image.dim_head = 8, o.image.codebook_size = 4, o.image.image_size = 40;
  o.image.spatial_depth = o.image.temporal_depth = 1;
  o.text = models::BertOptions::preset("tiny");
  o.text.vocab_size = 20;
  o.latent_dim = 8;
  models::CtClip model(o);
  auto sd = tensor::stateDict(*model);
  models::CtClipHints h;
  h.text_heads = 4;
  // Round trip through the shapes.
  auto back = models::inferCtClipOptions(sd, h, "x.pt");
  EXPECT_EQ(back.toJson(), o.toJson());
  // An unknown tensor, a missing one, a wrong patch split.
  auto extra = sd;
  extra["visual_transformer.dec_spatial_transformer.norm_out.gamma"] = torch::ones({16});
  try {
    models::selectCtClipTensors(extra, model, "x.pt");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("dec_spatial_transformer.norm_out.gamma"), std::string::npos) << e.what();
  }
  auto missing = sd;
  missing.erase("to_text_latent.weight");
  EXPECT_THROW(models::inferCtClipOptions(missing, h, "x.pt"), ValueError);
  h.temporal_patch_size = 4;
  try {
    models::inferCtClipOptions(sd, h, "x.pt");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("--temporal-patch-size"), std::string::npos) << e.what();
  }
  // ctclip.json round trip, and a file that is not a checkpoint.
  test::writeText(t / "ctclip.json", o.toJson());
  EXPECT_EQ(models::CtClipOptions::fromJsonFile((t / "ctclip.json").string()).toJson(), o.toJson());
  // torch.save files the reader refuses with one line naming the file: a non-tensor entry, the legacy
  // (non-zip) format, a custom class.
  auto r = test::run(
      test::quote(test::python()) + " -c " +
      test::quote(
          "import torch, collections, sys; d = sys.argv[1]\n"
          "torch.save(collections.OrderedDict(w=torch.ones(2), step=3), d + '/int.pt')\n"
          "torch.save({'w': torch.ones(2)}, d + '/legacy.pt', _use_new_zipfile_serialization=False)\n"
          "torch.save({'w': torch.nn.Linear(2, 2)}, d + '/module.pt')\n"
          "torch.save({'model': collections.OrderedDict(w=torch.arange(6.).reshape(2, 3).t())}, d + '/pkg.pt')") +
      " " + test::quote(t.str()));
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const auto& [file, want] :
       std::vector<std::pair<std::string, std::string>>{{"int.pt", "entry `step` is not a tensor"},
                                                        {"legacy.pt", "is not a torch.save zip archive"},
                                                        {"module.pt", "is not supported"}}) {
    try {
      models::readCtClipCheckpoint((t / file).string());
      ADD_FAILURE() << file << ": no error";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << file << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
  }
  // A package nesting the state dict under "model"; a transposed (strided) tensor keeps its values.
  const auto pkg = models::readCtClipCheckpoint((t / "pkg.pt").string());
  ASSERT_EQ(pkg.size(), 1u);
  EXPECT_TRUE(
      torch::equal(pkg.at("w").contiguous(), torch::arange(6.0, torch::kFloat32).reshape({2, 3}).t().contiguous()));
  test::writeText(t / "bad.pt", "not a pickle");
  try {
    models::readCtClipCheckpoint((t / "bad.pt").string());
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pt` is not a torch.save zip archive"), std::string::npos) << e.what();
  }
}

namespace {

/// The released zero-shot model's hyper-parameters (scripts/run_zero_shot.py; CXR-BERT = BERT-base).
nlohmann::json releasedConfig(const std::string& vocab, bool forward) {
  return {{"seed", 5},
          {"image",
           {{"dim", 512},
            {"codebook_size", 8192},
            {"image_size", 480},
            {"patch_size", 20},
            {"temporal_patch_size", 10},
            {"spatial_depth", 4},
            {"temporal_depth", 4},
            {"dim_head", 32},
            {"heads", 8}}},
          {"text", nlohmann::json::object()},
          {"latent", 512},
          {"vocab", vocab},
          {"forward", forward},
          {"video", {1, 240}},
          {"texts", {"Pleural effusion is present.", "Pleural effusion is not present."}}};
}

}  // namespace

// The released layout (1.8 GB of random weights): every key and shape the importer expects, the
// architecture read back from the shapes, the unused tensors named. No forward pass (see below).
TEST(CtClip, ReleasedLayoutImports) {
  TempDir t("ctclip_rel");
  const auto vocab = test::writeTinyVocab(t / "vocab.txt", kWords);
  auto cfg = releasedConfig(vocab, false);
  cfg["format"] = "safetensors";  // the .pt -> converter path is covered by the small model's test
  test::writeText(t / "released.json", cfg.dump());
  if (!reference("model " + test::quote((t / "m").string()) + " " + test::quote((t / "released.json").string())))
    GTEST_SKIP() << "CT-CLIP's source is not installed (tests/reference/ctclip_setup.py)";
  const auto file = (t / "m" / "ctclip.safetensors").string();
  auto sd = models::readCtClipCheckpoint(file);
  EXPECT_EQ(sd.size(), 361u);
  auto opts = models::inferCtClipOptions(sd, {}, file);
  EXPECT_EQ(nlohmann::json::parse(opts.toJson())["image"], nlohmann::json::parse([] {
              models::CtClipOptions o;
              o.image = models::CtVitOptions::released();
              return o.toJson();
            }())["image"]);
  EXPECT_EQ(opts.latent_dim, 512);
  EXPECT_EQ(opts.text.hidden_size, 768);
  EXPECT_EQ(opts.text.num_hidden_layers, 12);
  EXPECT_EQ(opts.text.vocab_size, 30522);
  EXPECT_EQ(opts.text.intermediate_size, 3072);
  models::CtClip model(opts);
  std::vector<std::string> dropped;
  auto tensors = models::selectCtClipTensors(sd, model, file, &dropped);
  EXPECT_EQ(tensor::loadStateDict(*model, tensors, {}, file).loaded.size(), tensors.size());
  EXPECT_EQ(model->to_visual_latent->weight.size(1), 294912);  // 24 x 24 x 512, CT-CLIP's dim_image
  // Dropped: decoder heads, first-frame embedding, codebook statistics, CLOOB copies, pooler,
  // 8 layers x (null_kv + context_norm gamma/beta).
  std::map<std::string, int> groups;
  for (const auto& k : dropped) groups[k.substr(0, k.find('.', k.find('.') + 1))]++;
  EXPECT_TRUE(groups.count("visual_transformer.to_pixels"));
  EXPECT_TRUE(groups.count("visual_transformer.to_patch_emb_first_frame"));
  EXPECT_TRUE(groups.count("to_visual_latent_extra.weight") || groups.count("to_visual_latent_extra"));
  EXPECT_TRUE(groups.count("text_transformer.pooler"));
  EXPECT_EQ(tensors.size() + dropped.size(), sd.size());
}

// The released size end to end (one 480 x 480 x 240 volume through the released architecture):
// ~6 minutes on 2 CPU cores, so it runs only with BIUD_TEST_CTCLIP_FULL set (docs/baselines.md
// records its numbers): `1` builds the reference here; a folder reuses one written before by
// `ctclip_reference.py model DIR released.json` (ctclip.pt, ref.safetensors).
TEST(CtClip, ReleasedSizeForwardEqualsCtClipCode) {
  const char* full = std::getenv("BIUD_TEST_CTCLIP_FULL");
  if (!full) GTEST_SKIP() << "set BIUD_TEST_CTCLIP_FULL=1 (~6 min on 2 cores)";
  TempDir t("ctclip_full");
  stdfs::path m = t / "m";
  if (std::string(full) != "1") {
    m = full;
  } else {
    const auto vocab = test::writeTinyVocab(t / "vocab.txt", kWords);
    test::writeText(t / "released.json", releasedConfig(vocab, true).dump());
    if (!reference("model " + test::quote(m.string()) + " " + test::quote((t / "released.json").string())))
      GTEST_SKIP() << "CT-CLIP's source is not installed (tests/reference/ctclip_setup.py)";
  }
  const auto file = (m / (stdfs::exists(m / "ctclip.safetensors") ? "ctclip.safetensors" : "ctclip.pt")).string();
  auto sd = models::readCtClipCheckpoint(file);
  models::CtClip model(models::inferCtClipOptions(sd, {}, file));
  tensor::loadStateDict(*model, models::selectCtClipTensors(sd, model, file), {}, file);
  sd.clear();
  model->eval();
  auto ref = tensor::readSafetensors((m / "ref.safetensors").string());
  torch::NoGradGuard ng;
  auto encoded = model->visual_transformer->encode(ref["video"]);
  auto tokens = model->visual_transformer->quantize(encoded);
  const auto differ = (tokens.reshape({-1, 512}) - ref["tokens"].reshape({-1, 512})).abs().amax(-1) > 1e-6;
  EXPECT_EQ((differ & (ref["gap"] > 1e-5)).sum().item<std::int64_t>(), 0);
  auto il = torch::nn::functional::normalize(model->to_visual_latent->forward(tokens.mean(1).reshape({1, -1})),
                                             torch::nn::functional::NormalizeFuncOptions().dim(-1));
  auto tl = model->encodeText(ref["ids"], ref["mask"]);
  std::cout << "released size: max |biud - CT-CLIP| tokens before VQ " << maxAbs(encoded, ref["encoded"])
            << ", codes differing " << differ.sum().item<std::int64_t>() << " of " << differ.numel()
            << " (smallest gap " << ref["gap"].min().item<double>() << "), image latent "
            << maxAbs(il, ref["image_latents"]) << ", text latents " << maxAbs(tl, ref["text_latents"]) << "\n";
  EXPECT_LT(maxAbs(encoded, ref["encoded"]), 1e-3);
  EXPECT_LT(maxAbs(il, ref["image_latents"]), 1e-4);
  EXPECT_LT(maxAbs(tl, ref["text_latents"]), 1e-4);
  EXPECT_LT(maxAbs(model->logitScale() * torch::matmul(il, tl.t()), ref["logits"]), 1e-4 * model->logitScale());
}
