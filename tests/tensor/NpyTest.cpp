// .npy reading against numpy: arrays numpy.save wrote, and malformed files built byte by byte
// here, each also given to numpy.load (tests/reference/tensor_malformed.py) to show that the
// reference refuses it too (or, where marked, that biud is stricter on purpose).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/tensor/Npy.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"
#include "tensor/PythonValues.h"

using namespace biud;
using biud::test::TempDir;

namespace {

// A .npy file: magic, version major.minor, header length (2 bytes in 1.0, 4 after), header, data.
std::string npy(int major, const std::string& header, const std::string& data = "", int minor = 0) {
  return std::string("\x93NUMPY", 6) + static_cast<char>(major) + static_cast<char>(minor) +
         test::le(header.size(), major == 1 ? 2 : 4) + header + data;
}
// The header numpy.save writes: the dict, space padding and a newline, 64-byte aligned.
std::string saveHeader(const std::string& descr, const std::string& shape, int major = 1) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t pre = 8 + (major == 1 ? 2 : 4);
  while ((pre + h.size() + 1) % 64) h.push_back(' ');
  return h + "\n";
}
std::string dict(const std::string& body) { return "{" + body + "}\n"; }
std::string zeros(std::size_t n) { return std::string(n, '\0'); }

struct Case {
  std::string file, bytes;
  bool numpyAccepts;
  std::string needle;  // "" = biud reads it too; else a piece of biud's IoError
};

std::vector<Case> npyCases() {
  const std::string f2 = "'descr': '<f4', 'fortran_order': False, 'shape': (2,)";
  std::string big = saveHeader("<f4", "(2,)", 2);
  big.insert(big.size() - 1, std::string(10050, ' '));
  std::string f2vals(8, '\0');
  const float two[2] = {1.5f, -3.0f};
  std::memcpy(f2vals.data(), two, 8);
  return {
      {"bad_magic", std::string("\x93NUMPZ\x01\x00", 8) + test::le(4, 2) + "{}\n ", false, "bad magic"},
      {"too_short", std::string("\x93NUMPY\x01", 7), false, "bad magic"},
      {"version_4", npy(4, dict(f2), zeros(8)), false, "format version 4.0"},
      {"version_1_1", npy(1, dict(f2), zeros(8), 1), false, "format version 1.1"},
      {"header_length_cut", std::string("\x93NUMPY\x02\x00\x10", 9), false, "truncated .npy header"},
      {"header_past_end", npy(1, dict(f2), zeros(8)).substr(0, 30), false, "truncated .npy header"},
      {"header_above_limit", npy(2, big, zeros(8), 0), false, "above numpy's limit of 10000"},
      {"not_a_dict", npy(1, "[1, 2]\n", zeros(8)), false, "expected `{`"},
      {"missing_key", npy(1, dict("'descr': '<f4', 'shape': (2,), "), zeros(8)), false,
       "exactly the keys descr, fortran_order, shape"},
      {"extra_key", npy(1, dict(f2 + ", 'x': True"), zeros(8)), false, "exactly the keys descr, fortran_order, shape"},
      {"shape_not_tuple", npy(1, dict("'descr': '<f4', 'fortran_order': False, 'shape': (2)"), zeros(8)), false,
       "`shape` is not a tuple"},
      {"shape_list", npy(1, dict("'descr': '<f4', 'fortran_order': False, 'shape': [2]"), zeros(8)), false,
       "unsupported value for `shape`"},
      {"shape_negative", npy(1, dict("'descr': '<f4', 'fortran_order': False, 'shape': (-1,)"), zeros(8)), false,
       "tuple of non-negative integers"},
      {"shape_float", npy(1, dict("'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)"), zeros(8)), false,
       "expected `,`"},
      {"fortran_not_bool", npy(1, dict("'descr': '<f4', 'fortran_order': 0, 'shape': (2,)"), zeros(8)), false,
       "unsupported value for `fortran_order`"},
      {"descr_unknown", npy(1, dict("'descr': '<x9', 'fortran_order': False, 'shape': (2,)"), zeros(8)), false,
       "dtype `<x9` is not supported"},
      {"after_dict", npy(1, "{" + f2 + "} x\n", zeros(8)), false, "bytes after its dictionary"},
      {"unterminated_string", npy(1, "{'descr: '<f4'\n", zeros(8)), false, ".npy header"},
      {"truncated_data", npy(1, saveHeader("<f4", "(3, 4)"), zeros(40)), false,
       "data is truncated (48 bytes expected for shape [3,4] of `<f4`, 40 present)"},
      {"shape_overflow", npy(1, saveHeader("<f4", "(4294967296, 4294967296, 2)")), false, "more elements than 64 bits"},
      {"dim_beyond_u64", npy(1, saveHeader("<f4", "(18446744073709551616,)")), false, "overflows 64 bits"},
      // numpy loads these; biud refuses on purpose.
      {"duplicate_key", npy(1, dict(f2 + ", 'shape': (2,)"), zeros(8)), true, "the key `shape` twice"},
      {"trailing_data", npy(1, saveHeader("<f4", "(2,)"), zeros(12)), true, "4 bytes after the array"},
      {"bool_byte_2", npy(1, saveHeader("|b1", "(3,)"), std::string("\x01\x00\x02", 3)), true,
       "has byte 2 at flat index 2"},
      // Both read these.
      {"ok_v1", npy(1, saveHeader("<f4", "(2,)"), f2vals), true, ""},
      {"ok_v2", npy(2, saveHeader("<f4", "(1, 2)", 2), f2vals), true, ""},
      {"ok_v3", npy(3, saveHeader("<i8", "()", 3), test::le(static_cast<std::uint64_t>(-7), 8)), true, ""},
      {"ok_zero_size", npy(1, saveHeader("<i2", "(3, 0)")), true, ""},
      {"ok_hand_written", npy(1, "{\"shape\": (2,),\n\t\"descr\": \"=f4\", \"fortran_order\": False}", f2vals), true,
       ""},
      {"ok_u1_b1", npy(1, saveHeader("|u1", "(2, 2)"), std::string("\x00\x7f\x80\xff", 4)), true, ""},
      {"ok_bool", npy(1, saveHeader("|b1", "(3,)"), std::string("\x01\x00\x01", 3)), true, ""},
      {"ok_f2", npy(1, saveHeader("<f2", "(2,)"), test::le(0x3C00, 2) + test::le(0xC500, 2)), true, ""},
  };
}

}  // namespace

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

