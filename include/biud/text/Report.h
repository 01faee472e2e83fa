#pragma once
/// \file Report.h
/// Radiology report parsing: sections (findings, impression, ... with configurable headings),
/// sentences, words, and NegEx-style negation / uncertainty scope.
///
///     biud::text::ReportParser parser;                       // default headings and cues
///     biud::text::ParsedReport r = parser.parse(reportText);
///     for (const auto& s : r.sentences) ...                  // byte ranges into reportText
///     biud::text::Assertion a = parser.assertion(r, wordBegin, wordEnd);
///
/// All positions are UTF-8 byte offsets into the original text.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace biud::text {

/// A word or punctuation token of a report. Words are runs of letters, digits and non-ASCII
/// characters (a '.' between digits and an apostrophe between letters stay inside);
/// '-' and '/' only separate words (so "ground-glass" matches "ground glass").
struct ReportWord {
  std::string norm;  ///< ASCII-lower-cased text
  int begin = 0, end = 0;
  bool punct = false;
};

/// Split text into words with byte offsets (`base` is added to every offset).
std::vector<ReportWord> splitWords(std::string_view text, int base = 0);

/// Matches multi-word phrases against word sequences, leftmost-longest, non-overlapping.
/// Each phrase carries a list of payloads (e.g. the findings it names).
class PhraseMatcher {
 public:
  struct Match {
    int wordBegin = 0, wordEnd = 0;  ///< [begin, end) into the word list
    const std::vector<int>* payload = nullptr;
  };
  /// Add a phrase (split like text); a phrase added twice accumulates payloads.
  void add(std::string_view phrase, int payload);
  /// Also add the usual English plural of the phrase's last word (+s, +es, y -> ies).
  void addWithPlural(std::string_view phrase, int payload);
  std::vector<Match> match(const std::vector<ReportWord>& words, int from = 0, int to = -1) const;
  std::size_t size() const { return phrases_.size(); }

 private:
  struct Phrase {
    std::vector<std::string> words;
    std::vector<int> payload;
  };
  std::vector<Phrase> phrases_;
  std::map<std::string, std::vector<int>> byFirst_;  ///< first word -> phrases, longest first
};

/// Cue lists for negation and uncertainty (NegEx-style).
struct CueLists {
  std::vector<std::string> negationPre = {"no",
                                          "not",
                                          "without",
                                          "no evidence of",
                                          "no evidence for",
                                          "no sign of",
                                          "no signs of",
                                          "negative for",
                                          "free of",
                                          "resolved",
                                          "resolution of",
                                          "absence of",
                                          "absent",
                                          "there is no",
                                          "there are no",
                                          "no definite",
                                          "no definitive",
                                          "no convincing",
                                          "no suspicious",
                                          "no significant",
                                          "no acute",
                                          "neither",
                                          "nor",
                                          "rules out",
                                          "ruled out for",
                                          "never"};
  std::vector<std::string> negationPost = {"is absent",
                                           "are absent",
                                           "not seen",
                                           "not identified",
                                           "not visualized",
                                           "not visualised",
                                           "not present",
                                           "not detected",
                                           "not demonstrated",
                                           "not observed",
                                           "not appreciated",
                                           "ruled out",
                                           "has resolved",
                                           "have resolved",
                                           "resolved",
                                           "no longer seen",
                                           "no longer present",
                                           "no longer visualized",
                                           "no longer identified",
                                           "is excluded",
                                           "are excluded",
                                           "was not detected",
                                           "were not detected",
                                           "disappeared",
                                           "has disappeared"};
  std::vector<std::string> uncertaintyPre = {"possible",
                                             "possibly",
                                             "probable",
                                             "probably",
                                             "may represent",
                                             "might represent",
                                             "could represent",
                                             "may be",
                                             "suspicious for",
                                             "suspicious of",
                                             "suspected",
                                             "suspect",
                                             "questionable",
                                             "question of",
                                             "cannot exclude",
                                             "can not exclude",
                                             "cannot rule out",
                                             "concerning for",
                                             "suggestive of",
                                             "suggesting",
                                             "likely",
                                             "equivocal",
                                             "differential diagnosis includes",
                                             "differential includes",
                                             "versus",
                                             "vs",
                                             "presumed",
                                             "presumably",
                                             "worrisome for",
                                             "compatible with possible",
                                             "rule out",
                                             "to exclude",
                                             "indeterminate"};
  std::vector<std::string> uncertaintyPost = {
      "cannot be excluded",    "can not be excluded", "cannot be ruled out", "can not be ruled out", "not excluded",
      "not ruled out",         "is not excluded",     "is possible",         "is suspected",         "is questionable",
      "are possible",          "are suspected",       "is likely",           "are likely",           "is probable",
      "could not be excluded", "not be excluded",     "questionable"};
  /// Phrases that contain a cue but do not negate ("no change", "not only").
  std::vector<std::string> pseudo = {"no change",
                                     "no significant change",
                                     "no interval change",
                                     "no significant interval change",
                                     "not significantly changed",
                                     "no increase",
                                     "no decrease",
                                     "not only",
                                     "without change",
                                     "without significant change",
                                     "gram negative",
                                     "no further",
                                     "not necessarily",
                                     "no longer" /* only as part of the post cues above */};
  /// Scope ends at these (and at ';' and the end of the sentence).
  std::vector<std::string> terminators = {
      "but",          "however",    "although",   "though",       "which",     "with the exception of",
      "except",       "except for", "aside from", "apart from",   "whereas",   "while",
      "nevertheless", "yet",        "otherwise",  "secondary to", "as well as"};
};

