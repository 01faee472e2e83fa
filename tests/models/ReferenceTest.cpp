// Networks against their Python originals: BERT (HF transformers, real all-MiniLM-L6-v2 weights),
// ResNet-50 and ViT-B/16 (torchvision, random weights), loaded through safetensors by name.
#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/models/Registry.h"
#include "biud/models/ResNet.h"
#include "biud/models/ViT2D.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

using namespace biud;
using biud::test::TempDir;
namespace stdfs = std::filesystem;

namespace {
double maxAbs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The Python references run in one process (models_all.py) and their outputs are cached in the
// test temp folder under a hash of the scripts, so that ctest's one-process-per-test does not
// import torch for every test. A finished cache has a `done` file; concurrent writers race on
// an atomic rename.
const stdfs::path& refDir() {
  static const stdfs::path dir = [] {
    std::string key = test::python();
    for (const char* f : {"models_all.py", "models_bert.py", "models_torchvision.py", "models_torchscript.py"})
      key += test::readText(test::sourceDir() / "tests" / "reference" / f);
    const char* env = std::getenv("BIUD_TEST_TMP");
    const stdfs::path base = env ? stdfs::path(env) : stdfs::temp_directory_path();
    const auto final = base / ("models-ref-" + std::to_string(std::hash<std::string>{}(key)));
    if (stdfs::exists(final / "done")) return final;
    const auto tmp = base / ("models-ref-tmp-" + std::to_string(::getpid()));
    stdfs::remove_all(tmp);
    stdfs::create_directories(tmp);
    test::runPython("models_all.py", test::quote(tmp.string()));
    test::writeText(tmp / "done", "ok");
    std::error_code ec;
    stdfs::rename(tmp, final, ec);
    if (ec) stdfs::remove_all(tmp);  // another process finished first: use its copy
    return final;
  }();
  return dir;
}
}  // namespace

TEST(Reference, BertMatchesHfTransformersOnMiniLM) {
  const auto tmp = refDir() / "bert";
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

  // End to end through biud-embed (its stopgap WordPiece must give HF's ids on these sentences).
  const auto outDir = tmp / "embed";
  auto r = test::run(test::app("biud-embed") + " --quiet --threads 1 --texts " +
                     test::quote((tmp / "sentences.txt").string()) + " --text-model " + test::quote(folder) +
                     " --set model.text_encoder.pool=mean --out " + test::quote(outDir.string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  auto emb = tensor::readSafetensors((outDir / "embeddings.safetensors").string());
  EXPECT_LT(maxAbs(emb["text_pooled"], ref["mean"]), 1e-4);
  EXPECT_TRUE(stdfs::exists(outDir / "biud-embed.json"));
  // Bad input: a clear error and exit code 2.
  auto bad = test::run(test::app("biud-embed") + " --quiet --texts " + test::quote((tmp / "sentences.txt").string()));
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("--text-model"), std::string::npos) << bad.out;
}

TEST(Reference, ResNet50AndViTB16MatchTorchvision) {
  const auto tmp = refDir() / "torchvision";
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

TEST(Reference, TorchScriptTeacherGivesThePythonOutputsFrozen) {
  const auto tmp = refDir() / "torchscript";
  auto ref = tensor::readSafetensors((tmp / "ref.safetensors").string());
  models::TorchScriptEncoderImpl teacher((tmp / "teacher.pt").string(), 24);
  auto out = teacher.encode(ref["x"]);
  EXPECT_LT(maxAbs(out.pooled, ref["pooled"]), 1e-6);
  EXPECT_LT(maxAbs(out.tokens, ref["tokens"]), 1e-6);
  EXPECT_FALSE(out.pooled.requires_grad());
  // Wrong declared width and a non-TorchScript file are clear errors.
  models::TorchScriptEncoderImpl wrong((tmp / "teacher.pt").string(), 32);
  EXPECT_THROW(wrong.encode(ref["x"]), ValueError);
  test::writeText(tmp / "junk.pt", "junk");
  EXPECT_THROW(models::TorchScriptEncoderImpl((tmp / "junk.pt").string(), 24), IoError);
}
