#include "biud/core/Schema.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::config {

namespace stdfs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Rules

Rule range(double lo, double hi, bool loOpen, bool hiOpen) {
  Rule r;
  r.lo = lo;
  r.hi = hi;
  r.loOpen = loOpen;
  r.hiOpen = hiOpen;
  return r;
}
Rule atLeast(double lo) {
  Rule r;
  r.lo = lo;
  return r;
}
Rule positive() {
  Rule r;
  r.lo = 0;
  r.loOpen = true;
  return r;
}
Rule oneOf(std::vector<std::string> choices) {
  Rule r;
  r.choices = std::move(choices);
  return r;
}
Rule nonEmpty() {
  Rule r;
  r.nonEmpty = true;
  return r;
}
Rule sizeIs(int n) {
  Rule r;
  r.size = n;
  return r;
}
Rule operator&(Rule a, const Rule& b) {
  if (b.lo) a.lo = b.lo, a.loOpen = b.loOpen;
  if (b.hi) a.hi = b.hi, a.hiOpen = b.hiOpen;
  if (!b.choices.empty()) a.choices = b.choices;
  a.nonEmpty = a.nonEmpty || b.nonEmpty;
  if (b.size >= 0) a.size = b.size;
  return a;
}

std::string Rule::describe() const {
  std::vector<std::string> parts;
  if (lo || hi) {
    std::string s = lo ? fmt::format("{}{}", loOpen ? "(" : "[", *lo) : std::string("(-inf");
    s += ", ";
    s += hi ? fmt::format("{}{}", *hi, hiOpen ? ")" : "]") : std::string("inf)");
    parts.push_back(s);
  }
  if (!choices.empty()) parts.push_back("one of " + fmt::format("{}", fmt::join(choices, "|")));
  if (nonEmpty) parts.push_back("non-empty");
  if (size >= 0) parts.push_back(fmt::format("{} values", size));
  return fmt::format("{}", fmt::join(parts, ", "));
}

