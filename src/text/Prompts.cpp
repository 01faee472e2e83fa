#include "biud/text/Prompts.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

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

/// The non-empty `findings:` list of a prompt set.
YAML::Node findingList(const YAML::Node& root, const std::string& file) {
  const YAML::Node fs = root["findings"];
  BIUD_CHECK(fs && fs.IsSequence() && fs.size() > 0, ConfigError,
             "prompt set `{}`: `findings` must be a non-empty list", file);
  return fs;
}

/// Id and display name of one `findings:` entry, after checking its keys and that the id is new.
std::pair<std::string, std::string> findingIdName(const YAML::Node& f, const std::string& file,
                                                  std::set<std::string>& seen, const std::vector<std::string>& keys,
                                                  const std::string& what) {
  BIUD_CHECK(f.IsMap() && f["id"], ConfigError, "{}: each finding needs an `id`", yu::where(file, f));
  yu::checkKeys(f, keys, file, what);
  auto id = yu::str(f["id"], file, "finding `id`");
  BIUD_CHECK(seen.insert(id).second, ConfigError, "{}: duplicate finding id `{}`", yu::where(file, f["id"]), id);
  auto name = f["name"] ? yu::str(f["name"], file, "finding `name`") : id;
  return {id, name};
}

/// `report:` mode: every prompt is a whole report. The negative prompts of every finding are the
/// normal report (prefix, each finding's `normal` sentence, suffix) with each normal impression;
/// the positive prompts of a finding are the same report with its `normal` sentence replaced by
/// each `positive` sentence, with each of its `impression` sentences. The text encoder saw whole
/// reports in training, so a prompt pair that differs in one finding only isolates that finding.
PromptSet reportForm(const YAML::Node& root, const std::string& file) {
  BIUD_CHECK(!root["templates"], ConfigError,
             "{}: `templates` and `report` exclude each other (report prompts are whole reports)",
             yu::where(file, root["templates"]));
  const YAML::Node r = root["report"];
  BIUD_CHECK(r.IsMap(), ConfigError,
             "{}: `report` must be a mapping with `impression` (and optional `prefix`, `suffix`)", yu::where(file, r));
  yu::checkKeys(r, {"prefix", "suffix", "impression"}, file, "`report`");
  const std::string prefix = r["prefix"] ? yu::str(r["prefix"], file, "report.prefix") : "";
  const std::string suffix = r["suffix"] ? yu::str(r["suffix"], file, "report.suffix") : "";
  const auto normalImpressions = yu::strList(r["impression"], file, "report.impression");
  BIUD_CHECK(!normalImpressions.empty(), ConfigError, "{}: `report.impression` needs at least one normal impression",
             yu::where(file, r));
  const YAML::Node fs = findingList(root, file);
  struct Raw {
    std::string id, name, normal;
    std::vector<std::string> positive, impression;
  };
  std::vector<Raw> raw;
  std::set<std::string> seen;
  for (const auto& f : fs) {
    Raw x;
    std::tie(x.id, x.name) = findingIdName(f, file, seen, {"id", "name", "normal", "positive", "impression"},
                                           "a finding of a report-form prompt set");
    BIUD_CHECK(f["normal"], ConfigError, "{}: finding `{}` needs `normal`: its sentence in a normal report",
               yu::where(file, f), x.id);
    x.normal = yu::str(f["normal"], file, "finding `normal`");
    x.positive = yu::strList(f["positive"], file, "finding `positive`");
    BIUD_CHECK(!x.positive.empty(), ConfigError, "{}: finding `{}` needs at least one `positive` sentence",
               yu::where(file, f), x.id);
    x.impression = f["impression"] ? yu::strList(f["impression"], file, "finding `impression`") : x.positive;
    raw.push_back(std::move(x));
  }
  auto compose = [&](const Raw* with, const std::string& sentence, const std::string& impression) {
    std::string out = prefix;
    auto add = [&out](const std::string& s) {
      if (s.empty()) return;
      if (!out.empty()) out += ' ';
      out += s;
    };
    for (const auto& x : raw) add(&x == with ? sentence : x.normal);
    add(suffix);
    add(impression);
    return out;
  };
  PromptSet ps;
  if (root["name"]) ps.name = yu::str(root["name"], file, "`name`");
  for (const auto& x : raw) {
    FindingPrompts fp;
    fp.id = x.id;
    fp.name = x.name;
    for (const auto& p : x.positive)
      for (const auto& imp : x.impression) addUnique(fp.positive, compose(&x, p, imp));
    for (const auto& imp : normalImpressions) addUnique(fp.negative, compose(nullptr, "", imp));
    ps.findings.push_back(std::move(fp));
  }
  return ps;
}

}  // namespace

std::string labelKey(const std::string& name) {
  std::string out;
  bool gap = false;
  for (const char c : name) {
    const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
      if (gap && !out.empty()) out += '_';
      out += l;
      gap = false;
    } else {
      gap = true;
    }
  }
  return out;
}

