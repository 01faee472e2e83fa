#include "biud/text/Entities.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include <nlohmann/json.hpp>

#include "YamlUtil.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::text {

namespace yu = yamlutil;

const char* toString(EntityKind k) {
  switch (k) {
    case EntityKind::Finding:
      return "finding";
    case EntityKind::Anatomy:
      return "anatomy";
    case EntityKind::Attribute:
      return "attribute";
    case EntityKind::Size:
      return "size";
  }
  return "?";
}

const char* toString(FindingStatus s) {
  switch (s) {
    case FindingStatus::NotMentioned:
      return "not_mentioned";
    case FindingStatus::Present:
      return "present";
    case FindingStatus::Absent:
      return "absent";
    case FindingStatus::Uncertain:
      return "uncertain";
  }
  return "?";
}

// --- lexicon ------------------------------------------------------------------------------------

Lexicon Lexicon::load(const std::string& path) {
  fs::requireFile(path, "lexicon (YAML)");
  return fromString(fs::readFile(path), path);
}

Lexicon Lexicon::fromString(const std::string& yaml, const std::string& file) {
  const YAML::Node root = yu::parse(yaml, file);
  BIUD_CHECK(root && root.IsMap(), ConfigError, "lexicon `{}` must be a YAML mapping with `findings:`", file);
  yu::checkKeys(root, {"name", "sections", "findings", "anatomy", "attributes", "cues"}, file, "the lexicon");
  Lexicon lex;
  if (root["name"]) lex.name = yu::str(root["name"], file, "`name`");
  lex.sections = yu::strList(root["sections"], file, "`sections`");
  const YAML::Node fs = root["findings"];
  BIUD_CHECK(fs && fs.IsSequence() && fs.size() > 0, ConfigError,
             "lexicon `{}`: `findings` must be a non-empty list of {{id, synonyms}}", file);
  std::set<std::string> ids;
  for (const auto& f : fs) {
    BIUD_CHECK(f.IsMap(), ConfigError, "{}: each finding must be a mapping with id and synonyms", yu::where(file, f));
    yu::checkKeys(f, {"id", "name", "synonyms", "absent_phrases"}, file, "a finding");
    LexiconFinding x;
    BIUD_CHECK(f["id"], ConfigError, "{}: finding without `id`", yu::where(file, f));
    x.id = yu::str(f["id"], file, "finding `id`");
    BIUD_CHECK(ids.insert(x.id).second, ConfigError, "{}: duplicate finding id `{}`", yu::where(file, f["id"]), x.id);
    x.name = f["name"] ? yu::str(f["name"], file, "finding `name`") : x.id;
    x.synonyms = yu::strList(f["synonyms"], file, "finding `synonyms`");
    BIUD_CHECK(!x.synonyms.empty(), ConfigError, "{}: finding `{}` has no synonyms: add at least one phrase",
               yu::where(file, f), x.id);
    x.absentPhrases = yu::strList(f["absent_phrases"], file, "finding `absent_phrases`");
    lex.findings.push_back(std::move(x));
  }
  if (const YAML::Node an = root["anatomy"]) {
    BIUD_CHECK(an.IsSequence(), ConfigError, "{}: `anatomy` must be a list of {{id, synonyms, laterality}}",
               yu::where(file, an));
    for (const auto& a : an) {
      BIUD_CHECK(a.IsMap(), ConfigError, "{}: each anatomy entry must be a mapping", yu::where(file, a));
      yu::checkKeys(a, {"id", "synonyms", "laterality"}, file, "an anatomy entry");
      LexiconAnatomy x;
      BIUD_CHECK(a["id"], ConfigError, "{}: anatomy entry without `id`", yu::where(file, a));
      x.id = yu::str(a["id"], file, "anatomy `id`");
      x.synonyms = yu::strList(a["synonyms"], file, "anatomy `synonyms`");
      if (x.synonyms.empty()) x.synonyms.push_back(x.id);
      if (a["laterality"]) x.laterality = yu::str(a["laterality"], file, "anatomy `laterality`");
      lex.anatomy.push_back(std::move(x));
    }
  }
  if (const YAML::Node at = root["attributes"]) {
    BIUD_CHECK(at.IsMap(), ConfigError, "{}: `attributes` must map attribute -> value -> phrases", yu::where(file, at));
    for (const auto& kv : at) {
      const std::string attr = kv.first.as<std::string>();
      BIUD_CHECK(kv.second.IsMap(), ConfigError, "{}: attribute `{}` must map values to phrase lists",
                 yu::where(file, kv.second), attr);
      for (const auto& v : kv.second)
        lex.attributes[attr][v.first.as<std::string>()] = yu::strList(v.second, file, "attribute phrases");
    }
  }
  if (const YAML::Node c = root["cues"]) {
    BIUD_CHECK(c.IsMap(), ConfigError, "{}: `cues` must be a mapping of cue lists", yu::where(file, c));
    yu::checkKeys(c, {"negation_pre", "negation_post", "uncertainty_pre", "uncertainty_post", "pseudo", "terminators"},
                  file, "`cues`");
    lex.hasCues = true;
    auto take = [&](const char* key, std::vector<std::string>& dst) {
      if (c[key]) dst = yu::strList(c[key], file, std::string("cues.") + key);
    };
    take("negation_pre", lex.cues.negationPre);
    take("negation_post", lex.cues.negationPost);
    take("uncertainty_pre", lex.cues.uncertaintyPre);
    take("uncertainty_post", lex.cues.uncertaintyPost);
    take("pseudo", lex.cues.pseudo);
    take("terminators", lex.cues.terminators);
  }
  return lex;
}