namespace {

bool numberOk(double x, const Rule& r) {
  if (std::isnan(x)) return false;
  if (r.lo && (r.loOpen ? !(x > *r.lo) : !(x >= *r.lo))) return false;
  if (r.hi && (r.hiOpen ? !(x < *r.hi) : !(x <= *r.hi))) return false;
  return true;
}

std::string joinPath(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string fmtDouble(double d) { return fmt::format("{}", d); }

// The value under `key` of a mapping, or an undefined node. (yaml-cpp's operator[] inserts on
// non-const nodes and returns a throwing "zombie" on const ones; a default Node is a *defined*
// null. Neither says "absent" safely.)
YAML::Node child(const YAML::Node& map, const std::string& key) {
  if (map.IsMap()) {
    for (const auto& kv : map) {
      if (kv.first.Scalar() == key) return kv.second;
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// Record "file:line" for every key below `node`.
void recordOrigins(const YAML::Node& node, const std::string& prefix, const std::string& file,
                   std::map<std::string, std::string>& out) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = joinPath(prefix, key);
    out[path] = fmt::format("{}:{}", file, kv.first.Mark().line + 1);
    recordOrigins(kv.second, path, file, out);
  }
}

void mergeInto(YAML::Node dst, const YAML::Node& src) {
  for (const auto& kv : src) {
    const std::string key = kv.first.as<std::string>();
    YAML::Node existing = child(dst, key);
    if (existing.IsDefined() && existing.IsMap() && kv.second.IsMap()) {
      mergeInto(existing, kv.second);
    } else {
      dst[key] = YAML::Clone(kv.second);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Document

struct Document::Impl {
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  std::map<std::string, std::string> origins;
  std::vector<std::string> files;
};

Document::Document() : impl_(std::make_unique<Impl>()) {}
Document::~Document() = default;
Document::Document(Document&&) noexcept = default;
Document& Document::operator=(Document&&) noexcept = default;

namespace {

// A key written twice in one mapping of one document is an error. YAML 1.2 says mapping keys are
// unique, but yaml-cpp keeps both entries without a word (and which one a reader sees depends on
// how it looks: mergeInto() ends with the last, child() finds the first); PyYAML silently takes
// the last; ruamel.yaml refuses the document (DuplicateKeyError). We refuse it too. A key given in
// an included file and again in the including file is not a duplicate: each file is checked on
// its own, before the merge, and the including file's value overrides on purpose.
// `depth` bounds the walk: an anchor used inside its own node (`a: &x {b: *x}`) makes yaml-cpp
// build a cycle.
void checkDuplicateKeys(const YAML::Node& node, const std::string& prefix, const std::string& name, int depth = 0) {
  BIUD_CHECK(depth < 64, ConfigError,
             "{}: `{}` is nested more than 64 levels deep (does an alias `*name` refer to the node that defines its "
             "anchor?)",
             name, prefix);
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) continue;
      const std::string& key = kv.first.Scalar();
      const std::string path = joinPath(prefix, key);
      const auto [it, fresh] = seen.emplace(key, kv.first.Mark());
      BIUD_CHECK(fresh, ConfigError,
                 "{}:{}:{}: key `{}` is written twice in the same section (first at line {}, column {}); a YAML "
                 "reader keeps only one of them, so delete the one you do not mean (to override a value on "
                 "purpose, put it in a file that includes this one, or use --set)",
                 name, kv.first.Mark().line + 1, kv.first.Mark().column + 1, path, it->second.line + 1,
                 it->second.column + 1);
      checkDuplicateKeys(kv.second, path, name, depth + 1);
    }
  } else if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i)
      checkDuplicateKeys(node[i], fmt::format("{}[{}]", prefix, i), name, depth + 1);
  }
}

YAML::Node parseYaml(const std::string& text, const std::string& name) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    BIUD_THROW(ConfigError, "{}:{}:{}: YAML syntax error: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (!node || node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  BIUD_CHECK(node.IsMap(), ConfigError, "{}: a config file must be a mapping of keys to values at the top level", name);
  checkDuplicateKeys(node, "", name);
  return node;
}

void loadFileInto(Document::Impl& impl, const stdfs::path& path, std::vector<std::string>& stack) {
  const std::string name = path.string();
  BIUD_CHECK(stdfs::exists(path), ConfigError, "config file `{}` not found{}", name,
             stack.empty() ? "" : fmt::format(" (included from `{}`)", stack.back()));
  const std::string canon = stdfs::weakly_canonical(path).string();
  BIUD_CHECK(std::find(stack.begin(), stack.end(), canon) == stack.end(), ConfigError,
             "config include cycle: `{}` includes itself (through {})", name, fmt::join(stack, " -> "));
  YAML::Node node = parseYaml(fs::readFile(path), name);
  impl.files.push_back(name);

  Document::Impl mine;
  recordOrigins(node, "", name, mine.origins);
  for (const char* incKey : {"include", "base"}) {
    YAML::Node inc = child(node, incKey);
    if (!inc.IsDefined()) continue;
    std::vector<std::string> includes;
    if (inc.IsScalar()) {
      includes.push_back(inc.as<std::string>());
    } else if (inc.IsSequence()) {
      for (const auto& i : inc) {
        BIUD_CHECK(i.IsScalar(), ConfigError, "{}:{}: `{}:` takes a file name or a list of file names", name,
                   inc.Mark().line + 1, incKey);
        includes.push_back(i.as<std::string>());
      }
    } else {
      BIUD_THROW(ConfigError, "{}:{}: `{}:` takes a file name or a list of file names", name, inc.Mark().line + 1,
                 incKey);
    }
    stack.push_back(canon);
    for (const auto& rel : includes) {
      stdfs::path p = stdfs::path(rel).is_absolute() ? stdfs::path(rel) : path.parent_path() / rel;
      loadFileInto(impl, p, stack);
    }
    stack.pop_back();
    node.remove(incKey);
    mine.origins.erase(incKey);
  }
  mergeInto(impl.root, node);
  for (auto& [k, v] : mine.origins) impl.origins[k] = v;
}

}  // namespace

Document Document::fromFile(const std::string& path) {
  Document d;
  std::vector<std::string> stack;
  loadFileInto(*d.impl_, path, stack);
  return d;
}

Document Document::fromString(const std::string& yaml, const std::string& name) {
  Document d;
  YAML::Node node = parseYaml(yaml, name);
  BIUD_CHECK(!child(node, "include").IsDefined() && !child(node, "base").IsDefined(), ConfigError,
             "{}: `include:` works in files only", name);
  recordOrigins(node, "", name, d.impl_->origins);
  d.impl_->root = node;
  return d;
}

void Document::applyOverride(const std::string& assignment) {
  const auto eq = assignment.find('=');
  BIUD_CHECK(eq != std::string::npos && eq > 0, ConfigError,
             "--set `{}`: expected key=value, e.g. --set optimizer.lr=3e-4", assignment);
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(text);
  }
  if (!value || value.IsNull()) value = YAML::Node(text);
  checkDuplicateKeys(value, key, "--set " + assignment);

  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) {
    BIUD_CHECK(!p.empty(), ConfigError, "--set `{}`: empty part in key `{}`", assignment, key);
    parts.push_back(p);
  }
  // Check that no prefix of the key is a plain value, then merge a fresh tree {a: {b: {c: v}}}.
  {
    YAML::Node cur = impl_->root;
    std::string path;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      path = joinPath(path, parts[i]);
      YAML::Node next = child(cur, parts[i]);
      if (!next.IsDefined() || next.IsNull()) break;
      BIUD_CHECK(next.IsMap(), ConfigError, "--set `{}`: `{}` is a value, not a section", assignment, path);
      cur.reset(next);
    }
  }
  YAML::Node tree = YAML::Clone(value);
  for (size_t i = parts.size(); i-- > 0;) {
    YAML::Node m(YAML::NodeType::Map);
    m[parts[i]] = tree;
    tree.reset(m);
  }
  mergeInto(impl_->root, tree);
  const std::string origin = "--set " + assignment;
  impl_->origins[key] = origin;
  if (value.IsMap()) {
    std::map<std::string, std::string> sub;
    recordOrigins(value, key, origin, sub);
    for (auto& [k, v] : sub) impl_->origins[k] = origin;
  }
}

