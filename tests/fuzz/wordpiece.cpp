/// Fuzzes the WordPiece tokenizer (src/text/WordPiece.cpp, Utf8.cpp) on arbitrary bytes (UTF-8
/// or not) with a small fixed vocabulary, cased and uncased. Checks: every id is in the
/// vocabulary, offsets are inside the text and ordered, padding/truncation give the asked
/// length, and decode() takes every id back.
#include "biud/text/WordPiece.h"

#include <memory>
#include <string>
#include <vector>

#include "FuzzUtil.h"

namespace {

std::vector<std::string> vocab() {
  return {"[PAD]", "[UNK]",    "[CLS]", "[SEP]", "[MASK]", "no",  "pleural", "effusion", "pl", "##eur", "##al", "e",
          "##f",   "##fusion", "the",   "lung",  "##s",    "are", "clear",   ".",        ",",  "-",     "(",    ")",
          "a",     "b",        "c",     "##a",   "##b",    "##c", "ü",       "##ü",      "é",  "中",    "文",   "ß",
          "##ß",   "0",        "1",     "2",     "##0",    "##1", "##2",     "mm",       "x",  "##x",   "É",    "Lung"};
}

const biud::text::WordPiece& tok(bool lower) {
  static auto make = [](bool lc) {
    biud::text::WordPieceOptions o;
    o.lowercase = lc;
    o.maxInputCharsPerWord = 20;
    return std::make_unique<biud::text::WordPiece>(vocab(), o);
  };
  static auto uncased = make(true), cased = make(false);
  return lower ? *uncased : *cased;
}

void fail(const char* what) {
  std::fprintf(stderr, "FUZZ FINDING: WordPiece: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace biud;
  if (size < 1) return 0;
  const bool lower = data[0] & 1;
  const int maxLen = data[0] >> 1;  // 0..127
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto& t = tok(lower);
  fuzz::guard([&] {
    (void)t.normalize(text);
    for (const auto& w : t.preTokenize(text))
      if (w.begin < 0 || w.end < w.begin || static_cast<size_t>(w.end) > text.size())
        fail("word range outside the text");
    (void)t.tokenize(text);
    text::EncodeOptions o;
    o.maxLength = maxLen;
    o.padding = maxLen ? text::Padding::MaxLength : text::Padding::None;
    const text::Encoding e = t.encode(text, o);
    const size_t n = e.ids.size();
    if (e.attentionMask.size() != n || e.typeIds.size() != n || e.specialMask.size() != n || e.offsets.size() != n)
      fail("encoding vectors of different lengths");
    if (maxLen >= 2 && n != static_cast<size_t>(maxLen)) fail("padded/truncated length differs from maxLength");
    int last = 0;
    for (size_t i = 0; i < n; ++i) {
      if (e.ids[i] < 0 || e.ids[i] >= t.vocabSize()) fail("id outside the vocabulary");
      const auto [b, en] = e.offsets[i];
      if (b < 0 || en < b || static_cast<size_t>(en) > text.size()) fail("offset outside the text");
      if (!e.specialMask[i]) {
        if (b < last) fail("offsets go backwards");
        last = b;
      }
    }
    (void)t.decode(e.ids, true);
    (void)t.decode(e.ids, false);
    (void)text::tokensForSpan(e, 0, static_cast<int>(text.size()));
  });
  return 0;
}