int Lexicon::findingIndex(const std::string& id) const {
  for (std::size_t i = 0; i < findings.size(); ++i)
    if (findings[i].id == id) return static_cast<int>(i);
  return -1;
}

// --- extraction ---------------------------------------------------------------------------------

namespace {
ReportParserOptions withCues(ReportParserOptions o, const Lexicon& lex) {
  if (lex.hasCues) o.cues = lex.cues;
  return o;
}

/// A number word: "4", "2.3", "12mm" (number with a glued unit), returns value and glued unit.
bool number(const std::string& w, double& value, std::string& unit) {
  std::size_t k = 0;
  while (k < w.size() && (std::isdigit(static_cast<unsigned char>(w[k])) || w[k] == '.' || w[k] == ',')) ++k;
  if (k == 0 || !std::isdigit(static_cast<unsigned char>(w[0]))) return false;
  std::string num = w.substr(0, k);
  std::replace(num.begin(), num.end(), ',', '.');
  value = std::strtod(num.c_str(), nullptr);
  unit = w.substr(k);
  return true;
}
double unitScale(const std::string& u) {
  if (u == "mm" || u == "millimeter" || u == "millimeters" || u == "millimetre" || u == "millimetres") return 1.0;
  if (u == "cm" || u == "centimeter" || u == "centimeters" || u == "centimetre" || u == "centimetres") return 10.0;
  return 0.0;
}
}  // namespace

EntityExtractor::EntityExtractor(Lexicon lexicon, ReportParserOptions parserOptions)
    : lex_(std::move(lexicon)), parser_(withCues(std::move(parserOptions), lex_)) {
  for (std::size_t i = 0; i < lex_.findings.size(); ++i) {
    for (const auto& s : lex_.findings[i].synonyms) findings_.addWithPlural(s, static_cast<int>(i));
    for (const auto& s : lex_.findings[i].absentPhrases) absent_.add(s, static_cast<int>(i));
  }
  for (std::size_t i = 0; i < lex_.anatomy.size(); ++i)
    for (const auto& s : lex_.anatomy[i].synonyms) anatomy_.addWithPlural(s, static_cast<int>(i));
  for (const auto& [attr, values] : lex_.attributes)
    for (const auto& [value, phrases] : values) {
      const int id = static_cast<int>(attrValues_.size());
      attrValues_.emplace_back(attr, value);
      for (const auto& p : phrases) attributes_.add(p, id);
    }
}

