#include "biud/tensor/Npy.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <vector>

#include <fmt/ranges.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::tensor {

namespace {

// numpy.lib.format refuses longer headers unless the file is fully trusted (_MAX_HEADER_SIZE).
constexpr std::size_t kMaxHeader = 10000;

// A header value: the only literals a supported .npy header holds.
struct Value {
  enum Kind { kString, kBool, kTuple } kind = kString;
  std::string str;
  bool flag = false;
  std::vector<std::uint64_t> dims;
};

// The header's Python dict literal, e.g. "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
// followed by space padding and a newline. Strings are quoted with ' or " (no escapes), shapes
// are tuples of decimal integers with an optional trailing comma. Anything else is an error
// (numpy's literal_eval would refuse it, or it describes an array biud does not read).
class HeaderParser {
 public:
  HeaderParser(const std::string& h, const std::string& file) : h_(h), file_(file) {}

  std::map<std::string, Value> parse() {
    std::map<std::string, Value> out;
    skipSpace();
    expect('{');
    for (;;) {
      skipSpace();
      if (peek() == '}') break;
      auto key = parseString();
      skipSpace();
      expect(':');
      skipSpace();
      auto v = parseValue(key);
      BIUD_CHECK(out.emplace(key, std::move(v)).second, IoError, "{}: .npy header has the key `{}` twice: {}", file_,
                 key, quoted());
      skipSpace();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      BIUD_CHECK(peek() == '}', IoError, "{}: .npy header: expected `,` or `}}` at byte {}: {}", file_, i_, quoted());
    }
    ++i_;
    skipSpace();
    BIUD_CHECK(i_ == h_.size(), IoError, "{}: .npy header has bytes after its dictionary (at byte {}): {}", file_, i_,
               quoted());
    return out;
  }

  std::string quoted() const {
    std::string r;
    for (char c : h_.substr(0, 200)) {
      const auto u = static_cast<unsigned char>(c);
      r += (u >= 0x20 && u < 0x7f) ? std::string(1, c) : fmt::format("\\x{:02x}", u);
    }
    return "`" + r + (h_.size() > 200 ? "...`" : "`");
  }

