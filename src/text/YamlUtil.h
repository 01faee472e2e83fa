#pragma once
// Strict YAML reading helpers shared by the lexicon and prompt loaders (src/text only).
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "biud/core/Error.h"
#include "biud/core/Schema.h"

namespace biud::text::yamlutil {

inline std::string where(const std::string& file, const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? file + ":" + std::to_string(m.line + 1) : file;
}

inline YAML::Node parse(const std::string& text, const std::string& file) {
  try {
    YAML::Node n = YAML::Load(text);
    return n;
  } catch (const YAML::Exception& e) {
    BIUD_THROW(ConfigError, "`{}` is not valid YAML: {}", file, e.what());
  }
}

/// ConfigError for keys of map `n` not in `allowed`, with a "did you mean".
inline void checkKeys(const YAML::Node& n, const std::vector<std::string>& allowed, const std::string& file,
                      const std::string& what) {
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    const std::string guess = config::closest(key, allowed);
    BIUD_THROW(ConfigError, "{}: unknown key `{}` in {}{}", where(file, kv.first), key, what,
               guess.empty() ? fmt::format(" (allowed: {})", fmt::join(allowed, ", "))
                             : fmt::format(" (did you mean `{}`?)", guess));
  }
}

inline std::string str(const YAML::Node& n, const std::string& file, const std::string& what) {
  BIUD_CHECK(n && n.IsScalar(), ConfigError, "{}: {} must be a string", where(file, n), what);
  return n.as<std::string>();
}

inline std::vector<std::string> strList(const YAML::Node& n, const std::string& file, const std::string& what) {
  std::vector<std::string> out;
  if (!n || n.IsNull()) return out;
  if (n.IsScalar()) return {n.as<std::string>()};
  BIUD_CHECK(n.IsSequence(), ConfigError, "{}: {} must be a list of strings", where(file, n), what);
  for (const auto& x : n) out.push_back(str(x, file, what));
  return out;
}

}  // namespace biud::text::yamlutil