ReportLabels EntityExtractor::extract(std::string_view report) const {
  ReportLabels out;
  out.parsed = parser_.parse(report);
  const ParsedReport& r = out.parsed;
  out.status.assign(lex_.findings.size(), FindingStatus::NotMentioned);
  std::vector<int> rank(lex_.findings.size(), 0);  // 0 none, 1 absent, 2 uncertain, 3 present
  for (std::size_t si = 0; si < r.sentences.size(); ++si) {
    const ReportSentence& s = r.sentences[si];
    const std::string& section = r.sections[static_cast<std::size_t>(s.section)].name;
    if (!lex_.sections.empty() && std::find(lex_.sections.begin(), lex_.sections.end(), section) == lex_.sections.end())
      continue;
    const std::size_t first = out.entities.size();
    auto make = [&](EntityKind k, int wb, int we) {
      Entity e;
      e.kind = k;
      e.begin = r.words[static_cast<std::size_t>(wb)].begin;
      e.end = r.words[static_cast<std::size_t>(we - 1)].end;
      e.sentence = static_cast<int>(si);
      e.section = section;
      return e;
    };
    std::vector<std::pair<int, int>> findingWords;  // word ranges of findings in this sentence
    // Phrases that assert absence outright ("costophrenic angles are sharp").
    for (const auto& m : absent_.match(r.words, s.wordBegin, s.wordEnd))
      for (int f : *m.payload) {
        Entity e = make(EntityKind::Finding, m.wordBegin, m.wordEnd);
        e.id = lex_.findings[static_cast<std::size_t>(f)].id;
        e.assertion = Assertion::Absent;
        out.entities.push_back(e);
        findingWords.emplace_back(m.wordBegin, m.wordEnd);
      }
    const std::size_t absentCount = findingWords.size();
    for (const auto& m : findings_.match(r.words, s.wordBegin, s.wordEnd)) {
      bool overlaps = false;  // inside an absent phrase already counted
      for (std::size_t k = 0; k < absentCount; ++k)
        overlaps = overlaps || (m.wordBegin < findingWords[k].second && m.wordEnd > findingWords[k].first);
      if (overlaps) continue;
      const Assertion a = parser_.assertion(r, m.wordBegin, m.wordEnd);
      for (int f : *m.payload) {
        Entity e = make(EntityKind::Finding, m.wordBegin, m.wordEnd);
        e.id = lex_.findings[static_cast<std::size_t>(f)].id;
        e.assertion = a;
        out.entities.push_back(e);
        findingWords.emplace_back(m.wordBegin, m.wordEnd);
      }
    }
    // Attributes and anatomy, each linked to the nearest finding of the sentence.
    struct Attr {
      Entity e;
      int wb, we;
      std::string laterality;  // of anatomy
    };
    std::vector<Attr> attrs;
    for (const auto& m : anatomy_.match(r.words, s.wordBegin, s.wordEnd)) {
      const auto& an = lex_.anatomy[static_cast<std::size_t>(m.payload->front())];
      Entity e = make(EntityKind::Anatomy, m.wordBegin, m.wordEnd);
      e.id = an.id;
      attrs.push_back({e, m.wordBegin, m.wordEnd, an.laterality});
    }
    for (const auto& m : attributes_.match(r.words, s.wordBegin, s.wordEnd)) {
      const auto& [attr, value] = attrValues_[static_cast<std::size_t>(m.payload->front())];
      // Skip attribute words inside a finding or anatomy phrase ("right" of "right upper lobe").
      bool inside = false;
      for (const auto& a : attrs) inside = inside || (m.wordBegin >= a.wb && m.wordEnd <= a.we);
      for (const auto& fw : findingWords) inside = inside || (m.wordBegin >= fw.first && m.wordEnd <= fw.second);
      if (inside) continue;
      Entity e = make(EntityKind::Attribute, m.wordBegin, m.wordEnd);
      e.id = attr;
      e.value = value;
      attrs.push_back({e, m.wordBegin, m.wordEnd, ""});
    }
    // Sizes: NUMBER [x NUMBER]* UNIT, or a number with a glued unit ("12mm").
    for (int w = s.wordBegin; w < s.wordEnd; ++w) {
      double v = 0;
      std::string unit;
      if (r.words[static_cast<std::size_t>(w)].punct || !number(r.words[static_cast<std::size_t>(w)].norm, v, unit))
        continue;
      double best = v;
      int k = w;
      std::string u = unit;
      while (u.empty() && k + 2 < s.wordEnd &&
             (r.words[static_cast<std::size_t>(k + 1)].norm == "x" ||
              r.words[static_cast<std::size_t>(k + 1)].norm == "by")) {
        double v2 = 0;
        std::string u2;
        if (!number(r.words[static_cast<std::size_t>(k + 2)].norm, v2, u2)) break;
        best = std::max(best, v2);
        k += 2;
        u = u2;
      }
      if (u.empty() && k + 1 < s.wordEnd) {
        if (unitScale(r.words[static_cast<std::size_t>(k + 1)].norm) > 0)
          u = r.words[static_cast<std::size_t>(++k)].norm;
      }
      if (unitScale(u) <= 0) continue;
      Entity e = make(EntityKind::Size, w, k + 1);
      e.id = "size";
      e.value = r.text.substr(static_cast<std::size_t>(e.begin), static_cast<std::size_t>(e.end - e.begin));
      e.sizeMm = best * unitScale(u);
      attrs.push_back({e, w, k + 1, ""});
      w = k;
    }
    for (auto& a : attrs) {
      // Nearest finding; on a tie the following one (attributes usually precede their noun).
      int bestIdx = -1, bestDist = 1 << 30;
      for (std::size_t fi = first; fi < out.entities.size(); ++fi) {
        if (out.entities[fi].kind != EntityKind::Finding) continue;
        const auto& fw = findingWords[fi - first];
        const int d = a.we <= fw.first ? fw.first - a.we : (fw.second <= a.wb ? a.wb - fw.second + 1 : 0);
        if (d < bestDist) bestDist = d, bestIdx = static_cast<int>(fi);
      }
      if (bestIdx >= 0) {
        Entity& f = out.entities[static_cast<std::size_t>(bestIdx)];
        if (a.e.kind == EntityKind::Anatomy) {
          if (f.anatomy.empty()) f.anatomy = a.e.id;
          if (f.laterality.empty()) f.laterality = a.laterality;
        } else if (a.e.kind == EntityKind::Size) {
          f.sizeMm = std::max(f.sizeMm, a.e.sizeMm);
        } else if (a.e.id == "laterality") {
          f.laterality = a.e.value;  // an explicit word beats the anatomy's side
        } else if (a.e.id == "density") {
          if (f.density.empty()) f.density = a.e.value;
        } else if (a.e.id == "severity") {
          if (f.severity.empty()) f.severity = a.e.value;
        }
      }
      out.entities.push_back(a.e);
    }
    // Findings of one phrase with several ids share the linked attributes.
    for (std::size_t fi = first; fi < out.entities.size(); ++fi) {
      auto& f = out.entities[fi];
      if (f.kind != EntityKind::Finding) continue;
      const int rk = f.assertion == Assertion::Present ? 3 : f.assertion == Assertion::Uncertain ? 2 : 1;
      const int idx = lex_.findingIndex(f.id);
      rank[static_cast<std::size_t>(idx)] = std::max(rank[static_cast<std::size_t>(idx)], rk);
    }
  }
  for (std::size_t i = 0; i < rank.size(); ++i)
    out.status[i] = rank[i] == 3   ? FindingStatus::Present
                    : rank[i] == 2 ? FindingStatus::Uncertain
                    : rank[i] == 1 ? FindingStatus::Absent
                                   : FindingStatus::NotMentioned;
  std::stable_sort(out.entities.begin(), out.entities.end(),
                   [](const Entity& a, const Entity& b) { return a.begin < b.begin; });
  return out;
}