PromptSet PromptSet::load(const std::string& path) {
  fs::requireFile(path, "prompt set (YAML)");
  return fromString(fs::readFile(path), path);
}

PromptSet PromptSet::fromString(const std::string& yaml, const std::string& file) {
  const YAML::Node root = yu::parse(yaml, file);
  BIUD_CHECK(root && root.IsMap(), ConfigError, "prompt set `{}` must be a YAML mapping with `findings:`", file);
  yu::checkKeys(root, {"name", "templates", "report", "findings"}, file, "the prompt set");
  if (root["report"]) {
    auto ps = reportForm(root, file);
    ps.file = file;
    return ps;
  }
  PromptSet ps;
  ps.file = file;
  if (root["name"]) ps.name = yu::str(root["name"], file, "`name`");
  std::vector<std::string> tplPos, tplNeg;
  if (const YAML::Node t = root["templates"]) {
    BIUD_CHECK(t.IsMap(), ConfigError, "{}: `templates` must have `positive` and `negative` lists", yu::where(file, t));
    yu::checkKeys(t, {"positive", "negative"}, file, "`templates`");
    tplPos = yu::strList(t["positive"], file, "templates.positive");
    tplNeg = yu::strList(t["negative"], file, "templates.negative");
    for (const auto* list : {&tplPos, &tplNeg})
      for (const auto& s : *list)
        BIUD_CHECK(s.find("{}") != std::string::npos, ConfigError,
                   "{}: template `{}` has no `{{}}` where the finding term goes", yu::where(file, t), s);
  }
  std::set<std::string> seen;
  for (const auto& f : findingList(root, file)) {
    FindingPrompts fp;
    std::tie(fp.id, fp.name) =
        findingIdName(f, file, seen, {"id", "name", "terms", "positive", "negative"}, "a finding");
    const auto terms = yu::strList(f["terms"], file, "finding `terms`");
    for (const auto& s : yu::strList(f["positive"], file, "finding `positive`")) addUnique(fp.positive, s);
    for (const auto& s : yu::strList(f["negative"], file, "finding `negative`")) addUnique(fp.negative, s);
    for (const auto& term : terms) {
      for (const auto& t : tplPos) addUnique(fp.positive, expand(t, term));
      for (const auto& t : tplNeg) addUnique(fp.negative, expand(t, term));
    }
    BIUD_CHECK(
        !fp.positive.empty() && !fp.negative.empty(), ConfigError,
        "{}: finding `{}` needs at least one positive and one negative prompt (give `terms` with templates, or lists)",
        yu::where(file, f), fp.id);
    ps.findings.push_back(std::move(fp));
  }
  return ps;
}

const FindingPrompts* PromptSet::match(const std::string& label) const {
  // Exact id, exact name, then the normalised forms (in that order, so an exact hit wins).
  for (const auto& f : findings)
    if (f.id == label) return &f;
  for (const auto& f : findings)
    if (f.name == label) return &f;
  const std::string key = labelKey(label);
  if (key.empty()) return nullptr;
  for (const auto& f : findings)
    if (labelKey(f.id) == key) return &f;
  for (const auto& f : findings)
    if (labelKey(f.name) == key) return &f;
  return nullptr;
}

const FindingPrompts& PromptSet::at(const std::string& id) const {
  if (const auto* f = match(id)) return *f;
  BIUD_THROW(ConfigError, "prompt set `{}` has no finding `{}` (known: {})", name, id, describe());
}

std::string PromptSet::describe() const {
  std::string out;
  for (const auto& f : findings) {
    out += (out.empty() ? "" : ", ") + f.id;
    if (f.name != f.id) out += " (" + f.name + ")";
  }
  return out;
}

LabelMatch PromptSet::matchLabels(const std::vector<std::string>& labelNames, const std::string& labelsFrom) const {
  LabelMatch out;
  for (std::size_t j = 0; j < labelNames.size(); ++j) {
    if (match(labelNames[j])) {
      out.findings.push_back(labelNames[j]);
      out.columns.push_back(static_cast<std::int64_t>(j));
    } else {
      out.unmatched.push_back(labelNames[j]);
    }
  }
  if (out.findings.empty()) {
    std::string cols;
    for (const auto& l : labelNames) cols += (cols.empty() ? "`" : ", `") + l + "`";
    BIUD_THROW(ConfigError,
               "no label column of {} has prompts in prompt set `{}`: label columns [{}]; prompt findings, id (name): "
               "[{}]. A column "
               "matches a finding whose `id` or `name` equals it (case, spaces and punctuation ignored); rename the "
               "columns or give "
               "the findings those names",
               labelsFrom, file.empty() ? name : file, labelNames.empty() ? "none" : cols, describe());
  }
  return out;
}

std::vector<std::string> PromptSet::ids() const {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.id);
  return out;
}

}  // namespace biud::text
