// biud-embed survives bad volumes: a file that cannot be read (or has the wrong shape) is skipped
// and listed in failures.jsonl, the others are embedded with `volume_index` naming them, exit 3.
// The rows must equal embedding the good volumes alone (same weights: seeded, untrained encoder).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

TEST(EmbedApp, BadVolumesAreSkippedAndListed) {
  TempDir t("embed_bad");
  torch::manual_seed(3);
  for (const char* name : {"a", "c"}) {
    tensor::writeSafetensors((t / (std::string(name) + ".safetensors")).string(),
                             {{"ct", torch::randn({1, 32, 64, 64})}});
  }
  writeText(t / "b.safetensors", "not a safetensors file");
  tensor::writeSafetensors((t / "d.safetensors").string(), {{"ct", torch::randn({2, 3})}});  // wrong shape
  const std::string base = quote(app("biud-embed")) + " --quiet --threads 1 --seed 0" +
                           " --set \"model.ct_encoder={arch: vit3d, preset: tiny}\" --volumes";
  auto r = run(base + " " + quote((t / "a.safetensors").string()) + " " + quote((t / "b.safetensors").string()) + " " +
               quote((t / "c.safetensors").string()) + " " + quote((t / "d.safetensors").string()) + " --out " +
               quote((t / "all").string()));
  EXPECT_EQ(r.rc, 3) << r.out;
  auto all = tensor::readSafetensors((t / "all/embeddings.safetensors").string());
  ASSERT_TRUE(all.count("volume_index"));
  EXPECT_TRUE(torch::equal(all["volume_index"], torch::tensor({0, 2}, torch::kInt64)));
  std::istringstream in(readText(t / "all/failures.jsonl"));
  std::string line;
  std::vector<int> failed;
  while (std::getline(in, line)) failed.push_back(nlohmann::json::parse(line)["index"].get<int>());
  EXPECT_EQ(failed, (std::vector<int>{1, 3}));
  r = run(base + " " + quote((t / "a.safetensors").string()) + " " + quote((t / "c.safetensors").string()) + " --out " +
          quote((t / "good").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  auto good = tensor::readSafetensors((t / "good/embeddings.safetensors").string());
  EXPECT_TRUE(torch::allclose(all["volume_pooled"], good["volume_pooled"], 1e-5, 1e-6));
}

}  // namespace
}  // namespace biud::test
