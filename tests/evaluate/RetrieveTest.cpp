// biud-retrieve as a function (evaluate/Retrieve.h), feature mode: the kept X-rays, their scores
// and the cached teacher features equal a brute-force ranking of the cosine similarities.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/evaluate/Retrieve.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

torch::Tensor unit(const torch::Tensor& x) { return x / x.norm(2, 1, true); }

std::string idsFile(const stdfs::path& p, const std::string& prefix, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += prefix + std::to_string(i) + "\n";
  writeText(p, s);
  return p.string();
}

TEST(Retrieve, FeatureModeEqualsBruteForceTopK) {
  TempDir t("retrieve_fn");
  torch::manual_seed(4);
  const int nCt = 5, nX = 7, k = 3;
  const auto ct = unit(torch::randn({nCt, 4})), xr = unit(torch::randn({nX, 4}));
  // Image features listed in another order than the X-ray reports: looked up by id.
  const auto img = unit(torch::randn({nX, 6}));
  const auto perm = torch::tensor({3, 0, 6, 1, 5, 2, 4}, torch::kInt64);
  tensor::writeSafetensors((t / "ct.safetensors").string(), {{"features", ct}});
  tensor::writeSafetensors((t / "xr.safetensors").string(), {{"features", xr}});
  tensor::writeSafetensors((t / "img.safetensors").string(), {{"features", img.index_select(0, perm)}});
  std::string imgIds;
  for (int i = 0; i < nX; ++i) imgIds += "x" + std::to_string(perm[i].item<std::int64_t>()) + "\n";
  writeText(t / "img_ids.txt", imgIds);

  evaluate::RetrieveOptions o;
  o.topK = k;
  o.ctFeatures = (t / "ct.safetensors").string();
  o.ctIds = idsFile(t / "ct_ids.txt", "c", nCt);
  o.xrayFeatures = (t / "xr.safetensors").string();
  o.xrayIds = idsFile(t / "xr_ids.txt", "x", nX);
  o.imageFeatures = (t / "img.safetensors").string();
  o.imageIds = (t / "img_ids.txt").string();
  o.block = 2;  // several database blocks
  o.queryBlock = 2;
  o.chunk = 2;  // several chunks
  o.prepareOut = [&] {
    stdfs::create_directories(t / "out");
    return (t / "out").string();
  };
  Config cfg;
  const auto r = evaluate::retrieve(o, cfg, torch::kCPU);
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.json["n_ct"], nCt);
  EXPECT_EQ(r.json["top_k"], k);
  EXPECT_EQ(r.json["mode"], "features");
  EXPECT_FALSE(stdfs::exists(t / "out/retrieve-work"));

  const auto tf = data::TeacherFeatures::load(data::teacherFeaturesPath(r.pairing));
  ASSERT_EQ(tf.ids.size(), static_cast<size_t>(nCt));
  const auto sim = torch::matmul(ct, xr.t());
  const auto [want, idx] = sim.topk(k, 1);
  EXPECT_TRUE(torch::allclose(tf.scores, want, 1e-5, 1e-6)) << tf.scores << want;
  for (int i = 0; i < nCt; ++i)
    for (int j = 0; j < k; ++j)
      EXPECT_TRUE(torch::allclose(tf.candidates[i][j], img[idx[i][j].item<std::int64_t>()], 1e-6, 1e-7))
          << i << "," << j;
  EXPECT_TRUE(torch::allclose(tf.h_star, tf.candidates.select(1, 0)));
  EXPECT_TRUE(torch::allclose(tf.report_embedding, ct, 1e-6, 1e-7));

  // Feature-mode flags without the features are refused before anything is written.
  evaluate::RetrieveOptions bad;
  bad.normalize = true;
  EXPECT_THROW(evaluate::retrieve(bad, cfg, torch::kCPU), ConfigError);
}

}  // namespace
}  // namespace biud::test
