/// Fuzzes the report parser (src/text/Report.cpp: sections, sentences, words, negation cues)
/// and the manifest's FINDINGS/IMPRESSION splitter on arbitrary bytes. Checks that every range
/// lies inside the text and that assertion() answers for every word.
#include "biud/text/Report.h"

#include <string>

#include "FuzzUtil.h"
#include "biud/image/Manifest.h"

namespace {
void fail(const char* what) {
  std::fprintf(stderr, "FUZZ FINDING: report parser: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  static const text::ReportParser parser;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  fuzz::guard([&] {
    const text::ParsedReport r = parser.parse(in);
    const int n = static_cast<int>(in.size());
    auto inside = [&](int b, int e) { return 0 <= b && b <= e && e <= n; };
    for (const auto& s : r.sections)
      if (!inside(s.begin, s.end)) fail("section outside the text");
    for (const auto& s : r.sentences) {
      if (!inside(s.begin, s.end)) fail("sentence outside the text");
      if (s.section < -1 || s.section >= static_cast<int>(r.sections.size())) fail("sentence names no section");
      if (s.wordBegin < 0 || s.wordEnd < s.wordBegin || s.wordEnd > static_cast<int>(r.words.size()))
        fail("sentence words outside the word list");
    }
    for (size_t w = 0; w < r.words.size(); ++w) {
      if (!inside(r.words[w].begin, r.words[w].end)) fail("word outside the text");
      (void)r.sentenceOfWord(static_cast<int>(w));
      (void)parser.assertion(r, static_cast<int>(w), static_cast<int>(w) + 1);
    }
    for (const auto& c : r.cues)
      if (c.wordBegin < 0 || c.wordEnd < c.wordBegin || c.wordEnd > static_cast<int>(r.words.size()))
        fail("cue outside the word list");
    for (const char* s : {"findings", "impression", "history", "text"}) (void)r.section(s);
    for (const auto& [b, e] : text::splitSentences(in))
      if (!inside(b, e)) fail("splitSentences range outside the text");
    std::string f, i;
    image::splitReportSections(std::string(in), f, i);
  });
  return 0;
}
