#include "biud/core/RunList.h"

#include <filesystem>
#include <map>
#include <system_error>

#include "biud/core/Error.h"

namespace biud::app {

namespace stdfs = std::filesystem;

namespace {

/// Rule 3: the last component of `path` (trailing separators ignored); a regular file loses its
/// extension.
std::string defaultName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const stdfs::path fp(p);
  std::error_code ec;
  if (stdfs::is_regular_file(fp, ec)) return fp.stem().string();
  return fp.filename().string();
}

}  // namespace

NamedPath parseNamedPath(const std::string& value, const std::string& flag) {
  BIUD_CHECK(!value.empty(), ConfigError, "{}: empty value; give a PATH or NAME=PATH", flag);
  std::error_code ec;
  const auto eq = value.find('=');
  if (eq == std::string::npos || stdfs::exists(value, ec)) {
    NamedPath np{defaultName(value), value};
    BIUD_CHECK(!np.name.empty(), ConfigError, "{} `{}`: no name can be taken from this path; give NAME={}", flag, value,
               value);
    return np;
  }
  NamedPath np{value.substr(0, eq), value.substr(eq + 1)};
  BIUD_CHECK(!np.name.empty(), ConfigError, "{} `{}`: the NAME before `=` is empty; give NAME=PATH (or the path alone)",
             flag, value);
  BIUD_CHECK(!np.path.empty(), ConfigError, "{} `{}`: the PATH after `=` is empty; give NAME=PATH", flag, value);
  return np;
}

std::vector<NamedPath> parseRunList(const std::vector<std::string>& values, const std::string& flag) {
  std::vector<NamedPath> out;
  std::map<std::string, std::string> seen;  // name -> value that gave it
  for (const auto& v : values) {
    out.push_back(parseNamedPath(v, flag));
    const auto [it, fresh] = seen.emplace(out.back().name, v);
    BIUD_CHECK(fresh, ConfigError, "{}: `{}` and `{}` are both named `{}`; give each a distinct NAME=PATH", flag,
               it->second, v, out.back().name);
  }
  return out;
}

}  // namespace biud::app
