// Reading a torch.save'd state dict (the zip format of torch >= 1.6) without Python: LibTorch's own
// unpickler (torch::pickle_load) turns collections.OrderedDict — what module.state_dict() returns,
// so every released checkpoint — into None. This is a small pickle machine for exactly what
// torch.save writes for a (possibly nested) dict of tensors: protocols 2-5, dicts / OrderedDicts,
// tuples, lists, strings, numbers, torch._utils._rebuild_tensor_v2 / _rebuild_parameter over
// persistent storages read from the archive's data/<key> records. Anything else (custom classes,
// code objects) is an IoError naming the file and the opcode or global.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/models/CtClip.h"

namespace biud::models {

namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Global {
  std::string module, name;
};
struct Mark {};

/// One value of the pickle machine.
struct Value {
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    String,
    Tuple,
    List,
    Dict,
    Global,
    Tensor,
    Storage,
    Mark
  } kind = Kind::None;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<ValuePtr> items;                      // Tuple, List
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // Dict (insertion order)
  Global g;                                         // Global
  torch::Tensor t;                                  // Tensor, Storage (flat)
};

ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

torch::Dtype storageDtype(const std::string& name, const std::string& file) {
  static const std::map<std::string, torch::Dtype> m = {
      {"FloatStorage", torch::kFloat32},     {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64},     {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},       {"CharStorage", torch::kInt8},      {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool}};
  auto it = m.find(name);
  BIUD_CHECK(it != m.end(), IoError, "{}: storage type torch.{} is not supported", file, name);
  return it->second;
}

class Machine {
 public:
  Machine(caffe2::serialize::PyTorchStreamReader& reader, std::string data, std::string file)
      : reader_(reader), data_(std::move(data)), file_(std::move(file)) {}

