// biud-retrieve's feature mode end to end: feature files written by numpy / safetensors
// (tests/reference/retrieval_topk.py fixture), the app run on them, and its outputs compared with
// the reference (the same fp32 torch.mm tiles, a stable sort, the image features looked up by id):
//  - pairing.csv rows equal the reference's (ids, 6-decimal scores, ranks), and the teacher
//    features file holds bit-identical scores, the image features of each kept X-ray, and the
//    CT report features as report_embedding; chunks, query tiles and database blocks all cross;
//  - the same from .npy + an ids file with Windows line ends, in bf16; from a float16 .npy in fp16;
//  - rows that are not unit vectors: an error naming --normalize; with it, the reference's result;
//  - --top-k above the corpus: all X-rays kept, with a warning; missing ids: errors naming the fix;
//  - a run stopped after one chunk and resumed equals an uninterrupted one.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Csv.h"
#include "biud/core/Fs.h"
#include "biud/data/TeacherFeatures.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

using biud::test::app;
using biud::test::quote;

biud::test::CommandResult runRc(const std::string& cmd, int rc) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, rc) << cmd << "\n" << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  return r;
}

/// The app's outputs in `out` against the reference prefix `ref`.
void expectOutputs(const std::string& out, const std::string& ref, std::int64_t k) {
  const auto want = biud::tensor::readSafetensors(ref + ".safetensors");
  const auto got = biud::data::TeacherFeatures::load(out + "/teacher_features.safetensors");
  ASSERT_EQ(got.topK(), k);
  EXPECT_TRUE(torch::equal(got.scores, want.at("scores")))
      << "max score difference " << (got.scores - want.at("scores")).abs().max().item<float>();
  EXPECT_TRUE(torch::equal(got.candidates, want.at("candidates")));
  EXPECT_TRUE(torch::equal(got.h_star, want.at("candidates").select(1, 0)));
  EXPECT_TRUE(torch::equal(got.report_embedding, want.at("report")));
  const auto a = biud::csv::read(out + "/pairing.csv"), b = biud::csv::read(ref + "_pairing.csv");
  EXPECT_EQ(a.header, b.header);
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t r = 0; r < a.rows.size(); ++r) EXPECT_EQ(a.rows[r], b.rows[r]) << "pairing.csv row " << r + 1;
  EXPECT_EQ(got.ids.size() * static_cast<size_t>(k), a.rows.size());
}

}  // namespace