TEST(Npy, MalformedFilesAreRefusedLikeNumpyWithOneLine) {
  TempDir tmp("npy-bad");
  const auto cases = npyCases();
  for (const auto& c : cases) fs::atomicWrite(tmp / (c.file + ".npy"), c.bytes);
  test::runPython("tensor_malformed.py", "npy " + test::quote(tmp.str()));
  const auto py = nlohmann::json::parse(test::readText(tmp / "python.json"));
  for (const auto& c : cases) {
    const auto path = (tmp / (c.file + ".npy")).string();
    const auto& ref = py.at(c.file + ".npy");
    EXPECT_EQ(ref.at("ok").get<bool>(), c.numpyAccepts) << c.file << ": numpy says " << ref.dump();
    if (c.needle.empty()) {
      torch::Tensor got;
      ASSERT_NO_THROW(got = tensor::readNpy(path)) << c.file;
      test::expectSameAsPython(got, ref.at("tensors").at("array"), c.file);
      continue;
    }
    try {
      tensor::readNpy(path);
      ADD_FAILURE() << c.file << ": biud read it; expected an error with `" << c.needle << "`";
    } catch (const IoError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(c.needle), std::string::npos) << c.file << ": " << m;
      EXPECT_NE(m.find(path), std::string::npos) << c.file << ": " << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << c.file << ": not one line: " << m;
    }
  }
  // Dtypes by hand (the reference compares values as float64 only).
  EXPECT_EQ(tensor::readNpy((tmp / "ok_v3.npy").string()).scalar_type(), torch::kInt64);
  EXPECT_EQ(tensor::readNpy((tmp / "ok_v3.npy").string()).dim(), 0);
  EXPECT_EQ(tensor::readNpy((tmp / "ok_u1_b1.npy").string()).scalar_type(), torch::kUInt8);
  EXPECT_EQ(tensor::readNpy((tmp / "ok_bool.npy").string()).scalar_type(), torch::kBool);
  EXPECT_EQ(tensor::readNpy((tmp / "ok_f2.npy").string()).scalar_type(), torch::kFloat16);
}
