// Safetensors reader/writer against the `safetensors` Python package, and the load errors.
// Malformed files are built byte by byte here; for each, `safetensors.torch.load_file`
// (tests/reference/tensor_malformed.py) says whether the reference refuses it, and biud must
// refuse the same files with one line naming the file and the tensor.
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"
#include "tensor/PythonValues.h"

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

// A safetensors file: 8-byte little-endian header length, the header as given, the data.
std::string st(const std::string& header, const std::string& data = "") {
  return test::le(header.size(), 8) + header + data;
}
std::string zeros(std::size_t n) { return std::string(n, '\0'); }
std::string f32(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

// One file of the table: what the reference does with it and what biud must do.
struct Case {
  std::string file;
  std::string bytes;
  bool pythonAccepts;  // safetensors.torch.load_file loads it
  std::string needle;  // "" = biud loads it too; else a piece of biud's IoError
  std::string tensor;  // the tensor the error must name ("" = the file has none to name)
};

std::vector<Case> safetensorsCases() {
  const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  std::vector<Case> c = {
      // Header length and JSON.
      {"too_short", "abc", false, "too short", ""},
      {"header_above_limit", test::le(100000001, 8) + "{}", false, "above the format's limit", ""},
      {"header_past_end", test::le(1000, 8) + "{" + a4 + "}" + zeros(4), false, "does not fit in the file", ""},
      {"empty_header", st(""), false, "does not parse", ""},
      {"not_json", st("{\"a\":"), false, "does not parse", ""},
      {"not_utf8", st("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)), false,
       "does not parse", ""},
      {"byte_order_mark", st("\xEF\xBB\xBF{" + a4 + "}", zeros(4)), false, "byte-order mark", ""},
      {"nul_after_json", st("{" + a4 + "}" + std::string(1, '\0'), zeros(4)), false, "does not parse", ""},
      {"header_array", st("[]"), false, "is a JSON array, not an object", ""},
      {"header_null", st("null"), false, "is a JSON null, not an object", ""},
      {"duplicate_tensor", st("{" + a4 + R"(,"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", zeros(8)), false,
       "`a` appears twice", "a"},
      {"duplicate_field", st(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
       false, "key `dtype` appears twice", "a"},
      {"duplicate_metadata", st(R"({"__metadata__":{"x":"1"},"__metadata__":{"x":"2"},)" + a4 + "}", zeros(4)), false,
       "`__metadata__` appears twice", ""},
      // Entries.
      {"entry_not_object", st(R"({"a":5})"), false, "header entry is a JSON number", "a"},
      {"no_data_offsets", st(R"({"a":{"dtype":"F32","shape":[1]}})", zeros(4)), false, "has no `data_offsets`", "a"},
      {"no_shape", st(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4)), false, "has no `shape`", "a"},
      {"unknown_dtype", st(R"({"a":{"dtype":"F13","shape":[1],"data_offsets":[0,4]}})", zeros(4)), false,
       "unknown safetensors dtype `F13`", "a"},
      {"lowercase_dtype", st(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", zeros(4)), false,
       "unknown safetensors dtype `f32`", "a"},
      {"dtype_not_string", st(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", zeros(4)), false,
       "dtype is a JSON number", "a"},
      {"shape_null", st(R"({"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}})", zeros(4)), false,
       "shape is a JSON null", "a"},
      {"negative_dim", st(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", zeros(4)), false,
       "negative dimension", "a"},
      {"float_dim", st(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", zeros(4)), false, "non-integer",
       "a"},
      {"dim_beyond_u64", st(R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,0]}})"), false,
       "non-integer", "a"},
      {"three_offsets", st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}})", zeros(4)), false,
       "is not two non-negative integers", "a"},
      {"float_offset", st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", zeros(4)), false,
       "is not two non-negative integers", "a"},
      {"negative_offset", st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", zeros(4)), false,
       "is not two non-negative integers", "a"},
      {"metadata_not_string", st(R"({"__metadata__":{"k":1},)" + a4 + "}", zeros(4)), false,
       "`__metadata__` entry `k` is a JSON number", ""},
      {"metadata_array", st(R"({"__metadata__":[],)" + a4 + "}", zeros(4)), false, "`__metadata__` is a JSON array",
       ""},
      // Shapes whose element or byte count overflows 64 bits (the reference folds in order, so a
      // later zero does not save the first).
      {"shape_overflow",
       st(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]}})", zeros(4)), false,
       "more elements than 64 bits", "a"},
      {"shape_overflow_then_zero",
       st(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776,0],)"
          R"("data_offsets":[0,0]}})"),
       false, "more elements than 64 bits", "a"},
      {"bytes_overflow", st(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", zeros(4)),
       false, "more bytes than 64 bits", "a"},
      {"dim_above_int64", st(R"({"a":{"dtype":"F32","shape":[0,9223372036854775813],"data_offsets":[0,0]}})"), false,
       "above 2^63-1", "a"},
      // dtype x shape against the bytes.
      {"dtype_disagrees", st(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,6]}})", zeros(6)), false,
       "needs 12 bytes but data_offsets [0, 6] span 6", "a"},
      {"shape_disagrees", st(R"({"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,16]}})", zeros(16)), false,
       "needs 8 bytes but data_offsets [0, 16] span 16", "a"},
      {"end_before_begin", st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", zeros(8)), false,
       "end before they begin", "a"},
      // The tensors must tile the data block.
      {"first_not_at_zero", st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", zeros(8)), false,
       "starts at byte 4, not 0", "a"},
      {"gap", st("{" + a4 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", zeros(12)), false,
       "4 bytes between tensors `a` (ends at 4) and `b`", "b"},
      {"overlap",
       st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          zeros(12)),
       false, "tensors `a` (bytes [0, 8)) and `b` (bytes [4, 12)) overlap", "b"},
      {"same_bytes", st("{" + a4 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(4)), false,
       "overlap", "b"},
      {"zero_size_inside_other",
       st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
          zeros(8)),
       false, "overlap", "z"},
      {"trailing_bytes", st("{" + a4 + "}", zeros(8)), false, "4 bytes after the last tensor `a`", "a"},
      {"truncated", st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros(5)), false,
       "data_offsets end at byte 8 but the data block has 5 bytes: truncated", "a"},
      {"data_without_tensors", st("{}", zeros(4)), false, "names no tensor but 4 data bytes", ""},
      // Files the reference loads that biud refuses on purpose.
      {"duplicate_identical_tensor", st("{" + a4 + "," + a4 + "}", zeros(4)), true, "`a` appears twice", "a"},
      {"duplicate_metadata_key", st(R"({"__metadata__":{"x":"1","x":"2"},)" + a4 + "}", zeros(4)), true,
       "key `x` appears twice", ""},
      {"bool_byte_2", st(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x00\x02", 2)),
       true, "has byte 2 at flat index 1", "a"},
      {"u16_not_read", st(R"({"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", zeros(4)), true,
       "`U16` is not read by biud", "a"},
      // Files both load.
      {"ok_no_tensors", st("{}"), true, "", ""},
      {"ok_metadata_only", st(R"({"__metadata__":{"k":"v"}})"), true, "", ""},
      {"ok_metadata_null", st(R"({"__metadata__":null,)" + a4 + "}", f32({1.5f})), true, "", ""},
      {"ok_zero_size",
       st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("e":{"dtype":"I64","shape":[3,0],"data_offsets":[8,8]},)"
          R"("m":{"dtype":"F16","shape":[0],"data_offsets":[16,16]},)"
          R"("s":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
          R"("z":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}})",
          f32({-2.0f, 0.25f}) + std::string("\x00\x00\x00\x00\x00\x00\x04\x40", 8)),
       true, "", ""},
      {"ok_zero_dim_huge_other", st(R"({"a":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}})"),
       true, "", ""},
      {"ok_offsets_not_in_name_order",
       st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
          f32({7.0f, 9.0f})),
       true, "", ""},
      {"ok_extra_field_unaligned",
       st(R"(  {"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3],"x":[[1]]},"":{"dtype":"I8","shape":[1],)"
          R"("data_offsets":[3,4]}}   )",
          std::string("\x01\x02\xff\xfe", 4)),
       true, "", ""},
  };
  return c;
}

}  // namespace

