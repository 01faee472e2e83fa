// Safetensors reader/writer against the `safetensors` Python package, and the load errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/tensor/Npy.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

using namespace biud;
using biud::test::TempDir;

namespace {
tensor::TensorMap expected() {
  tensor::TensorMap m;
  m["f32"] = torch::arange(12, torch::kFloat32).reshape({3, 4}) / 7;
  m["f16"] = (torch::arange(6, torch::kFloat32) / 3).to(torch::kFloat16).reshape({2, 3});
  m["bf16"] = (torch::arange(5, torch::kFloat32) * 1.5 - 2).to(torch::kBFloat16);
  m["i64"] = torch::tensor(std::vector<std::int64_t>{-(std::int64_t{1} << 40), 0, 7}, torch::kInt64).reshape({1, 3});
  m["f64"] = torch::tensor({3.141592653589793}, torch::kFloat64);
  m["u8"] = torch::tensor({0, 255, 17}, torch::kUInt8);
  m["bool"] = torch::tensor({true, false, true}, torch::kBool);
  m["empty"] = torch::zeros({0, 4});
  m["scalar"] = torch::tensor(2.5f);
  return m;
}
}  // namespace

TEST(Safetensors, ReadsWhatPythonWrote) {
  TempDir tmp("st");
  const auto f = (tmp / "py.safetensors").string();
  test::runPython("models_safetensors.py", "write " + test::quote(f));
  std::map<std::string, std::string> meta;
  auto got = tensor::readSafetensors(f, &meta);
  EXPECT_EQ(meta["who"], "python");
  auto want = expected();
  ASSERT_EQ(got.size(), want.size());
  for (auto& [k, v] : want) {
    ASSERT_TRUE(got.count(k)) << k;
    EXPECT_EQ(got[k].scalar_type(), v.scalar_type()) << k;
    EXPECT_EQ(got[k].sizes(), v.sizes()) << k;
    EXPECT_TRUE(torch::equal(got[k], v)) << k;
  }
}

TEST(Safetensors, PythonReadsWhatBiudWrote) {
  TempDir tmp("st");
  const auto f = (tmp / "biud.safetensors").string();
  tensor::writeSafetensors(f, expected(), {{"who", "biud"}});
  EXPECT_NE(test::runPython("models_safetensors.py", "check " + test::quote(f)).find("ok"), std::string::npos);
  // The data block starts 8-byte aligned.
  auto bytes = fs::readFile(f);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(Safetensors, CorruptFilesAreClearErrors) {
  TempDir tmp("st");
  auto good = tensor::serializeSafetensors(expected());
  auto expectIo = [&](const std::string& bytes, const std::string& needle) {
    try {
      tensor::parseSafetensors(bytes, "x.safetensors");
      FAIL() << "no error for " << needle;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
    }
  };
  expectIo("abc", "too short");
  expectIo(good.substr(0, good.size() - 10), "data_offsets");  // truncated data
  std::string badLen = good;
  badLen[7] = '\x7f';
  expectIo(badLen, "header length");
  std::string badJson = good;
  badJson[8] = '!';
  expectIo(badJson, "JSON");
  EXPECT_THROW(tensor::readSafetensors((tmp / "missing.safetensors").string()), IoError);
}

TEST(Safetensors, LoadStateDictNamesMissingUnexpectedAndMisshapedKeys) {
  torch::nn::Sequential net(torch::nn::Linear(4, 3), torch::nn::ReLU(), torch::nn::Linear(3, 2));
  auto sd = tensor::stateDict(*net);
  ASSERT_EQ(sd.size(), 4u);
  EXPECT_TRUE(sd.count("0.weight") && sd.count("2.bias"));

  auto bad = sd;
  bad.erase("2.bias");
  bad["0.weight"] = torch::zeros({5, 4});
  bad["3.weight"] = torch::zeros({1});
  try {
    tensor::loadStateDict(*net, bad, {}, "ckpt.safetensors");
    FAIL();
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("ckpt.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("missing in file: 2.bias"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected in file: 3.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("0.weight (file [5,4], model [3,4])"), std::string::npos) << m;
  }
  // Non-strict: missing/unexpected are reported, values copied.
  auto other = sd;
  other.erase("2.bias");
  other["0.weight"] = torch::ones({3, 4});
  other["extra"] = torch::ones({1});
  tensor::LoadOptions lo;
  lo.strict = false;
  auto rep = tensor::loadStateDict(*net, other, lo);
  EXPECT_EQ(rep.missing, std::vector<std::string>{"2.bias"});
  EXPECT_EQ(rep.unexpected, std::vector<std::string>{"extra"});
  EXPECT_TRUE(torch::equal(net->named_parameters()["0.weight"], torch::ones({3, 4})));
}

TEST(Safetensors, ModuleRoundTripKeepsValuesAndDtypeConversion) {
  TempDir tmp("st");
  torch::manual_seed(1);
  torch::nn::Sequential a(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  a->named_buffers()["1.running_mean"].uniform_();
  const auto f = (tmp / "m.safetensors").string();
  tensor::saveModule(*a, f);
  torch::manual_seed(2);
  torch::nn::Sequential b(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  tensor::loadModule(*b, f);
  auto sa = tensor::stateDict(*a), sb = tensor::stateDict(*b);
  for (auto& [k, v] : sa) EXPECT_TRUE(torch::equal(v, sb[k])) << k;
  EXPECT_EQ(sb["1.num_batches_tracked"].scalar_type(), torch::kInt64);
  // F16 file into an F32 module converts.
  tensor::TensorMap half;
  for (auto& [k, v] : sa) half[k] = v.is_floating_point() ? v.to(torch::kFloat16) : v;
  tensor::loadStateDict(*b, half);
  EXPECT_TRUE(torch::allclose(b->named_parameters()["0.weight"], sa["0.weight"], 1e-3, 1e-3));
  EXPECT_EQ(b->named_parameters()["0.weight"].scalar_type(), torch::kFloat32);
}

TEST(Npy, ReadsWhatNumpyWrote) {
  TempDir tmp("npy");
  test::runPython("models_safetensors.py", "npy " + test::quote(tmp.str()));
  auto ref = tensor::readSafetensors((tmp / "ref.safetensors").string());
  for (const char* k : {"f4", "f8", "f2", "i8", "u1", "b1"}) {
    auto t = tensor::readNpy((tmp / (std::string(k) + ".npy")).string());
    EXPECT_EQ(t.scalar_type(), ref[k].scalar_type()) << k;
    EXPECT_TRUE(torch::equal(t, ref[k])) << k;
  }
  for (const char* bad : {"fortran.npy", "bigendian.npy"}) {
    try {
      tensor::readNpy((tmp / bad).string());
      FAIL() << bad;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}