  ValuePtr run() {
    while (true) {
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME
        case '.':
          BIUD_CHECK(stack_.size() == 1, IoError, "{}: malformed pickle (stack at STOP)", file_);
          return pop();
        case '(':
          stack_.push_back(make(Value::Kind::Mark));
          break;
        case 'N':
          stack_.push_back(make(Value::Kind::None));
          break;
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          auto v = make(Value::Kind::Bool);
          v->b = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'J':
          pushInt(static_cast<std::int32_t>(le(4)));
          break;
        case 'K':
          pushInt(static_cast<std::int64_t>(le(1)));
          break;
        case 'M':
          pushInt(static_cast<std::int64_t>(le(2)));
          break;
        case 0x8a: {  // LONG1
          const auto n = static_cast<size_t>(le(1));
          BIUD_CHECK(n <= 8, IoError, "{}: integer of {} bytes", file_, n);
          std::uint64_t u = n ? le(n) : 0;
          if (n && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~std::uint64_t(0) << (8 * n);  // sign-extend
          pushInt(static_cast<std::int64_t>(u));
          break;
        }
        case 'G': {  // BINFLOAT (big-endian)
          const auto b = bytes(8);
          std::uint64_t u = 0;
          for (unsigned char c : b) u = (u << 8) | c;
          auto v = make(Value::Kind::Float);
          std::memcpy(&v->f, &u, 8);
          stack_.push_back(v);
          break;
        }
        case 'X':
          pushString(bytes(le(4)));
          break;  // BINUNICODE
        case 0x8c:
          pushString(bytes(le(1)));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          pushString(bytes(le(8)));
          break;  // BINUNICODE8
        case 'T':
          pushString(bytes(le(4)));
          break;  // BINSTRING
        case 'U':
          pushString(bytes(le(1)));
          break;  // SHORT_BINSTRING
        case 'C':
          pushString(bytes(le(1)));
          break;  // SHORT_BINBYTES
        case 'B':
          pushString(bytes(le(4)));
          break;     // BINBYTES
        case 'c': {  // GLOBAL
          auto v = make(Value::Kind::Global);
          v->g.module = line();
          v->g.name = line();
          stack_.push_back(v);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          auto v = make(Value::Kind::Global);
          v->g = {module->s, name->s};
          stack_.push_back(v);
          break;
        }
        case 'q':
          memo_[le(1)] = top();
          break;  // BINPUT
        case 'r':
          memo_[le(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
          stack_.push_back(memo(le(1)));
          break;  // BINGET
        case 'j':
          stack_.push_back(memo(le(4)));
          break;  // LONG_BINGET
        case ')':
          stack_.push_back(make(Value::Kind::Tuple));
          break;
        case 't': {
          auto v = make(Value::Kind::Tuple);
          v->items = popMark();
          stack_.push_back(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          auto v = make(Value::Kind::Tuple);
          const size_t n = op - 0x84;
          BIUD_CHECK(stack_.size() >= n, IoError, "{}: malformed pickle (TUPLE{})", file_, n);
          v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          stack_.push_back(v);
          break;
        }
        case ']':
          stack_.push_back(make(Value::Kind::List));
          break;
        case 'l': {
          auto v = make(Value::Kind::List);
          v->items = popMark();
          stack_.push_back(v);
          break;
        }
        case 'a': {
          auto x = pop();
          list(top())->items.push_back(x);
          break;
        }
        case 'e': {
          auto xs = popMark();
          auto& l = list(top())->items;
          l.insert(l.end(), xs.begin(), xs.end());
          break;
        }
        case '}':
          stack_.push_back(make(Value::Kind::Dict));
          break;
        case 'd': {
          auto v = make(Value::Kind::Dict);
          setItems(*v, popMark());
          stack_.push_back(v);
          break;
        }
        case 's': {
          auto val = pop(), key = pop();
          setItems(*dict(top()), {key, val});
          break;
        }
        case 'u': {
          auto xs = popMark();
          setItems(*dict(top()), xs);
          break;
        }
        case '0':
          pop();
          break;  // POP
        case '1':
          popMark();
          break;  // POP_MARK
        case '2':
          stack_.push_back(top());
          break;  // DUP
        case 'Q': {
          auto pid = pop();
          stack_.push_back(storage(*pid));
          break;
        }  // BINPERSID
        case 'R': {
          auto args = pop(), fn = pop();
          stack_.push_back(reduce(*fn, *args));
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: a state dict's `_metadata` attribute (versions); not needed
        default:
          BIUD_THROW(IoError, "{}: pickle opcode 0x{:02x} at byte {} is not supported (not a plain state dict?)", file_,
                     static_cast<unsigned>(op), pos_ - 1);
      }
    }
  }

 private:
  char byte() {
    BIUD_CHECK(pos_ < data_.size(), IoError, "{}: pickle data ends early", file_);
    return data_[pos_++];
  }
  std::string bytes(std::uint64_t n) {
    BIUD_CHECK(n <= data_.size() - pos_, IoError, "{}: pickle data ends early", file_);
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t le(size_t n) {
    const auto b = bytes(n);
    std::uint64_t u = 0;
    for (size_t k = 0; k < n; ++k) u |= std::uint64_t(static_cast<unsigned char>(b[k])) << (8 * k);
    return u;
  }
  std::string line() {
    const auto end = data_.find('\n', pos_);
    BIUD_CHECK(end != std::string::npos, IoError, "{}: pickle data ends early", file_);
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void pushInt(std::int64_t x) {
    auto v = make(Value::Kind::Int);
    v->i = x;
    stack_.push_back(v);
  }
  void pushString(std::string s) {
    auto v = make(Value::Kind::String);
    v->s = std::move(s);
    stack_.push_back(v);
  }
  ValuePtr pop() {
    BIUD_CHECK(!stack_.empty(), IoError, "{}: malformed pickle (empty stack)", file_);
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr top() {
    BIUD_CHECK(!stack_.empty(), IoError, "{}: malformed pickle (empty stack)", file_);
    return stack_.back();
  }
  ValuePtr memo(std::uint64_t k) {
    auto it = memo_.find(k);
    BIUD_CHECK(it != memo_.end(), IoError, "{}: malformed pickle (memo {} unset)", file_, k);
    return it->second;
  }
  std::vector<ValuePtr> popMark() {
    std::vector<ValuePtr> out;
    while (true) {
      auto v = pop();
      if (v->kind == Value::Kind::Mark) break;
      out.push_back(v);
    }
    return {out.rbegin(), out.rend()};
  }
  Value* list(const ValuePtr& v) {
    BIUD_CHECK(v->kind == Value::Kind::List, IoError, "{}: APPEND to a non-list", file_);
    return v.get();
  }
  Value* dict(const ValuePtr& v) {
    BIUD_CHECK(v->kind == Value::Kind::Dict, IoError, "{}: SETITEM on a non-dict", file_);
    return v.get();
  }
  void setItems(Value& d, const std::vector<ValuePtr>& kv) {
    BIUD_CHECK(kv.size() % 2 == 0, IoError, "{}: malformed pickle (odd SETITEMS)", file_);
    for (size_t k = 0; k < kv.size(); k += 2) d.dict.emplace_back(kv[k], kv[k + 1]);
  }
  std::vector<std::int64_t> ints(const Value& v) {
    BIUD_CHECK(v.kind == Value::Kind::Tuple || v.kind == Value::Kind::List, IoError, "{}: expected a size tuple",
               file_);
    std::vector<std::int64_t> out;
    for (const auto& x : v.items) {
      BIUD_CHECK(x->kind == Value::Kind::Int, IoError, "{}: expected integers in a size tuple", file_);
      out.push_back(x->i);
    }
    return out;
  }

  /// ('storage', torch.<T>Storage, key, location, numel) -> the flat storage tensor.
  ValuePtr storage(const Value& pid) {
    BIUD_CHECK(pid.kind == Value::Kind::Tuple && pid.items.size() >= 5 && pid.items[0]->s == "storage" &&
                   pid.items[1]->kind == Value::Kind::Global && pid.items[2]->kind == Value::Kind::String &&
                   pid.items[4]->kind == Value::Kind::Int,
               IoError, "{}: persistent id is not a torch storage", file_);
    const auto& key = pid.items[2]->s;
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const auto dtype = storageDtype(pid.items[1]->g.name, file_);
    const std::string record = "data/" + key;
    BIUD_CHECK(reader_.hasRecord(record), IoError, "{}: record {} missing", file_, record);
    const auto numel = pid.items[4]->i;
    const auto elem = static_cast<std::int64_t>(c10::elementSize(dtype));
    // The record size bounds the allocation (a damaged numel cannot ask for more than the file holds).
    BIUD_CHECK(numel >= 0 && numel <= static_cast<std::int64_t>(reader_.getRecordSize(record)) / elem, IoError,
               "{}: storage {} claims {} elements, its record holds {} bytes", file_, key, numel,
               reader_.getRecordSize(record));
    auto t = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    const auto bytes = static_cast<size_t>(numel * elem);
    const auto n = reader_.getRecord(record, t.data_ptr(), bytes);
    BIUD_CHECK(n == bytes, IoError, "{}: record {} holds {} bytes, the storage needs {}", file_, record, n, bytes);
    auto v = make(Value::Kind::Storage);
    v->t = t;
    storages_[key] = v;
    return v;
  }

  ValuePtr reduce(const Value& fn, const Value& args) {
    BIUD_CHECK(fn.kind == Value::Kind::Global, IoError, "{}: REDUCE of a non-global", file_);
    const auto name = fn.g.module + "." + fn.g.name;
    if (name == "collections.OrderedDict") return make(Value::Kind::Dict);  // filled by SETITEMS
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      BIUD_CHECK(args.items.size() >= 4 && args.items[0]->kind == Value::Kind::Storage &&
                     args.items[1]->kind == Value::Kind::Int,
                 IoError, "{}: malformed {} arguments", file_, name);
      auto v = make(Value::Kind::Tensor);
      const auto& st = args.items[0]->t;
      const auto size = ints(*args.items[2]), stride = ints(*args.items[3]);
      BIUD_CHECK(size.size() == stride.size() && args.items[1]->i >= 0, IoError, "{}: malformed tensor geometry",
                 file_);
      for (size_t k = 0; k < size.size(); ++k)
        BIUD_CHECK(
            size[k] >= 0 && stride[k] >= 0 && size[k] < (std::int64_t(1) << 40) && stride[k] < (std::int64_t(1) << 40),
            IoError, "{}: malformed tensor geometry", file_);
      long double last = static_cast<long double>(args.items[1]->i);  // no overflow for any geometry
      for (size_t k = 0; k < size.size(); ++k)
        if (size[k] > 0) last += static_cast<long double>(size[k] - 1) * static_cast<long double>(stride[k]);
      BIUD_CHECK(std::find(size.begin(), size.end(), 0) != size.end() || last < static_cast<long double>(st.numel()),
                 IoError, "{}: a tensor reaches past its storage", file_);
      v->t = st.as_strided(size, stride, args.items[1]->i);
      return v;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      BIUD_CHECK(!args.items.empty() && args.items[0]->kind == Value::Kind::Tensor, IoError, "{}: malformed {}", file_,
                 name);
      return args.items[0];
    }
    BIUD_THROW(IoError, "{}: `{}` in the pickle is not supported (a state dict of tensors was expected)", file_, name);
  }

  caffe2::serialize::PyTorchStreamReader& reader_;
  std::string data_;
  std::string file_;
  size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::map<std::uint64_t, ValuePtr> memo_;
  std::map<std::string, ValuePtr> storages_;
};

void collect(const Value& d, tensor::TensorMap& out, const std::string& file) {
  for (const auto& [k, v] : d.dict) {
    BIUD_CHECK(k->kind == Value::Kind::String, IoError, "{}: a state-dict key is not a string", file);
    BIUD_CHECK(v->kind == Value::Kind::Tensor, IoError,
               "{}: entry `{}` is not a tensor (a training package? pass its state dict)", file, k->s);
    out[k->s] = v->t;
  }
}

}  // namespace

/// The tensors of a torch.save'd (zip) dict of tensors, or of its "model"/"state_dict" entry.
tensor::TensorMap readTorchStateDict(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    BIUD_THROW(IoError, "`{}` is not a torch.save zip archive ({}): save with torch >= 1.6 or pass a .safetensors file",
               path, firstLine(e.what()));
  }
  BIUD_CHECK(reader->hasRecord("data.pkl"), IoError, "`{}`: no data.pkl in the archive (a TorchScript file?)", path);
  auto [ptr, size] = reader->getRecord("data.pkl");
  std::string pkl(static_cast<const char*>(ptr.get()), size);
  Machine m(*reader, std::move(pkl), path);
  auto root = m.run();
  BIUD_CHECK(root->kind == Value::Kind::Dict, IoError,
             "`{}`: the pickled object is not a dict (a state dict was expected)", path);
  for (const auto& [k, v] : root->dict)
    if (k->kind == Value::Kind::String && (k->s == "model" || k->s == "state_dict") && v->kind == Value::Kind::Dict) {
      root = v;  // a training package {"model": state_dict, "optim": ...}
      break;
    }
  tensor::TensorMap out;
  collect(*root, out, path);
  return out;
}

}  // namespace biud::models