TEST(Safetensors, MalformedFilesAreRefusedLikeTheReferenceWithTheTensorNamed) {
  TempDir tmp("st-bad");
  const auto cases = safetensorsCases();
  for (const auto& c : cases) fs::atomicWrite(tmp / (c.file + ".safetensors"), c.bytes);
  test::runPython("tensor_malformed.py", "safetensors " + test::quote(tmp.str()));
  const auto py = nlohmann::json::parse(test::readText(tmp / "python.json"));
  for (const auto& c : cases) {
    const auto path = (tmp / (c.file + ".safetensors")).string();
    const auto& ref = py.at(c.file + ".safetensors");
    EXPECT_EQ(ref.at("ok").get<bool>(), c.pythonAccepts) << c.file << ": the reference says " << ref.dump();
    if (c.needle.empty()) {
      std::map<std::string, std::string> meta;
      tensor::TensorMap got;
      ASSERT_NO_THROW(got = tensor::readSafetensors(path, &meta)) << c.file;
      const auto& want = ref.at("tensors");
      EXPECT_EQ(got.size(), want.size()) << c.file;
      for (auto it = want.begin(); it != want.end(); ++it) {
        ASSERT_TRUE(got.count(it.key())) << c.file << ": " << it.key();
        test::expectSameAsPython(got.at(it.key()), it.value(), c.file + ": " + it.key());
      }
      continue;
    }
    try {
      tensor::readSafetensors(path);
      ADD_FAILURE() << c.file << ": biud read it; expected an error with `" << c.needle << "`";
    } catch (const IoError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(c.needle), std::string::npos) << c.file << ": " << m;
      EXPECT_NE(m.find(path), std::string::npos) << c.file << ": " << m;
      if (!c.tensor.empty()) {
        EXPECT_NE(m.find("`" + c.tensor + "`"), std::string::npos) << c.file << ": " << m;
      }
      EXPECT_EQ(m.find('\n'), std::string::npos) << c.file << ": not one line: " << m;
    }
  }
  // The accepted files hold what was written (checked against the reference above; by hand here).
  std::map<std::string, std::string> meta;
  auto z = tensor::readSafetensors((tmp / "ok_zero_size.safetensors").string());
  EXPECT_EQ(z.at("s").item<double>(), 2.5);
  EXPECT_EQ(z.at("e").sizes(), (std::vector<std::int64_t>{3, 0}));
  tensor::readSafetensors((tmp / "ok_metadata_only.safetensors").string(), &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"k", "v"}}));
  auto o = tensor::readSafetensors((tmp / "ok_offsets_not_in_name_order.safetensors").string());
  EXPECT_EQ(o.at("a").item<float>(), 9.0f);
  EXPECT_EQ(o.at("b").item<float>(), 7.0f);
  EXPECT_THROW(tensor::readSafetensors((tmp / "missing.safetensors").string()), IoError);
}

