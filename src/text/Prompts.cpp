#include "biud/text/Prompts.h"

#include <algorithm>
#include <set>

#include "YamlUtil.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::text {

namespace yu = yamlutil;

namespace {
std::string expand(const std::string& tpl, const std::string& term) {
  std::string out = tpl;
  const std::size_t at = out.find("{}");
  out.replace(at, 2, term);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}
void addUnique(std::vector<std::string>& dst, const std::string& s) {
  if (std::find(dst.begin(), dst.end(), s) == dst.end()) dst.push_back(s);
}
}  // namespace

PromptSet PromptSet::load(const std::string& path) {
  fs::requireFile(path, "prompt set (YAML)");
  return fromString(fs::readFile(path), path);
}

PromptSet PromptSet::fromString(const std::string& yaml, const std::string& file) {
  const YAML::Node root = yu::parse(yaml, file);
  BIUD_CHECK(root && root.IsMap(), ConfigError, "prompt set `{}` must be a YAML mapping with `findings:`", file);
  yu::checkKeys(root, {"name", "templates", "findings"}, file, "the prompt set");
  PromptSet ps;
  if (root["name"]) ps.name = yu::str(root["name"], file, "`name`");
  std::vector<std::string> tplPos, tplNeg;
  if (const YAML::Node t = root["templates"]) {
    BIUD_CHECK(t.IsMap(), ConfigError, "{}: `templates` must have `positive` and `negative` lists", yu::where(file, t));
    yu::checkKeys(t, {"positive", "negative"}, file, "`templates`");
    tplPos = yu::strList(t["positive"], file, "templates.positive");
    tplNeg = yu::strList(t["negative"], file, "templates.negative");
    for (const auto* list : {&tplPos, &tplNeg})
      for (const auto& s : *list)
        BIUD_CHECK(s.find("{}") != std::string::npos, ConfigError, "{}: template `{}` has no `{{}}` where the finding term goes",
                   yu::where(file, t), s);
  }
  const YAML::Node fs = root["findings"];
  BIUD_CHECK(fs && fs.IsSequence() && fs.size() > 0, ConfigError, "prompt set `{}`: `findings` must be a non-empty list", file);
  std::set<std::string> seen;
  for (const auto& f : fs) {
    BIUD_CHECK(f.IsMap() && f["id"], ConfigError, "{}: each finding needs an `id`", yu::where(file, f));
    yu::checkKeys(f, {"id", "name", "terms", "positive", "negative"}, file, "a finding");
    FindingPrompts fp;
    fp.id = yu::str(f["id"], file, "finding `id`");
    BIUD_CHECK(seen.insert(fp.id).second, ConfigError, "{}: duplicate finding id `{}`", yu::where(file, f["id"]), fp.id);
    fp.name = f["name"] ? yu::str(f["name"], file, "finding `name`") : fp.id;
    const auto terms = yu::strList(f["terms"], file, "finding `terms`");
    for (const auto& s : yu::strList(f["positive"], file, "finding `positive`")) addUnique(fp.positive, s);
    for (const auto& s : yu::strList(f["negative"], file, "finding `negative`")) addUnique(fp.negative, s);
    for (const auto& term : terms) {
      for (const auto& t : tplPos) addUnique(fp.positive, expand(t, term));
      for (const auto& t : tplNeg) addUnique(fp.negative, expand(t, term));
    }
    BIUD_CHECK(!fp.positive.empty() && !fp.negative.empty(), ConfigError,
               "{}: finding `{}` needs at least one positive and one negative prompt (give `terms` with templates, or lists)",
               yu::where(file, f), fp.id);
    ps.findings.push_back(std::move(fp));
  }
  return ps;
}

const FindingPrompts& PromptSet::at(const std::string& id) const {
  for (const auto& f : findings)
    if (f.id == id) return f;
  std::string known;
  for (const auto& f : findings) known += (known.empty() ? "" : ", ") + f.id;
  BIUD_THROW(ConfigError, "prompt set `{}` has no finding `{}` (known: {})", name, id, known);
}

std::vector<std::string> PromptSet::ids() const {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.id);
  return out;
}

}  // namespace biud::text