/// Whether a mention asserts a finding.
enum class Assertion { Present, Absent, Uncertain };
const char* toString(Assertion a);

struct ReportParserOptions {
  /// Section name -> headings that open it (matched case-insensitively at the start of a line,
  /// followed by ':' or the end of the line).
  std::map<std::string, std::vector<std::string>> headings = {
      {"findings", {"findings", "finding", "description", "report", "body"}},
      {"impression",
       {"impression", "impressions", "conclusion", "conclusions", "summary", "assessment", "opinion", "diagnosis"}},
      {"history",
       {"history", "clinical history", "indication", "indications", "clinical information", "clinical indication",
        "reason for exam"}},
      {"technique", {"technique", "protocol", "examination", "exam"}},
      {"comparison", {"comparison", "comparisons", "prior"}},
  };
  CueLists cues;
  /// Words between a post-cue and the mention it follows (NegEx uses about 5).
  int postWindow = 6;
  /// Words between a pre-cue and the mention it precedes; 0 = up to the sentence end or a terminator.
  int preWindow = 0;
};

struct ReportSection {
  std::string name;        ///< key of ReportParserOptions::headings, or "text" before any heading
  int begin = 0, end = 0;  ///< body (after the heading)
};

struct ReportSentence {
  int begin = 0, end = 0;
  int section = -1;                ///< index into ParsedReport::sections
  int wordBegin = 0, wordEnd = 0;  ///< range in ParsedReport::words
};

/// A negation/uncertainty cue found in a sentence.
struct ReportCue {
  int wordBegin = 0, wordEnd = 0;
  unsigned kinds = 0;  ///< ReportParser::k* bits
};

struct ParsedReport {
  std::string text;
  std::vector<ReportSection> sections;
  std::vector<ReportSentence> sentences;
  std::vector<ReportWord> words;  ///< all words, sentence by sentence
  std::vector<ReportCue> cues;    ///< all cues, in order
  /// Index of the sentence holding a word.
  int sentenceOfWord(int word) const;
  /// Text of the first section called `name` ("" when absent).
  std::string section(const std::string& name) const;
};

class ReportParser {
 public:
  static constexpr unsigned kNegPre = 1, kNegPost = 2, kUncPre = 4, kUncPost = 8, kTerm = 16, kPseudo = 32;
  explicit ReportParser(ReportParserOptions opt = {});
  ParsedReport parse(std::string_view text) const;
  /// Assertion of the mention spanning words [wordBegin, wordEnd) of `r`.
  Assertion assertion(const ParsedReport& r, int wordBegin, int wordEnd) const;
  const ReportParserOptions& options() const { return opt_; }

 private:
  ReportParserOptions opt_;
  PhraseMatcher cues_;
};

/// Sentence ranges of a text (used by parse(); exposed for tests): splits after '.', '!', '?'
/// followed by a space or the end (not in decimals like "2.5" or abbreviations like "e.g.",
/// "approx.", "vs."), at blank lines and before list items ("1.", "2)", "-", "*").
/// Bare list numbers ("1.") are kept with the sentence they start.
std::vector<std::pair<int, int>> splitSentences(std::string_view text, int base = 0);

}  // namespace biud::text
