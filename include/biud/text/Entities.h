#pragma once
/// \file Entities.h
/// Lexicon-driven entity extraction from radiology reports: findings (with synonyms), anatomy,
/// attributes (laterality, density, severity, size), each finding mention asserted present,
/// absent or uncertain by NegEx-style cues (Report.h), and per report one status per finding.
///
/// Lexicon YAML (configs/lexicon/*.yaml):
///
///     name: synthetic
///     sections: [findings, impression, text]   # where to look (default: all)
///     findings:
///       - id: pleural_effusion
///         name: Pleural effusion
///         synonyms: [pleural effusion, hydrothorax, "pleural or pericardial effusion"]
///         absent_phrases: [costophrenic angles are sharp]   # mentions that mean "absent"
///     anatomy:
///       - {id: right_upper_lobe, synonyms: [right upper lobe, rul], laterality: right}
///     attributes:
///       laterality: {right: [right, right-sided], left: [left], bilateral: [bilateral, both]}
///       density: {ground_glass: [ground glass, ground-glass], solid: [solid]}
///     cues:                      # optional: replace the default cue lists (Report.h CueLists)
///       negation_pre: [no, without, ...]
///
/// Plurals of synonyms are added automatically (nodule -> nodules, opacity -> opacities);
/// '-' and '/' match spaces ("ground-glass" = "ground glass"). Offsets are UTF-8 bytes.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "biud/text/Report.h"
#include "biud/text/Tokenizer.h"

namespace biud::text {

struct LexiconFinding {
  std::string id;
  std::string name;  ///< display / dataset label name (e.g. the CT-RATE column)
  std::vector<std::string> synonyms;
  std::vector<std::string> absentPhrases;
};

struct LexiconAnatomy {
  std::string id;
  std::vector<std::string> synonyms;
  std::string laterality;  ///< "" when the structure has none
};

struct Lexicon {
  std::string name;
  std::vector<std::string> sections;  ///< sections searched; empty = all
  std::vector<LexiconFinding> findings;
  std::vector<LexiconAnatomy> anatomy;
  /// attribute -> value -> phrases (laterality, density, severity, ...).
  std::map<std::string, std::map<std::string, std::vector<std::string>>> attributes;
  bool hasCues = false;
  CueLists cues;

  /// Load and validate a lexicon file. ConfigError naming the file, the entry and the fix on
  /// unknown keys, missing ids, duplicate ids or empty synonym lists.
  static Lexicon load(const std::string& path);
  static Lexicon fromString(const std::string& yaml, const std::string& name = "<string>");
  /// Index of a finding id, -1 when absent.
  int findingIndex(const std::string& id) const;
};

enum class EntityKind { Finding, Anatomy, Attribute, Size };
const char* toString(EntityKind k);

/// One entity mention.
struct Entity {
  EntityKind kind = EntityKind::Finding;
  std::string id;          ///< finding/anatomy id, or the attribute name ("laterality", "size")
  std::string value;       ///< attribute value ("left", "ground_glass"); size as written ("2.3 x 1.8 cm")
  int begin = 0, end = 0;  ///< bytes in the report
  int sentence = -1;
  std::string section;
  // Findings only:
  Assertion assertion = Assertion::Present;
  std::string laterality, anatomy, density, severity;  ///< linked attributes ("" = none)
  double sizeMm = 0;                                   ///< largest linked size in mm (0 = none)
};

/// Per-finding outcome for a report.
enum class FindingStatus { NotMentioned = 0, Present = 1, Absent = 2, Uncertain = 3 };
const char* toString(FindingStatus s);

struct ReportLabels {
  std::vector<FindingStatus> status;  ///< one per Lexicon::findings, in lexicon order
  std::vector<Entity> entities;       ///< in text order
  ParsedReport parsed;
};

class EntityExtractor {
 public:
  explicit EntityExtractor(Lexicon lexicon, ReportParserOptions parserOptions = {});
  /// Status per finding: present if any mention is affirmed, else uncertain if any is uncertain,
  /// else absent if any is negated, else not mentioned.
  ReportLabels extract(std::string_view report) const;
  const Lexicon& lexicon() const { return lex_; }
  /// One JSON object: {"labels": {id: status}, "entities": [...]}.
  std::string toJson(const ReportLabels& labels) const;

 private:
  Lexicon lex_;
  ReportParser parser_;
  PhraseMatcher findings_, absent_, anatomy_, attributes_;
  std::vector<std::pair<std::string, std::string>> attrValues_;  ///< payload -> (attribute, value)
};

/// Token positions of entity mentions in an encoding of the same text (for entity-focused
/// masking): sorted, unique. `findingsOnly` skips anatomy/attribute/size entities.
std::vector<int> entityTokenPositions(const Encoding& enc, const std::vector<Entity>& entities,
                                      bool findingsOnly = false);

}  // namespace biud::text
