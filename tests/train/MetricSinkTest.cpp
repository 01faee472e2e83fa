// Metric sinks: TensorBoard files read back by TensorBoard itself; JSONL with NaN as null.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/train/MetricSink.h"
#include "common/TestUtil.h"

using namespace biud;

TEST(TensorBoardSink, TensorBoardReadsOurEventFile) {
  test::TempDir d;
  {
    train::TensorBoardSink tb((d / "tb").string());
    tb.log(1, {{"loss", 2.5}, {"lr", 1e-4}});
    tb.log(2, {{"loss", 1.25}, {"lr", 2e-4}, {"bad", NAN}});
    tb.flush();
  }
  const auto out = nlohmann::json::parse(test::runPython("train_tensorboard.py", (d / "tb").string()));
  ASSERT_TRUE(out.contains("loss")) << out.dump();
  EXPECT_EQ(out["loss"], nlohmann::json::parse("[[1, 2.5], [2, 1.25]]"));
  ASSERT_EQ(out["lr"].size(), 2u);
  EXPECT_NEAR(out["lr"][1][1].get<double>(), 2e-4, 1e-9);
  EXPECT_FALSE(out.contains("bad"));  // non-finite values are not written
}

TEST(TensorBoardSink, MaskedCrcKnownValue) {
  // CRC-32C("123456789") = 0xE3069283 (the standard check value); masked as TFRecord does.
  const std::uint32_t c = 0xE3069283u;
  const std::uint32_t masked = ((c >> 15) | (c << 17)) + 0xa282ead8u;
  EXPECT_EQ(train::TensorBoardSink::maskedCrc32c("123456789", 9), masked);
}

TEST(JsonlSink, AppendsLinesWithNullForNonFinite) {
  test::TempDir d;
  {
    train::JsonlSink s((d / "m.jsonl").string());
    s.log(3, {{"loss", 0.5}, {"x", INFINITY}});
  }
  {
    train::JsonlSink s((d / "m.jsonl").string());  // a resumed run appends
    s.log(4, {{"loss", 0.25}});
  }
  std::ifstream in(d / "m.jsonl");
  std::string l1, l2;
  std::getline(in, l1);
  std::getline(in, l2);
  auto j1 = nlohmann::json::parse(l1), j2 = nlohmann::json::parse(l2);
  EXPECT_EQ(j1["step"], 3);
  EXPECT_EQ(j1["loss"], 0.5);
  EXPECT_TRUE(j1["x"].is_null());
  EXPECT_EQ(j2["step"], 4);
}