TEST(RetrieveFeatures, EqualsReferenceFromNpyAndSafetensors) {
  biud::test::TempDir d("retrieve-feat");
  const std::string D = d.str();
  const std::string threads = std::to_string(at::get_num_threads());
  const std::string tiles = " --k 7 --db-block 64 --query-block 16 --chunk 32 --threads " + threads;
  // Fixtures and expectations in one Python process.
  biud::test::writeText(d / "reference.txt", "fixture " + D + " --n 40 --m 300 --d 24 --dx 8\n" + "fixture " + D +
                                                 "/big --n 40 --m 300 --d 24 --dx 8 --scale 2.5 --seed 1\n" +
                                                 "fixture " + D + "/tiny --n 5 --m 4 --d 24 --dx 8 --seed 2\n" +
                                                 "expect " + D + tiles + " --precision fp32\n" + "expect " + D + tiles +
                                                 " --precision bf16 --out " + D + "/expected_bf16\n" + "expect " + D +
                                                 tiles + " --precision fp16 --out " + D + "/expected_fp16\n" +
                                                 "expect " + D + "/big" + tiles + " --precision fp32 --normalize\n" +
                                                 "expect " + D + "/tiny" + tiles + " --precision fp32\n");
  biud::test::runPython("retrieval_topk.py", "many " + quote(D + "/reference.txt"));

  const std::string base =
      app("biud-retrieve") + " --quiet --threads " + threads + " --top-k 7 --block 64 --query-block 16 --chunk 32";
  auto feats = [&](const std::string& dir) {
    return " --ct-report-features " + dir + "/ct.npy --ct-ids " + dir + "/ct_ids.txt --xray-report-features " + dir +
           "/xray.safetensors --xray-image-features " + dir + "/image.safetensors";
  };
  // .npy CT features with an ids file; X-ray report and image features in safetensors with ids
  // in the metadata (the image file in another row order).
  runRc(base + feats(D) + " --out " + D + "/out", 0);
  expectOutputs(D + "/out", D + "/expected", 7);
  const auto info = nlohmann::json::parse(biud::test::readText(D + "/out/retrieve.json"));
  EXPECT_EQ(info["mode"], "features");
  EXPECT_EQ(info["n_xray"], 300);
  EXPECT_EQ(info["chunks_computed"], 2);  // 40 CTs in chunks of 32; no embedding or image passes
  EXPECT_FALSE(biud::fs::stdfs::exists(D + "/out/retrieve-work"));

  // X-ray report features from .npy + ids with Windows line ends, rounded to bf16.
  runRc(base + " --ct-report-features " + D + "/ct.npy --ct-ids " + D + "/ct_ids.txt --xray-report-features " + D +
            "/xray.npy --xray-ids " + D + "/xray_ids.txt --xray-image-features " + D +
            "/image.safetensors --precision bf16 --out " + D + "/bf16",
        0);
  expectOutputs(D + "/bf16", D + "/expected_bf16", 7);
  // A float16 file searched in fp16 (held as read: never widened to fp32).
  runRc(base + " --ct-report-features " + D + "/ct.npy --ct-ids " + D + "/ct_ids.txt --xray-report-features " + D +
            "/xray_f16.npy --xray-ids " + D + "/xray_ids.txt --xray-image-features " + D +
            "/image.safetensors --precision fp16 --out " + D + "/fp16",
        0);
  expectOutputs(D + "/fp16", D + "/expected_fp16", 7);

  // Rows of norm 2.5: refused with the fix; normalised on request.
  auto bad = runRc(base + feats(D + "/big") + " --out " + D + "/big_out", 2);
  EXPECT_NE(bad.out.find("--normalize"), std::string::npos) << bad.out;
  runRc(base + feats(D + "/big") + " --normalize --out " + D + "/big_out", 0);
  expectOutputs(D + "/big_out", D + "/big/expected", 7);

  // --top-k 7 with 4 X-rays: all 4 kept, with a warning.
  auto tiny =
      runRc(app("biud-retrieve") + " --threads " + threads + " --top-k 7 --block 64 --query-block 16 --chunk 32" +
                feats(D + "/tiny") + " --out " + D + "/tiny_out",
            0);
  EXPECT_NE(tiny.out.find("--top-k 7 but the X-ray corpus has only 4 reports: keeping all 4"), std::string::npos)
      << tiny.out;
  expectOutputs(D + "/tiny_out", D + "/tiny/expected", 4);

  // Ids: a .npy without its ids file, and an image file that lacks a kept X-ray.
  auto noIds = runRc(base + " --ct-report-features " + D + "/ct.npy --xray-report-features " + D +
                         "/xray.safetensors --xray-image-features " + D + "/image.safetensors --out " + D + "/x",
                     2);
  EXPECT_NE(noIds.out.find("pass --ct-ids FILE"), std::string::npos) << noIds.out;
  auto lacking =
      runRc(base + " --ct-report-features " + D + "/ct.npy --ct-ids " + D + "/ct_ids.txt" + " --xray-report-features " +
                D + "/xray.safetensors --xray-image-features " + D + "/tiny/image.safetensors --out " + D + "/x",
            1);
  EXPECT_NE(lacking.out.find("have no row for id"), std::string::npos) << lacking.out;

  // Stopped after one chunk, resumed: the same files.
  runRc(base + feats(D) + " --stop-after-chunks 1 --out " + D + "/resumed", 130);
  runRc(base + feats(D) + " --out " + D + "/resumed", 0);
  EXPECT_EQ(biud::test::readText(D + "/resumed/pairing.csv"), biud::test::readText(D + "/out/pairing.csv"));
  expectOutputs(D + "/resumed", D + "/expected", 7);
}