void Document::applyOverrides(const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) applyOverride(a);
}

void Document::mergeFrom(const Document& top) {
  mergeInto(impl_->root, top.impl_->root);
  for (auto& [k, v] : top.impl_->origins) impl_->origins[k] = v;
  for (auto& f : top.impl_->files) impl_->files.push_back(f);
}

std::string Document::origin(const std::string& keyPath) const {
  auto it = impl_->origins.find(keyPath);
  return it == impl_->origins.end() ? std::string() : it->second;
}

std::string Document::str() const {
  YAML::Emitter e;
  e << impl_->root;
  return e.c_str();
}

const std::vector<std::string>& Document::files() const { return impl_->files; }

// ---------------------------------------------------------------------------------------------
// Suggestions

int editDistance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  int bestD = 1 << 30;
  for (const auto& c : candidates) {
    const int d = editDistance(key, c);
    if (d < bestD) bestD = d, best = c;
  }
  const int allowed = std::max<int>(2, static_cast<int>(key.size()) / 3);
  if (bestD <= allowed) return best;
  // Same leaf name in another section ("lr" -> "optimizer.lr").
  const auto leaf = key.substr(key.rfind('.') + 1);
  std::string hit;
  for (const auto& c : candidates) {
    if (c.substr(c.rfind('.') + 1) == leaf) {
      if (!hit.empty()) return "";  // ambiguous
      hit = c;
    }
  }
  return hit;
}

// ---------------------------------------------------------------------------------------------
// Visitors

namespace {

using MapSD = std::map<std::string, double>;
using MapSS = std::map<std::string, std::string>;

/// A visitor that knows the dotted path of the section it is in (`prefix_`: "a.b" inside a: b:).
class KeyPathVisitor : public Visitor {
 protected:
  void enter(const char* key, const char*) override {
    stack_.push_back(prefix_);
    prefix_ = joinPath(prefix_, key);
  }
  void leave() override {
    prefix_ = stack_.back();
    stack_.pop_back();
  }
  std::string prefix_;

