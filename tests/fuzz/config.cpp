/// Fuzzes the YAML config reader (src/core/Schema.cpp, src/config/Config.cpp): the input is a
/// config file, optionally followed by `--set` overrides, one per line after a line `%%set`.
/// When the first line is `#include`, the text after a line `%%file` becomes a second file
/// `inc.yaml` next to the main one (so `include:`/`base:` are exercised).
/// A config that loads must also survive its resolved YAML being read back (the run folder's
/// config.yaml is read again on resume).
#include "biud/config/Config.h"

#include <string>
#include <vector>

#include "FuzzUtil.h"
#include "biud/core/Schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::string_view yaml = fuzz::nextPart(rest, "\n%%set\n");
  std::vector<std::string> sets;
  while (!rest.empty() && sets.size() < 16) sets.emplace_back(fuzz::nextPart(rest, "\n"));
  const bool files = yaml.substr(0, 8) == "#include";
  fuzz::guard([&] {
    Config cfg;
    if (files) {
      std::string_view r = yaml;
      std::string_view mainText = fuzz::nextPart(r, "\n%%file\n");
      const auto& dir = fuzz::TempDir::get().fresh();
      fuzz::writeFile(dir / "main.yaml", mainText);
      fuzz::writeFile(dir / "inc.yaml", r);
      cfg = loadConfig((dir / "main.yaml").string(), sets);
    } else {
      config::Document doc = config::Document::fromString(std::string(yaml), "fuzz.yaml");
      doc.applyOverrides(sets);
      (void)doc.str();
      for (const auto& s : sets) (void)doc.origin(s.substr(0, s.find('=')));
      cfg = config::parse<Config>(doc);
    }
    const std::string resolved = config::toYaml(cfg, true);
    try {
      (void)config::parse<Config>(config::Document::fromString(resolved, "resolved.yaml"));
    } catch (const biud::Error& e) {
      std::fprintf(stderr, "FUZZ FINDING: a loaded config does not read back: %s\n%s\n", e.what(), resolved.c_str());
      std::abort();
    }
  });
  return 0;
}
