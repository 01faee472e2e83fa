// biud-embed as functions (evaluate/Embed.h): the text lines it reads, and the config's CT encoder
// on volume files against the same encoder (same seed) called directly, with an unreadable
// volume skipped and listed.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/evaluate/Embed.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

TEST(Embed, TextLinesSkipBlankOnes) {
  TempDir t("embed_lines");
  writeText(t / "r.txt", "first report\n\n   \t\nsecond one\r\n \nthird");
  EXPECT_EQ(evaluate::readTextLines((t / "r.txt").string()),
            (std::vector<std::string>{"first report", "second one\r", "third"}));
}

TEST(Embed, VolumesEqualTheEncoderCalledDirectlyAndBadOnesAreListed) {
  TempDir t("embed_fn");
  torch::manual_seed(3);
  const auto a = torch::randn({1, 32, 64, 64}), c = torch::randn({32, 64, 64});  // [C,D,H,W] and [D,H,W]
  tensor::writeSafetensors((t / "a.safetensors").string(), {{"ct", a}});
  writeText(t / "b.safetensors", "not a safetensors file");
  tensor::writeSafetensors((t / "c.safetensors").string(), {{"ct", c}});
  Config cfg;
  cfg.model.ct_encoder.arch = "vit3d";
  cfg.model.ct_encoder.preset = "tiny";
  evaluate::EmbedOptions o;
  o.volumes = {(t / "a.safetensors").string(), (t / "b.safetensors").string(), (t / "c.safetensors").string()};
  o.prepareOut = [&] {
    stdfs::create_directories(t / "out");
    return (t / "out").string();
  };
  torch::manual_seed(11);
  const auto r = evaluate::embed(o, cfg, torch::kCPU);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0]["index"], 1);
  EXPECT_EQ(r.volumes, 3u);
  EXPECT_EQ(r.summary["failed"], 1);
  auto got = tensor::readSafetensors(r.embeddings);
  EXPECT_TRUE(torch::equal(got.at("volume_index"), torch::tensor({0, 2}, torch::kInt64)));

  torch::manual_seed(11);
  auto enc = models::makeVisualEncoder(cfg.model.ct_encoder);
  enc->eval();
  torch::NoGradGuard ng;
  const auto want = torch::cat({enc->encode(a.unsqueeze(0)).pooled, enc->encode(c.unsqueeze(0).unsqueeze(0)).pooled});
  EXPECT_TRUE(torch::allclose(got.at("volume_pooled"), want, 1e-5, 1e-6));
  EXPECT_EQ(r.summary["volumes"]["count"], 2);

  evaluate::EmbedOptions none;
  EXPECT_THROW(evaluate::embed(none, cfg, torch::kCPU), ConfigError);
}

}  // namespace
}  // namespace biud::test