 private:
  std::vector<std::string> stack_;
};

class KeyCollector final : public KeyPathVisitor {
 public:
  std::vector<std::string> keys;
#define BIUD_COLLECT(T) \
  void field(const char* key, T&, const char*, const Rule&) override { keys.push_back(joinPath(prefix_, key)); }
  BIUD_COLLECT(bool)
  BIUD_COLLECT(int)
  BIUD_COLLECT(std::int64_t)
  BIUD_COLLECT(double)
  BIUD_COLLECT(std::string)
  BIUD_COLLECT(std::vector<int>)
  BIUD_COLLECT(std::vector<double>)
  BIUD_COLLECT(std::vector<std::string>)
  BIUD_COLLECT(MapSD)
  BIUD_COLLECT(MapSS)
#undef BIUD_COLLECT
};

class Reader final : public Visitor {
 public:
  Reader(const Document& doc, YAML::Node root, std::string prefix, std::vector<std::string> allKeys)
      : doc_(doc), allKeys_(std::move(allKeys)) {
    frames_.push_back({root, std::move(prefix), {}});
  }

  bool reading() const override { return true; }

  void fail(const char* key, const std::string& message) override {
    const std::string path = joinPath(frames_.back().prefix, key);
    BIUD_THROW(ConfigError, "config key `{}`{}: {}", path, at(path), message);
  }

  void field(const char* key, bool& v, const char* doc, const Rule&) override {
    YAML::Node n = take(key);
    if (!n) return;
    const std::string s = scalar(key, n, "true or false");
    if (s == "true" || s == "True" || s == "yes" || s == "on")
      v = true;
    else if (s == "false" || s == "False" || s == "no" || s == "off")
      v = false;
    else
      typeError(key, "true or false", s);
  }
  void field(const char* key, int& v, const char* doc, const Rule& r) override {
    std::int64_t x = v;
    readInt(key, x, r);
    BIUD_CHECK(x >= INT32_MIN && x <= INT32_MAX, ConfigError, "config key `{}`{}: {} does not fit in 32 bits",
               path(key), at(path(key)), x);
    v = static_cast<int>(x);
  }
  void field(const char* key, std::int64_t& v, const char* doc, const Rule& r) override { readInt(key, v, r); }
  void field(const char* key, double& v, const char* doc, const Rule& r) override {
    YAML::Node n = take(key);
    if (!n) return;
    const std::string s = scalar(key, n, "a number");
    v = toDouble(key, s);
    checkNumber(key, v, r);
  }
  void field(const char* key, std::string& v, const char* doc, const Rule& r) override {
    YAML::Node n = take(key);
    if (!n) return;
    v = n.IsNull() ? std::string() : scalar(key, n, "a string");
    checkString(key, v, r);
  }
  void field(const char* key, std::vector<int>& v, const char* doc, const Rule& r) override {
    readList<int>(key, v, r, "a list of integers",
                  [&](const std::string& s) { return static_cast<int>(toInt(key, s)); });
  }
  void field(const char* key, std::vector<double>& v, const char* doc, const Rule& r) override {
    readList<double>(key, v, r, "a list of numbers", [&](const std::string& s) { return toDouble(key, s); });
  }
  void field(const char* key, std::vector<std::string>& v, const char* doc, const Rule& r) override {
    readList<std::string>(key, v, r, "a list of strings", [&](const std::string& s) {
      checkString(key, s, Rule{} & oneOf(r.choices));
      return s;
    });
  }
  void field(const char* key, std::map<std::string, double>& v, const char* doc, const Rule& r) override {
    readMap<double>(key, v, r, [&](const std::string& k, const std::string& s) {
      const double x = toDouble(key, s);
      checkNumber((std::string(key) + "." + k).c_str(), x, r);
      return x;
    });
  }
  void field(const char* key, std::map<std::string, std::string>& v, const char* doc, const Rule& r) override {
    readMap<std::string>(key, v, r, [&](const std::string&, const std::string& s) { return s; });
  }

  /// Unknown keys of the root frame (called after the visit).
  void finish() { checkUnknown(frames_.front()); }