 private:
  char peek() const { return i_ < h_.size() ? h_[i_] : '\0'; }
  void skipSpace() {
    while (i_ < h_.size() && (h_[i_] == ' ' || h_[i_] == '\t' || h_[i_] == '\n' || h_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    BIUD_CHECK(peek() == c, IoError, "{}: .npy header: expected `{}` at byte {}: {}", file_, c, i_, quoted());
    ++i_;
  }
  std::string parseString() {
    const char q = peek();
    BIUD_CHECK(q == '\'' || q == '"', IoError, "{}: .npy header: expected a quoted string at byte {}: {}", file_, i_,
               quoted());
    const auto start = ++i_;
    while (i_ < h_.size() && h_[i_] != q) {
      BIUD_CHECK(h_[i_] != '\\' && h_[i_] != '\n', IoError,
                 "{}: .npy header: unsupported character in a string at byte {}: {}", file_, i_, quoted());
      ++i_;
    }
    BIUD_CHECK(i_ < h_.size(), IoError, "{}: .npy header: unterminated string: {}", file_, quoted());
    return h_.substr(start, i_++ - start);
  }
  Value parseValue(const std::string& key) {
    Value v;
    if (peek() == '\'' || peek() == '"') {
      v.kind = Value::kString;
      v.str = parseString();
    } else if (h_.compare(i_, 4, "True") == 0 || h_.compare(i_, 5, "False") == 0) {
      v.kind = Value::kBool;
      v.flag = h_[i_] == 'T';
      i_ += v.flag ? 4 : 5;
    } else if (peek() == '(') {
      v.kind = Value::kTuple;
      ++i_;
      bool needComma = false;
      for (;;) {
        skipSpace();
        if (peek() == ')') break;
        if (needComma) {
          expect(',');
          skipSpace();
          if (peek() == ')') break;
        }
        BIUD_CHECK(std::isdigit(static_cast<unsigned char>(peek())), IoError,
                   "{}: .npy header: `{}` must be a tuple of non-negative integers: {}", file_, key, quoted());
        const auto start = i_;
        std::uint64_t d = 0;
        while (std::isdigit(static_cast<unsigned char>(peek()))) {
          BIUD_CHECK(!__builtin_mul_overflow(d, 10u, &d) && !__builtin_add_overflow(d, peek() - '0', &d), IoError,
                     "{}: .npy header: dimension of `{}` overflows 64 bits: {}", file_, key, quoted());
          ++i_;
        }
        BIUD_CHECK(i_ - start == 1 || h_[start] != '0', IoError,
                   "{}: .npy header: dimension with a leading zero (not a Python integer): {}", file_, quoted());
        v.dims.push_back(d);
        needComma = true;
      }
      // "(3)" is the integer 3, not a tuple: numpy refuses it as a shape.
      const bool tuple = v.dims.size() != 1 || trailingComma();
      BIUD_CHECK(tuple, IoError, "{}: .npy header: `{}` is not a tuple (write `(n,)` for one dimension): {}", file_,
                 key, quoted());
      ++i_;
    } else {
      BIUD_THROW(IoError, "{}: .npy header: unsupported value for `{}` at byte {}: {}", file_, key, i_, quoted());
    }
    return v;
  }
  // Whether the one-element tuple just read ends with a comma before `)` (spaces allowed).
  bool trailingComma() const {
    std::size_t j = i_;
    while (j > 0 && (h_[j - 1] == ' ' || h_[j - 1] == '\t' || h_[j - 1] == '\n' || h_[j - 1] == '\r')) --j;
    return j > 0 && h_[j - 1] == ',';
  }

  const std::string& h_;
  const std::string& file_;
  std::size_t i_ = 0;
};

/// What the header says: dtype, shape, data offset and byte count. `b` holds at least the
/// header (the whole file, or its first bytes); `fileSize` is the whole file's size.
struct NpyLayout {
  torch::Dtype dt = torch::kFloat32;
  std::vector<std::int64_t> shape;
  std::uint64_t offset = 0, bytes = 0;
};

NpyLayout parseNpyLayout(const std::string& b, std::uint64_t fileSize, const std::string& name) {
  BIUD_CHECK(b.size() >= 8 && b.compare(0, 6, "\x93NUMPY") == 0, IoError, "{}: not a .npy file (bad magic)", name);
  const int major = static_cast<unsigned char>(b[6]), minor = static_cast<unsigned char>(b[7]);
  BIUD_CHECK(minor == 0 && major >= 1 && major <= 3, IoError,
             "{}: .npy format version {}.{} is not one numpy writes (1.0, 2.0, 3.0)", name, major, minor);
  const std::size_t lenBytes = major == 1 ? 2 : 4, start = 8 + lenBytes;
  BIUD_CHECK(b.size() >= start, IoError, "{}: truncated .npy header ({} bytes)", name, b.size());
  std::size_t hlen = 0;
  for (std::size_t i = lenBytes; i-- > 0;) hlen = (hlen << 8) | static_cast<unsigned char>(b[8 + i]);
  BIUD_CHECK(hlen <= kMaxHeader, IoError,
             "{}: .npy header length {} is above numpy's limit of {} bytes: damaged file, or not written by numpy.save",
             name, hlen, kMaxHeader);
  BIUD_CHECK(hlen <= b.size() - start, IoError, "{}: truncated .npy header ({} bytes announced, {} present)", name,
             hlen, b.size() - start);
  const std::string h = b.substr(start, hlen);
  HeaderParser parser(h, name);
  const auto dict = parser.parse();
  std::vector<std::string> keys;
  for (const auto& kv : dict) keys.push_back(kv.first);
  BIUD_CHECK(keys == (std::vector<std::string>{"descr", "fortran_order", "shape"}), IoError,
             "{}: .npy header must have exactly the keys descr, fortran_order, shape: {}", name, parser.quoted());
  const auto& descr = dict.at("descr");
  const auto& fortran = dict.at("fortran_order");
  const auto& shapeV = dict.at("shape");
  BIUD_CHECK(descr.kind == Value::kString, IoError, "{}: .npy header: descr is not a string: {}", name,
             parser.quoted());
  BIUD_CHECK(fortran.kind == Value::kBool, IoError, "{}: .npy header: fortran_order is not True/False: {}", name,
             parser.quoted());
  BIUD_CHECK(shapeV.kind == Value::kTuple, IoError, "{}: .npy header: shape is not a tuple of integers: {}", name,
             parser.quoted());

  const std::string& d = descr.str;
  BIUD_CHECK(d.size() == 3 && std::strchr("<>|=", d[0]) && std::isalpha(static_cast<unsigned char>(d[1])) &&
                 std::isdigit(static_cast<unsigned char>(d[2])),
             IoError, "{}: .npy dtype `{}` is not supported (f2 f4 f8 i1 i2 i4 i8 u1 b1)", name, d);
  const char endian = d[0], kind = d[1];
  const int size = d[2] - '0';
  BIUD_CHECK(endian != '>' || size == 1, IoError, "{}: big-endian .npy arrays are not supported (save with '<' dtype)",
             name);
  BIUD_CHECK(!fortran.flag, IoError,
             "{}: Fortran-order .npy arrays are not supported (np.ascontiguousarray before saving)", name);
  torch::Dtype dt;
  if (kind == 'f' && size == 2)
    dt = torch::kFloat16;
  else if (kind == 'f' && size == 4)
    dt = torch::kFloat32;
  else if (kind == 'f' && size == 8)
    dt = torch::kFloat64;
  else if (kind == 'i' && size == 1)
    dt = torch::kInt8;
  else if (kind == 'i' && size == 2)
    dt = torch::kInt16;
  else if (kind == 'i' && size == 4)
    dt = torch::kInt32;
  else if (kind == 'i' && size == 8)
    dt = torch::kInt64;
  else if (kind == 'u' && size == 1)
    dt = torch::kUInt8;
  else if (kind == 'b' && size == 1)
    dt = torch::kBool;
  else
    BIUD_THROW(IoError, "{}: .npy dtype `{}` is not supported (f2 f4 f8 i1 i2 i4 i8 u1 b1)", name, d);

  std::vector<std::int64_t> shape;
  std::uint64_t numel = 1, bytes = 0;
  for (auto s : shapeV.dims) {
    BIUD_CHECK(s <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) &&
                   !__builtin_mul_overflow(numel, s, &numel),
               IoError, "{}: .npy shape {} has more elements than 64 bits can count (damaged header)", name,
               parser.quoted());
    shape.push_back(static_cast<std::int64_t>(s));
  }
  BIUD_CHECK(!__builtin_mul_overflow(numel, static_cast<std::uint64_t>(size), &bytes), IoError,
             "{}: .npy shape {} needs more bytes than 64 bits can count (damaged header)", name, parser.quoted());
  const std::uint64_t present = fileSize - start - hlen;
  BIUD_CHECK(present >= bytes, IoError,
             "{}: .npy data is truncated ({} bytes expected for shape [{}] of `{}`, {} present)", name, bytes,
             fmt::join(shape, ","), d, present);
  BIUD_CHECK(present == bytes, IoError,
             "{}: .npy file has {} bytes after the array ({} expected for shape [{}] of `{}`): not written by "
             "numpy.save, or damaged",
             name, present - bytes, bytes, fmt::join(shape, ","), d);
  return {dt, shape, start + hlen, bytes};
}

void checkBoolBytes(const char* p, std::uint64_t bytes, const std::string& name) {
  for (std::uint64_t i = 0; i < bytes; ++i)
    BIUD_CHECK(static_cast<unsigned char>(p[i]) <= 1, IoError,
               "{}: .npy bool array has byte {} at flat index {}; bool bytes must be 0 or 1 (damaged data)", name,
               static_cast<unsigned>(static_cast<unsigned char>(p[i])), i);
}

}  // namespace

torch::Tensor parseNpy(const std::string& b, const std::string& name) {
  const auto l = parseNpyLayout(b, b.size(), name);
  const char* p = b.data() + l.offset;
  if (l.dt == torch::kBool) checkBoolBytes(p, l.bytes, name);
  auto t = torch::empty(l.shape, torch::TensorOptions().dtype(l.dt));
  if (l.bytes) std::memcpy(t.data_ptr(), p, l.bytes);
  return t;
}

// The data is read straight into the tensor: peak memory is the array, not the file plus the array.
torch::Tensor readNpy(const std::string& path) {
  fs::requireFile(path, ".npy array");
  std::ifstream f(path, std::ios::binary);
  std::error_code ec;
  const auto size = static_cast<std::uint64_t>(std::filesystem::file_size(path, ec));
  BIUD_CHECK(f && !ec, IoError, "{}: cannot open .npy array: {}", path, ec ? ec.message() : std::strerror(errno));
  std::string head(static_cast<std::size_t>(std::min<std::uint64_t>(size, 12 + kMaxHeader)), '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  BIUD_CHECK(f.gcount() == static_cast<std::streamsize>(head.size()), IoError, "{}: cannot read the .npy header", path);
  const auto l = parseNpyLayout(head, size, path);
  auto t = torch::empty(l.shape, torch::TensorOptions().dtype(l.dt));
  f.clear();
  f.seekg(static_cast<std::streamoff>(l.offset));
  if (l.bytes) {
    f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(l.bytes));
    BIUD_CHECK(f && static_cast<std::uint64_t>(f.gcount()) == l.bytes, IoError,
               "{}: cannot read the .npy data ({} bytes)", path, l.bytes);
  }
  if (l.dt == torch::kBool) checkBoolBytes(static_cast<const char*>(t.data_ptr()), l.bytes, path);
  return t;
}

}  // namespace biud::tensor
