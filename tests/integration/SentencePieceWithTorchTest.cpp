// libsentencepiece carries its own protobuf-lite; loaded next to libtorch it crashes at static
// initialisation. This process links libtorch and uses SentencePiece through the dlopen shim.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/text/SentencePiece.h"
#include "common/TestUtil.h"

TEST(SentencePieceWithTorch, TrainEncodeDecodeInOneProcess) {
  // libtorch is really in use in this process.
  auto t = torch::arange(6, torch::kFloat32).reshape({2, 3});
  EXPECT_FLOAT_EQ(t.sum().item<float>(), 15.0f);

  biud::test::TempDir d;
  std::string corpus;
  const char* lines[] = {"No pleural effusion.", "Small nodule in the right upper lobe.", "The heart is enlarged.",
                         "Mild emphysema in both upper lobes.",
                         "There is a large left pleural effusion with atelectasis."};
  for (int i = 0; i < 200; ++i) corpus += std::string(lines[i % 5]) + "\n";
  biud::test::writeText(d / "corpus.txt", corpus);
  biud::text::SentencePiece::train("--input=" + (d / "corpus.txt").string() + " --model_prefix=" +
                                   (d / "spm").string() + " --vocab_size=60 --model_type=bpe --minloglevel=2");
  biud::text::SentencePiece sp((d / "spm.model").string());
  EXPECT_EQ(sp.vocabSize(), 60);
  const std::string text = "Small nodule in the right upper lobe.";
  const auto ids = sp.encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(sp.decode(ids), text);
  // And torch still works after the shim was loaded.
  auto ti = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()));
  EXPECT_EQ(ti.numel(), static_cast<int64_t>(ids.size()));
}