 protected:
  void enter(const char* key, const char*) override {
    Frame& f = frames_.back();
    f.seen.insert(key);
    YAML::Node n = child(f.node, key);
    const std::string p = joinPath(f.prefix, key);
    if (!n || n.IsNull()) {
      n = YAML::Node(YAML::NodeType::Map);
    } else if (!n.IsMap()) {
      BIUD_THROW(ConfigError, "config key `{}`{}: expected a section of keys, got `{}`", p, at(p),
                 n.IsScalar() ? n.Scalar() : std::string("a list"));
    }
    frames_.push_back({n, p, {}});
  }
  void leave() override {
    checkUnknown(frames_.back());
    frames_.pop_back();
  }

 private:
  struct Frame {
    YAML::Node node;
    std::string prefix;
    std::set<std::string> seen;
  };

  std::string path(const char* key) const { return joinPath(frames_.back().prefix, key); }
  std::string at(const std::string& p) const {
    const std::string o = doc_.origin(p);
    return o.empty() ? "" : " in " + o;
  }

  YAML::Node take(const char* key) {
    Frame& f = frames_.back();
    f.seen.insert(key);
    return child(f.node, key);
  }

  std::string scalar(const char* key, const YAML::Node& n, const char* expected) {
    if (!n.IsScalar()) typeError(key, expected, n.IsSequence() ? "a list" : n.IsMap() ? "a section" : "nothing");
    return n.Scalar();
  }

  [[noreturn]] void typeError(const char* key, const std::string& expected, const std::string& got) {
    const std::string p = path(key);
    BIUD_THROW(ConfigError, "config key `{}`{}: expected {}, got `{}`", p, at(p), expected, got);
  }

  std::int64_t toInt(const char* key, const std::string& s) {
    try {
      size_t pos = 0;
      const long long x = std::stoll(s, &pos, 0);
      if (pos == s.size()) return x;
      // Accept integral floats such as 1e4.
      const double d = std::stod(s, &pos);
      if (pos == s.size() && std::floor(d) == d && std::fabs(d) < 9.0e18) return static_cast<std::int64_t>(d);
    } catch (const std::exception&) {
    }
    typeError(key, "an integer", s);
  }
  double toDouble(const char* key, const std::string& s) {
    if (s == ".inf" || s == "inf") return INFINITY;
    if (s == "-.inf" || s == "-inf") return -INFINITY;
    try {
      size_t pos = 0;
      const double d = std::stod(s, &pos);
      if (pos == s.size()) return d;
    } catch (const std::exception&) {
    }
    typeError(key, "a number", s);
  }

  void readInt(const char* key, std::int64_t& v, const Rule& r) {
    YAML::Node n = take(key);
    if (!n) return;
    v = toInt(key, scalar(key, n, "an integer"));
    checkNumber(key, static_cast<double>(v), r);
  }

  void checkNumber(const char* key, double x, const Rule& r) {
    if (numberOk(x, r)) return;
    const std::string p = path(key);
    BIUD_THROW(ConfigError, "config key `{}` = {}{} is out of range: allowed {}", p, fmtDouble(x), at(p), r.describe());
  }
  void checkString(const char* key, const std::string& s, const Rule& r) {
    const std::string p = path(key);
    if (r.nonEmpty && s.empty()) BIUD_THROW(ConfigError, "config key `{}`{} must not be empty", p, at(p));
    if (!r.choices.empty() && std::find(r.choices.begin(), r.choices.end(), s) == r.choices.end()) {
      const std::string guess = closest(s, r.choices);
      BIUD_THROW(ConfigError, "config key `{}` = `{}`{} is not allowed: use one of {}{}", p, s, at(p),
                 fmt::join(r.choices, ", "), guess.empty() ? "" : fmt::format(" (did you mean `{}`?)", guess));
    }
  }

  template <class T, class Conv>
  void readList(const char* key, std::vector<T>& v, const Rule& r, const char* expected, Conv conv) {
    YAML::Node n = take(key);
    if (!n) return;
    std::vector<T> out;
    if (n.IsSequence()) {
      for (const auto& e : n) out.push_back(conv(scalar(key, e, expected)));
    } else if (n.IsNull()) {
    } else {
      typeError(key, expected, n.IsScalar() ? n.Scalar() : "a section");
    }
    const std::string p = path(key);
    if (r.nonEmpty && out.empty()) BIUD_THROW(ConfigError, "config key `{}`{} must not be empty", p, at(p));
    if (r.size >= 0 && static_cast<int>(out.size()) != r.size)
      BIUD_THROW(ConfigError, "config key `{}`{}: expected {} values, got {}", p, at(p), r.size, out.size());
    if constexpr (std::is_arithmetic_v<T>) {
      for (T x : out) checkNumber(key, static_cast<double>(x), r);
    }
    v = std::move(out);
  }

