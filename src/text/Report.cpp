#include "biud/text/Report.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace biud::text {

namespace {

bool isAsciiAlnum(unsigned char c) { return std::isalnum(c) != 0; }
bool isWordByte(unsigned char c) { return c >= 0x80 || isAsciiAlnum(c); }
bool isSpaceByte(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

std::vector<ReportWord> splitWords(std::string_view text, int base) {
  std::vector<ReportWord> words;
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto at = [&](std::size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(text[k]) : 0; };
  while (i < n) {
    const unsigned char c = at(i);
    if (isSpaceByte(c) || c == '-' || c == '/') {
      ++i;
      continue;
    }
    if (isWordByte(c)) {
      const std::size_t b = i;
      ReportWord w;
      while (i < n) {
        const unsigned char d = at(i);
        const bool inner = (d == '.' || d == ',') && i > b && std::isdigit(at(i - 1)) && std::isdigit(at(i + 1));
        const bool apos = d == '\'' && i > b && std::isalpha(at(i - 1)) && std::isalpha(at(i + 1));
        if (!isWordByte(d) && !inner && !apos) break;
        w.norm += lower(static_cast<char>(d));
        ++i;
      }
      w.begin = base + static_cast<int>(b);
      w.end = base + static_cast<int>(i);
      words.push_back(std::move(w));
      continue;
    }
    ReportWord p;
    p.norm = std::string(1, static_cast<char>(c));
    p.begin = base + static_cast<int>(i);
    p.end = p.begin + 1;
    p.punct = true;
    words.push_back(std::move(p));
    ++i;
  }
  return words;
}

// --- PhraseMatcher ------------------------------------------------------------------------------

void PhraseMatcher::add(std::string_view phrase, int payload) {
  std::vector<std::string> ws;
  for (auto& w : splitWords(phrase))
    if (!w.punct) ws.push_back(std::move(w.norm));
  if (ws.empty()) return;
  for (auto& p : phrases_)
    if (p.words == ws) {
      if (std::find(p.payload.begin(), p.payload.end(), payload) == p.payload.end()) p.payload.push_back(payload);
      return;
    }
  const int idx = static_cast<int>(phrases_.size());
  phrases_.push_back({ws, {payload}});
  auto& list = byFirst_[ws[0]];
  list.push_back(idx);
  std::stable_sort(list.begin(), list.end(),
                   [&](int a, int b) { return phrases_[a].words.size() > phrases_[b].words.size(); });
}

void PhraseMatcher::addWithPlural(std::string_view phrase, int payload) {
  add(phrase, payload);
  std::string p(phrase);
  while (!p.empty() && !isAsciiAlnum(static_cast<unsigned char>(p.back()))) p.pop_back();
  if (p.size() < 3) return;
  const char last = lower(p.back());
  const char prev = lower(p[p.size() - 2]);
  std::string plural;
  if (last == 'y' && std::string("aeiou").find(prev) == std::string::npos)
    plural = p.substr(0, p.size() - 1) + "ies";
  else if (last == 's' || last == 'x' || last == 'z' || (last == 'h' && (prev == 'c' || prev == 's')))
    plural = p + "es";
  else
    plural = p + "s";
  add(plural, payload);
}

std::vector<PhraseMatcher::Match> PhraseMatcher::match(const std::vector<ReportWord>& words, int from, int to) const {
  std::vector<Match> out;
  if (to < 0 || to > static_cast<int>(words.size())) to = static_cast<int>(words.size());
  for (int i = from; i < to;) {
    const ReportWord& w = words[static_cast<std::size_t>(i)];
    const auto it = w.punct ? byFirst_.end() : byFirst_.find(w.norm);
    int matched = 0;
    if (it != byFirst_.end()) {
      for (int idx : it->second) {
        const Phrase& p = phrases_[static_cast<std::size_t>(idx)];
        const int len = static_cast<int>(p.words.size());
        if (i + len > to) continue;
        bool ok = true;
        for (int k = 1; k < len && ok; ++k) {
          const ReportWord& x = words[static_cast<std::size_t>(i + k)];
          ok = !x.punct && x.norm == p.words[static_cast<std::size_t>(k)];
        }
        if (ok) {
          out.push_back({i, i + len, &p.payload});
          matched = len;
          break;
        }
      }
    }
    i += matched > 0 ? matched : 1;
  }
  return out;
}

// --- sentences and sections ---------------------------------------------------------------------

namespace {

/// Length of a list marker ("1.", "12)", "-", "*", "•") at text[i] followed by a space; 0 if none.
std::size_t listMarker(std::string_view t, std::size_t i) {
  std::size_t k = i;
  while (k < t.size() && std::isdigit(static_cast<unsigned char>(t[k])) && k - i < 3) ++k;
  if (k > i && k < t.size() && (t[k] == '.' || t[k] == ')') && k + 1 < t.size() &&
      isSpaceByte(static_cast<unsigned char>(t[k + 1])))
    return k + 1 - i;
  if (i < t.size() && (t[i] == '-' || t[i] == '*') && i + 1 < t.size() && t[i + 1] == ' ') return 1;
  if (t.substr(i, 3) == "\xE2\x80\xA2") return 3;  // bullet
  return 0;
}

bool isAbbreviation(std::string_view t, std::size_t dot) {
  std::size_t b = dot;
  while (b > 0 && !isSpaceByte(static_cast<unsigned char>(t[b - 1])) && t[b - 1] != '(') --b;
  std::string w;
  for (std::size_t k = b; k < dot; ++k) w += lower(t[k]);
  static const std::set<std::string> kAbbrev = {"e.g", "i.e", "approx", "vs",   "dr",  "mr",   "mrs",  "ms",
                                                "cf",  "fig", "incl",   "resp", "ca",  "st",   "no",   "nos",
                                                "max", "min", "apprx",  "sp",   "s.p", "etc.", "a.k.a"};
  // "No." ends a sentence far more often than it abbreviates "number" in reports, unless a digit follows.
  if (w == "no") return dot + 2 < t.size() && std::isdigit(static_cast<unsigned char>(t[dot + 2]));
  return kAbbrev.count(w) > 0;
}

bool bareListNumber(std::string_view s) {
  std::size_t k = 0;
  while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
  return k > 0 && k <= 3 && k + 1 == s.size() && (s[k] == '.' || s[k] == ')');
}

}  // namespace

std::vector<std::pair<int, int>> splitSentences(std::string_view t, int base) {
  std::vector<std::pair<int, int>> out;
  const std::size_t n = t.size();
  std::size_t start = 0;
  auto emit = [&](std::size_t end) {
    std::size_t b = start, e = end;
    while (b < e && isSpaceByte(static_cast<unsigned char>(t[b]))) ++b;
    while (e > b && isSpaceByte(static_cast<unsigned char>(t[e - 1]))) --e;
    if (b < e) out.emplace_back(base + static_cast<int>(b), base + static_cast<int>(e));
    start = end;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const char c = t[i];
    if (c == '\n') {
      std::size_t k = i + 1;
      while (k < n && (t[k] == ' ' || t[k] == '\t' || t[k] == '\r')) ++k;
      if (k >= n || t[k] == '\n' || listMarker(t, k) > 0) emit(i + 1);
      continue;
    }
    if (c == '.' || c == '!' || c == '?') {
      std::size_t k = i + 1;
      while (k < n && (t[k] == '.' || t[k] == '!' || t[k] == '?' || t[k] == ')' || t[k] == '"' || t[k] == '\'')) ++k;
      if (k < n && !isSpaceByte(static_cast<unsigned char>(t[k]))) continue;  // "2.5", "e.g.x"
      if (c == '.' && isAbbreviation(t, i)) continue;
      // Keep a bare list number ("1.") with the sentence it introduces.
      std::size_t b = start;
      while (b < i && isSpaceByte(static_cast<unsigned char>(t[b]))) ++b;
      if (bareListNumber(t.substr(b, k - b))) continue;
      emit(k);
      i = k - 1;
    }
  }
  emit(n);
  return out;
}

const char* toString(Assertion a) {
  switch (a) {
    case Assertion::Present:
      return "present";
    case Assertion::Absent:
      return "absent";
    case Assertion::Uncertain:
      return "uncertain";
  }
  return "?";
}

int ParsedReport::sentenceOfWord(int word) const {
  for (std::size_t s = 0; s < sentences.size(); ++s)
    if (word >= sentences[s].wordBegin && word < sentences[s].wordEnd) return static_cast<int>(s);
  return -1;
}

std::string ParsedReport::section(const std::string& name) const {
  for (const auto& s : sections)
    if (s.name == name)
      return text.substr(static_cast<std::size_t>(s.begin), static_cast<std::size_t>(s.end - s.begin));
  return "";
}

ReportParser::ReportParser(ReportParserOptions opt) : opt_(std::move(opt)) {
  const auto& c = opt_.cues;
  for (const auto& p : c.negationPre) cues_.add(p, static_cast<int>(kNegPre));
  for (const auto& p : c.negationPost) cues_.add(p, static_cast<int>(kNegPost));
  for (const auto& p : c.uncertaintyPre) cues_.add(p, static_cast<int>(kUncPre));
  for (const auto& p : c.uncertaintyPost) cues_.add(p, static_cast<int>(kUncPost));
  for (const auto& p : c.pseudo) cues_.add(p, static_cast<int>(kPseudo));
  for (const auto& p : c.terminators) cues_.add(p, static_cast<int>(kTerm));
}

ParsedReport ReportParser::parse(std::string_view text) const {
  ParsedReport r;
  r.text = std::string(text);
  const std::string_view t = r.text;
  // Headings: (start, bodyStart, name), longest heading first at each candidate position.
  struct Head {
    std::size_t at, body;
    std::string name;
  };
  std::vector<std::pair<std::string, std::string>> heads;  // (heading, section)
  for (const auto& [name, hs] : opt_.headings)
    for (const auto& h : hs) heads.emplace_back(h, name);
  std::sort(heads.begin(), heads.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::vector<Head> found;
  for (std::size_t i = 0; i < t.size();) {
    // Candidate: a line start, or after a sentence end on the same line (then ':' is required).
    const bool lineStart = i == 0 || t[i - 1] == '\n';
    const bool afterSentence = i >= 2 && t[i - 1] == ' ' && (t[i - 2] == '.' || t[i - 2] == '!' || t[i - 2] == '?');
    std::size_t k = i;
    if (lineStart)
      while (k < t.size() && (t[k] == ' ' || t[k] == '\t')) ++k;
    bool hit = false;
    if (lineStart || afterSentence) {
      for (const auto& [h, name] : heads) {
        if (k + h.size() > t.size()) continue;
        bool eq = true;
        for (std::size_t q = 0; q < h.size() && eq; ++q) eq = lower(t[k + q]) == h[q];
        if (!eq) continue;
        std::size_t e = k + h.size();
        while (e < t.size() && (t[e] == ' ' || t[e] == '\t')) ++e;
        if (e < t.size() && t[e] == ':') {
          found.push_back({k, e + 1, name});
        } else if (lineStart && (e >= t.size() || t[e] == '\n' || t[e] == '\r')) {
          found.push_back({k, e, name});
        } else {
          continue;
        }
        i = found.back().body;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  auto addSection = [&](const std::string& name, std::size_t b, std::size_t e) {
    std::size_t bb = b;
    while (bb < e && isSpaceByte(static_cast<unsigned char>(t[bb]))) ++bb;
    if (bb >= e && name == "text") return;
    r.sections.push_back({name, static_cast<int>(b), static_cast<int>(e)});
  };
  addSection("text", 0, found.empty() ? t.size() : found[0].at);
  for (std::size_t h = 0; h < found.size(); ++h)
    addSection(found[h].name, found[h].body, h + 1 < found.size() ? found[h + 1].at : t.size());
  for (std::size_t s = 0; s < r.sections.size(); ++s) {
    const auto& sec = r.sections[s];
    for (const auto& [b, e] : splitSentences(
             t.substr(static_cast<std::size_t>(sec.begin), static_cast<std::size_t>(sec.end - sec.begin)), sec.begin)) {
      ReportSentence sent;
      sent.begin = b, sent.end = e, sent.section = static_cast<int>(s);
      sent.wordBegin = static_cast<int>(r.words.size());
      for (auto& w : splitWords(t.substr(static_cast<std::size_t>(b), static_cast<std::size_t>(e - b)), b))
        r.words.push_back(std::move(w));
      sent.wordEnd = static_cast<int>(r.words.size());
      for (const auto& m : cues_.match(r.words, sent.wordBegin, sent.wordEnd)) {
        unsigned kinds = 0;
        for (int k : *m.payload) kinds |= static_cast<unsigned>(k);
        r.cues.push_back({m.wordBegin, m.wordEnd, kinds});
      }
      r.sentences.push_back(sent);
    }
  }
  return r;
}

Assertion ReportParser::assertion(const ParsedReport& r, int wordBegin, int wordEnd) const {
  const int s = r.sentenceOfWord(wordBegin);
  if (s < 0) return Assertion::Present;
  const int sb = r.sentences[static_cast<std::size_t>(s)].wordBegin,
            se = r.sentences[static_cast<std::size_t>(s)].wordEnd;
  auto blocked = [&](int from, int to) {  // a terminator or ';' in words [from, to)
    for (int w = from; w < to; ++w)
      if (r.words[static_cast<std::size_t>(w)].punct && r.words[static_cast<std::size_t>(w)].norm == ";") return true;
    for (const auto& c : r.cues)
      if ((c.kinds & kTerm) && c.wordBegin >= from && c.wordEnd <= to) return true;
    return false;
  };
  const ReportCue* pre = nullptr;
  const ReportCue* post = nullptr;
  for (const auto& c : r.cues) {
    if (c.wordBegin < sb || c.wordEnd > se) continue;
    if ((c.kinds & (kNegPre | kUncPre)) && c.wordEnd <= wordBegin &&
        (opt_.preWindow <= 0 || wordBegin - c.wordEnd <= opt_.preWindow) && !blocked(c.wordEnd, wordBegin) &&
        (!pre || c.wordEnd > pre->wordEnd))
      pre = &c;
    if ((c.kinds & (kNegPost | kUncPost)) && c.wordBegin >= wordEnd && c.wordBegin - wordEnd <= opt_.postWindow &&
        !blocked(wordEnd, c.wordBegin) && (!post || c.wordBegin < post->wordBegin))
      post = &c;
  }
  if (!pre && !post) return Assertion::Present;
  bool usePost = post && (!pre || (post->wordBegin - wordEnd) < (wordBegin - pre->wordEnd));
  if (usePost) return (post->kinds & kNegPost) ? Assertion::Absent : Assertion::Uncertain;
  return (pre->kinds & kNegPre) ? Assertion::Absent : Assertion::Uncertain;
}

}  // namespace biud::text