TEST(Safetensors, NonFiniteValuesAreRefusedWithTheTensorNamedUnlessAllowed) {
  TempDir tmp("st-nan");
  // One file per floating dtype, each with a finite F32 tensor and an I32 tensor whose bits are
  // those of +Inf (integers are never checked).
  const std::uint32_t infBits = 0x7F800000u, nanBits = 0x7FC00001u;
  auto i32 = [](std::initializer_list<std::uint32_t> v) {
    std::string s;
    for (auto x : v) s += test::le(x, 4);
    return s;
  };
  struct Bad {
    std::string file, tensor, code, shape;
    std::string data;
  };
  const std::vector<Bad> bad = {
      {"f32", "layer.weight", "F32", "[2,3]", i32({0, 0x3F800000u, 0, 0, nanBits, infBits})},
      {"f16", "h", "F16", "[4]", test::le(0x3C00, 2) + test::le(0xFC00, 2) + test::le(0x7E00, 2) + test::le(0, 2)},
      {"bf16", "bf", "BF16", "[3]", test::le(0x7FC1, 2) + test::le(0x3F80, 2) + test::le(0x7F80, 2)},
      {"f64", "d", "F64", "[3]",
       test::le(0, 8) + test::le(0x3FF0000000000000ull, 8) + test::le(0x7FF0000000000000ull, 8)},
  };
  for (const auto& b : bad) {
    const auto n = b.data.size();
    const std::string h =
        fmt::format(R"({{"{}":{{"dtype":"{}","shape":{},"data_offsets":[0,{}]}},"i":{{"dtype":"I32","shape":[2],)"
                    R"("data_offsets":[{},{}]}},"ok":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}}})",
                    b.tensor, b.code, b.shape, n, n, n + 8, n + 8, n + 12);
    fs::atomicWrite(tmp / (b.file + ".safetensors"), st(h, b.data + i32({infBits, infBits}) + f32({0.5f})));
  }
  test::runPython("tensor_malformed.py", "safetensors " + test::quote(tmp.str()));
  const auto py = nlohmann::json::parse(test::readText(tmp / "python.json"));
  for (const auto& b : bad) {
    const auto path = (tmp / (b.file + ".safetensors")).string();
    const auto& ref = py.at(b.file + ".safetensors");
    ASSERT_TRUE(ref.at("ok").get<bool>()) << ref.dump();  // the reference loads NaN weights
    const auto& t = ref.at("tensors").at(b.tensor);
    const auto count = t.at("nonfinite").get<int>(), first = t.at("first_nonfinite").get<int>();
    const auto kind = t.at("values").at(static_cast<std::size_t>(first)).get<std::string>();
    const std::string kindText = kind == "nan" ? "NaN" : kind == "inf" ? "Inf" : "-Inf";
    EXPECT_EQ(ref.at("tensors").at("i").at("nonfinite").get<int>(), 0);
    try {
      tensor::readSafetensors(path);
      ADD_FAILURE() << b.file << ": non-finite values were read";
    } catch (const DataError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(path + ": tensor `" + b.tensor + "` (" + b.code + " " + b.shape + ")"), std::string::npos) << m;
      EXPECT_NE(m.find(fmt::format("holds {} non-finite value{} (first: {} at flat index {})", count,
                                   count == 1 ? "" : "s", kindText, first)),
                std::string::npos)
          << m;
      EXPECT_NE(m.find("--allow-nonfinite-weights"), std::string::npos) << m;
    }
    // Allowed: the same values as the reference, bit for bit after widening.
    tensor::SafetensorsReadOptions ro;
    ro.allowNonFinite = true;
    const auto got = tensor::readSafetensors(path, nullptr, ro);
    for (const char* k : {b.tensor.c_str(), "i", "ok"})
      test::expectSameAsPython(got.at(k), ref.at("tensors").at(k), b.file + ": " + k);
  }
  // The process-wide default (what an app's --allow-nonfinite-weights sets) and loadModule.
  torch::nn::Linear lin(3, 2);
  fs::atomicWrite(tmp / "lin.safetensors",
                  st(R"({"bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("weight":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}})",
                     f32({1, 2, 0, 0, 0, 0, 0, 0}).substr(0, 8) + i32({0, 0, 0, 0, 0, 0xFF800000u})));
  const auto lf = (tmp / "lin.safetensors").string();
  try {
    tensor::loadModule(*lin, lf);
    ADD_FAILURE() << "NaN weights loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor `weight` (F32 [2,3]) holds 1 non-finite value (first: -Inf at flat "
                                         "index 5)"),
              std::string::npos)
        << e.what();
  }
  tensor::LoadOptions lo;
  lo.allowNonFinite = true;
  tensor::loadModule(*lin, lf, lo);
  EXPECT_EQ(lin->weight[1][2].item<float>(), -INFINITY);
  EXPECT_EQ(lin->bias[1].item<float>(), 2.0f);
  ASSERT_FALSE(tensor::allowNonFiniteDefault());
  tensor::setAllowNonFiniteDefault(true);
  const bool readWithDefault = tensor::readSafetensors(lf).at("weight").isinf().sum().item<int>() == 1;
  const bool loadWithDefault = tensor::LoadOptions{}.allowNonFinite;
  tensor::setAllowNonFiniteDefault(false);
  EXPECT_TRUE(readWithDefault);
  EXPECT_TRUE(loadWithDefault);
  EXPECT_THROW(tensor::readSafetensors(lf), DataError);
}

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