  template <class T, class Conv>
  void readMap(const char* key, std::map<std::string, T>& v, const Rule& r, Conv conv) {
    YAML::Node n = take(key);
    if (!n) return;
    if (n.IsNull()) {
      v.clear();
      return;
    }
    if (!n.IsMap()) typeError(key, "a section of name: value pairs", n.IsScalar() ? n.Scalar() : "a list");
    std::map<std::string, T> out;
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      out[k] = conv(k, scalar(key, kv.second, "a value"));
    }
    v = std::move(out);
  }

  // First leaf below an unknown key, so the message names the full path the user wrote.
  std::string firstLeaf(const YAML::Node& n, const std::string& p) const {
    if (n.IsMap() && n.size() > 0) {
      const auto it = n.begin();
      return firstLeaf(it->second, p + "." + it->first.as<std::string>());
    }
    return p;
  }

  void checkUnknown(const Frame& f) {
    if (!f.node.IsMap()) return;
    std::vector<std::string> msgs;
    for (const auto& kv : f.node) {
      const std::string k = kv.first.as<std::string>();
      if (f.seen.count(k)) continue;
      const std::string p = firstLeaf(kv.second, joinPath(f.prefix, k));
      const std::string o = doc_.origin(p);
      const std::string guess = closest(p, allKeys_);
      msgs.push_back(fmt::format("unknown key `{}`{}{}", p, o.empty() ? "" : " in " + o,
                                 guess.empty() ? "" : fmt::format("; did you mean `{}`?", guess)));
    }
    if (msgs.empty()) return;
    BIUD_THROW(ConfigError, "{}", fmt::join(msgs, "\n"));
  }

  const Document& doc_;
  std::vector<std::string> allKeys_;
  std::vector<Frame> frames_;
};

class Writer final : public Visitor {
 public:
  explicit Writer(bool comments) : comments_(comments) { e_ << YAML::BeginMap; }
  std::string str() {
    e_ << YAML::EndMap;
    return std::string(e_.c_str()) + "\n";
  }

  void field(const char* key, bool& v, const char* doc, const Rule&) override { kv(key, v ? "true" : "false", doc); }
  void field(const char* key, int& v, const char* doc, const Rule&) override { kv(key, std::to_string(v), doc); }
  void field(const char* key, std::int64_t& v, const char* doc, const Rule&) override {
    kv(key, std::to_string(v), doc);
  }
  void field(const char* key, double& v, const char* doc, const Rule&) override { kv(key, fmtDouble(v), doc); }
  void field(const char* key, std::string& v, const char* doc, const Rule&) override {
    e_ << YAML::Key << key << YAML::Value;
    if (v.empty())
      e_ << YAML::DoubleQuoted << "";
    else
      e_ << v;
    comment(doc);
  }
  void field(const char* key, std::vector<int>& v, const char* doc, const Rule&) override { list(key, v, doc); }
  void field(const char* key, std::vector<double>& v, const char* doc, const Rule&) override { list(key, v, doc); }
  void field(const char* key, std::vector<std::string>& v, const char* doc, const Rule&) override { list(key, v, doc); }
  void field(const char* key, std::map<std::string, double>& v, const char* doc, const Rule&) override {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (auto& [k, x] : v) e_ << YAML::Key << k << YAML::Value << fmtDouble(x);
    e_ << YAML::EndMap;
    comment(doc);
  }
  void field(const char* key, std::map<std::string, std::string>& v, const char* doc, const Rule&) override {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (auto& [k, x] : v) e_ << YAML::Key << k << YAML::Value << x;
    e_ << YAML::EndMap;
    comment(doc);
  }

 protected:
  void enter(const char* key, const char* doc) override {
    e_ << YAML::Key << key;
    comment(doc);
    e_ << YAML::Value << YAML::BeginMap;
  }
  void leave() override { e_ << YAML::EndMap; }