std::string EntityExtractor::toJson(const ReportLabels& labels) const {
  nlohmann::ordered_json j;
  nlohmann::ordered_json lab = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < lex_.findings.size(); ++i) lab[lex_.findings[i].id] = toString(labels.status[i]);
  j["labels"] = lab;
  nlohmann::ordered_json ents = nlohmann::ordered_json::array();
  for (const auto& e : labels.entities) {
    nlohmann::ordered_json x;
    x["kind"] = toString(e.kind);
    x["id"] = e.id;
    if (!e.value.empty()) x["value"] = e.value;
    x["begin"] = e.begin;
    x["end"] = e.end;
    x["text"] = labels.parsed.text.substr(static_cast<std::size_t>(e.begin), static_cast<std::size_t>(e.end - e.begin));
    x["section"] = e.section;
    x["sentence"] = e.sentence;
    if (e.kind == EntityKind::Finding) {
      x["assertion"] = toString(e.assertion);
      if (!e.laterality.empty()) x["laterality"] = e.laterality;
      if (!e.anatomy.empty()) x["anatomy"] = e.anatomy;
      if (!e.density.empty()) x["density"] = e.density;
      if (!e.severity.empty()) x["severity"] = e.severity;
      if (e.sizeMm > 0) x["size_mm"] = e.sizeMm;
    }
    ents.push_back(x);
  }
  j["entities"] = ents;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<int> entityTokenPositions(const Encoding& enc, const std::vector<Entity>& entities, bool findingsOnly) {
  std::set<int> pos;
  for (const auto& e : entities) {
    if (findingsOnly && e.kind != EntityKind::Finding) continue;
    for (int p : tokensForSpan(enc, e.begin, e.end)) pos.insert(p);
  }
  return {pos.begin(), pos.end()};
}

}  // namespace biud::text
