#include "biud/config/Config.h"

namespace biud {

Config loadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  config::Document doc = path.empty() ? config::Document() : config::Document::fromFile(path);
  doc.applyOverrides(overrides);
  return config::parse<Config>(doc);
}

}  // namespace biud