 private:
  void kv(const char* key, const std::string& v, const char* doc) {
    e_ << YAML::Key << key << YAML::Value << v;
    comment(doc);
  }
  template <class T>
  void list(const char* key, const std::vector<T>& v, const char* doc) {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) {
      if constexpr (std::is_same_v<T, double>)
        e_ << fmtDouble(x);
      else
        e_ << x;
    }
    e_ << YAML::EndSeq;
    comment(doc);
  }
  void comment(const char* doc) {
    if (comments_ && doc && *doc) e_ << YAML::Comment(doc);
  }
  YAML::Emitter e_;
  bool comments_;
};

class Describer final : public KeyPathVisitor {
 public:
  std::vector<std::array<std::string, 4>> rows;
  void field(const char* key, bool& v, const char* doc, const Rule& r) override {
    add(key, "bool", v ? "true" : "false", doc, r);
  }
  void field(const char* key, int& v, const char* doc, const Rule& r) override {
    add(key, "int", std::to_string(v), doc, r);
  }
  void field(const char* key, std::int64_t& v, const char* doc, const Rule& r) override {
    add(key, "int", std::to_string(v), doc, r);
  }
  void field(const char* key, double& v, const char* doc, const Rule& r) override {
    add(key, "float", fmtDouble(v), doc, r);
  }
  void field(const char* key, std::string& v, const char* doc, const Rule& r) override {
    add(key, "string", v.empty() ? "\"\"" : v, doc, r);
  }
  void field(const char* key, std::vector<int>& v, const char* doc, const Rule& r) override {
    add(key, "[int]", fmt::format("[{}]", fmt::join(v, ", ")), doc, r);
  }
  void field(const char* key, std::vector<double>& v, const char* doc, const Rule& r) override {
    add(key, "[float]", fmt::format("[{}]", fmt::join(v, ", ")), doc, r);
  }
  void field(const char* key, std::vector<std::string>& v, const char* doc, const Rule& r) override {
    add(key, "[string]", fmt::format("[{}]", fmt::join(v, ", ")), doc, r);
  }
  void field(const char* key, std::map<std::string, double>& v, const char* doc, const Rule& r) override {
    add(key, "{name: float}", v.empty() ? "{}" : "...", doc, r);
  }
  void field(const char* key, std::map<std::string, std::string>& v, const char* doc, const Rule& r) override {
    add(key, "{name: string}", v.empty() ? "{}" : "...", doc, r);
  }

 private:
  void add(const char* key, const char* type, const std::string& def, const char* doc, const Rule& r) {
    std::string d = doc ? doc : "";
    const std::string rule = r.describe();
    if (!rule.empty()) d += " (" + rule + ")";
    rows.push_back({joinPath(prefix_, key), type, def, d});
  }
};

}  // namespace

std::vector<std::string> keyPaths(const std::function<void(Visitor&)>& visit) {
  KeyCollector c;
  visit(c);
  return c.keys;
}

void read(const Document& doc, const std::function<void(Visitor&)>& visit, const std::string& section) {
  auto keys = keyPaths(visit);
  YAML::Node root = doc.impl().root;
  std::string prefix;
  if (!section.empty()) {
    for (auto& k : keys) k = section + "." + k;
    root = child(doc.impl().root, section);
    prefix = section;
    if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    BIUD_CHECK(root.IsMap(), ConfigError, "config key `{}`: expected a section of keys", section);
  }
  Reader r(doc, root, prefix, keys);
  visit(r);
  r.finish();
}

std::string toYaml(const std::function<void(Visitor&)>& visit, bool comments) {
  Writer w(comments);
  visit(w);
  return w.str();
}

std::string describe(const std::function<void(Visitor&)>& visit) {
  Describer d;
  visit(d);
  size_t w0 = 0, w1 = 0, w2 = 0;
  for (auto& r : d.rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
    w2 = std::max(w2, std::min<size_t>(r[2].size(), 24));
  }
  std::string out;
  for (auto& r : d.rows) out += fmt::format("  {:<{}}  {:<{}}  {:<{}}  {}\n", r[0], w0, r[1], w1, r[2], w2, r[3]);
  return out;
}

}  // namespace biud::config
