#pragma once
/// \file Schema.h
/// Typed configuration read from YAML. Each component has its own struct with a
/// `void visit(config::Visitor& v)` that names its fields:
///
///     struct OptimizerConfig {
///       std::string name = "adamw";
///       double lr = 1e-4;
///       void visit(config::Visitor& v) {
///         v.field("name", name, "optimizer", config::oneOf({"adamw", "sgd"}));
///         v.field("lr", lr, "peak learning rate", config::range(0, 10, /*loOpen=*/true));
///       }
///     };
///
/// One visit() serves reading (with validation), writing the resolved YAML and `--help-config`.
/// Reading is strict: unknown keys are errors with a "did you mean", wrong types and values out
/// of range name the key path, the value, the file and line, and what is allowed.
/// Documents compose: a top-level `include:` (or `base:`) names other YAML files (relative to the
/// including file) merged underneath; `--set a.b.c=value` overrides are applied last.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace biud::config {

/// What a value must satisfy. Build with the helpers below; combine with `&`.
struct Rule {
  std::optional<double> lo, hi;
  bool loOpen = false, hiOpen = false;
  std::vector<std::string> choices;  ///< allowed strings (empty = any)
  bool nonEmpty = false;             ///< strings and lists
  int size = -1;                     ///< exact list length (-1 = any)
  std::string describe() const;
};
Rule range(double lo, double hi, bool loOpen = false, bool hiOpen = false);
Rule atLeast(double lo);
Rule positive();  ///< > 0
Rule oneOf(std::vector<std::string> choices);
Rule nonEmpty();
Rule sizeIs(int n);
Rule operator&(Rule a, const Rule& b);

/// Walks a config struct. Implementations read YAML, write YAML, or list keys for --help.
class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void field(const char* key, bool& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, int& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::int64_t& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, double& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::string& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::vector<int>& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::vector<double>& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::vector<std::string>& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::map<std::string, double>& v, const char* doc, const Rule& r = {}) = 0;
  virtual void field(const char* key, std::map<std::string, std::string>& v, const char* doc, const Rule& r = {}) = 0;

  /// A nested struct with its own visit().
  template <class S>
  void section(const char* key, S& s, const char* doc) {
    enter(key, doc);
    s.visit(*this);
    leave();
  }
  /// Raise a ConfigError about `key` (relative to the current section) from a struct's visit(),
  /// e.g. for cross-field checks. Only the reading visitor raises; others ignore it.
  virtual void fail(const char* key, const std::string& message) {}
  /// True while reading (so visit() may run cross-field checks once values are in).
  virtual bool reading() const { return false; }

 protected:
  virtual void enter(const char* key, const char* doc) = 0;
  virtual void leave() = 0;
};

/// A YAML document after includes and overrides, with the origin ("file:line" or
/// "--set k=v") of every key, so that errors point at what the user wrote.
class Document {
 public:
  Document();
  ~Document();
  Document(Document&&) noexcept;
  Document& operator=(Document&&) noexcept;

  /// Load `path`, resolving `include:`/`base:` recursively (cycles are errors).
  static Document fromFile(const std::string& path);
  /// Parse YAML text (`name` is used in messages).
  static Document fromString(const std::string& yaml, const std::string& name = "<string>");
  /// Apply `a.b.c=value` (value parsed as YAML: numbers, true/false, [lists], strings).
  void applyOverride(const std::string& assignment);
  void applyOverrides(const std::vector<std::string>& assignments);
  /// Merge another document on top of this one (its values win).
  void mergeFrom(const Document& top);
  /// "file:line" (or "--set ...") where `keyPath` was written; empty if unknown.
  std::string origin(const std::string& keyPath) const;
  /// The document as YAML text.
  std::string str() const;
  /// Files read (the main file first, then includes).
  const std::vector<std::string>& files() const;

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// Fill a struct from a document (strict). `section` = "" reads the whole document;
/// otherwise only that top-level key (other top-level keys are then ignored).
void read(const Document& doc, const std::function<void(Visitor&)>& visit, const std::string& section = "");

template <class T>
T parse(const Document& doc, const std::string& section = "") {
  T t;
  read(
      doc, [&](Visitor& v) { t.visit(v); }, section);
  return t;
}

/// The struct as YAML text, with each field's doc as a trailing comment when `comments`.
std::string toYaml(const std::function<void(Visitor&)>& visit, bool comments = false);
template <class T>
std::string toYaml(T& t, bool comments = false) {
  return toYaml([&](Visitor& v) { t.visit(v); }, comments);
}

/// One line per key: `path  type  default  doc  [rule]` (for --help-config).
std::string describe(const std::function<void(Visitor&)>& visit);
template <class T>
std::string describe(T& t) {
  return describe([&](Visitor& v) { t.visit(v); });
}

/// Every key path of a struct, dotted ("optimizer.lr").
std::vector<std::string> keyPaths(const std::function<void(Visitor&)>& visit);

/// Levenshtein distance (used for "did you mean").
int editDistance(const std::string& a, const std::string& b);
/// The closest of `candidates` to `key`, or "" when none is plausibly meant.
std::string closest(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace biud::config
