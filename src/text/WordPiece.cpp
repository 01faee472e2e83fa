#include "biud/text/WordPiece.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <queue>
#include <set>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"
#include "biud/text/Utf8.h"

namespace biud::text {

namespace {

struct CpRange {
  char32_t lo, hi;
};
struct CpMap {
  char32_t cp;
  const char* to;
};

#include "BertUnicodeTables.inc"

template <std::size_t N>
bool inRanges(const CpRange (&r)[N], char32_t cp) {
  const CpRange* end = r + N;
  const CpRange* it = std::upper_bound(r, end, cp, [](char32_t c, const CpRange& x) { return c < x.lo; });
  return it != r && cp <= (it - 1)->hi;
}

template <std::size_t N>
const char* lookup(const CpMap (&m)[N], char32_t cp) {
  const CpMap* end = m + N;
  const CpMap* it = std::lower_bound(m, end, cp, [](const CpMap& x, char32_t c) { return x.cp < c; });
  return (it != end && it->cp == cp) ? it->to : nullptr;
}

bool isRemoved(char32_t cp) {
  return cp < 0x80 ? (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F : inRanges(kRemoved, cp);
}
bool isSpace(char32_t cp) {
  return cp == ' ' || (cp < 0x80 ? (cp == '\t' || cp == '\n' || cp == '\r') : inRanges(kSpace, cp));
}
bool isPunct(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  return inRanges(kPunct, cp);
}
bool isCjk(char32_t cp) { return cp >= 0x3400 && inRanges(kCjk, cp); }

/// Append the accent-stripped form of cp (NFD minus combining marks) as code points.
template <class F>
void stripped(char32_t cp, F&& emit) {
  if (cp < 0xC0) {
    emit(cp);
    return;
  }
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllables: algorithmic decomposition
    const char32_t s = cp - 0xAC00;
    emit(0x1100 + s / 588);
    emit(0x1161 + (s % 588) / 28);
    if (s % 28) emit(0x11A7 + s % 28);
    return;
  }
  if (const char* to = lookup(kStrip, cp)) {
    const std::string_view v(to);
    for (std::size_t i = 0; i < v.size();) emit(utf8::next(v, i));
    return;
  }
  emit(cp);
}

template <class F>
void lowered(char32_t cp, F&& emit) {
  if (cp < 0x80) {
    emit((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    return;
  }
  if (const char* to = lookup(kLower, cp)) {
    const std::string_view v(to);
    for (std::size_t i = 0; i < v.size();) emit(utf8::next(v, i));
    return;
  }
  emit(cp);
}

std::string readToken(const nlohmann::json& j, const char* key, const std::string& fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  BIUD_THROW(DataError, "tokenizer config `{}`: key `{}` must be a string or {{\"content\": ...}}, got {}", file, key,
             v.dump());
}

/// The WordPiece decoder's per-token clean-up (HF tokenizers decoders.WordPiece(cleanup=True)).
std::string cleanup(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f(from), t(to);
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = s.find(f, pos)) != std::string::npos; pos = hit + f.size())
      out.append(s, pos, hit - pos).append(t);
    out.append(s, pos, std::string::npos);
    s.swap(out);
  }
  return s;
}

}  // namespace

WordPieceOptions WordPieceOptions::fromConfigJson(const std::string& path) {
  const nlohmann::json j = fs::readJsonFile(path, "tokenizer config");
  BIUD_CHECK(j.is_object(), DataError, "tokenizer config `{}` must be a JSON object", path);
  WordPieceOptions o;
  auto boolKey = [&](const char* key, bool& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    BIUD_CHECK(j[key].is_boolean(), DataError, "tokenizer config `{}`: key `{}` must be true or false, got {}", path,
               key, j[key].dump());
    out = j[key].get<bool>();
  };
  boolKey("do_lower_case", o.lowercase);
  boolKey("tokenize_chinese_chars", o.tokenizeChineseChars);
  if (j.contains("strip_accents") && !j["strip_accents"].is_null()) {
    BIUD_CHECK(j["strip_accents"].is_boolean(), DataError,
               "tokenizer config `{}`: key `strip_accents` must be true, false or null, got {}", path,
               j["strip_accents"].dump());
    o.stripAccents = j["strip_accents"].get<bool>() ? 1 : 0;
  }
  if (j.contains("max_input_chars_per_word") && j["max_input_chars_per_word"].is_number_integer())
    o.maxInputCharsPerWord = j["max_input_chars_per_word"].get<int>();
  if (j.contains("model_max_length") && j["model_max_length"].is_number()) {
    const double m = j["model_max_length"].get<double>();
    o.modelMaxLength = (m > 0 && m < 1e9) ? static_cast<int>(m) : 0;  // HF writes 1e30 for "no limit"
  }
  o.unkToken = readToken(j, "unk_token", o.unkToken, path);
  o.clsToken = readToken(j, "cls_token", o.clsToken, path);
  o.sepToken = readToken(j, "sep_token", o.sepToken, path);
  o.padToken = readToken(j, "pad_token", o.padToken, path);
  o.maskToken = readToken(j, "mask_token", o.maskToken, path);
  return o;
}

namespace {
std::vector<std::string> readVocab(const std::string& path) {
  fs::requireFile(path, "WordPiece vocab.txt");
  const std::string text = fs::readFile(path);
  std::vector<std::string> vocab;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    // HF strips only the newline; a token may contain other whitespace.
    vocab.emplace_back(text, pos, nl - pos);
    pos = nl + 1;
  }
  BIUD_CHECK(!vocab.empty(), DataError, "WordPiece vocab `{}` is empty: expected one token per line", path);
  return vocab;
}

WordPieceOptions optionsNextTo(const std::string& vocabPath) {
  fs::requireFile(vocabPath, "WordPiece vocab.txt");
  const auto cfg = std::filesystem::path(vocabPath).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfg, ec)) return WordPieceOptions::fromConfigJson(cfg.string());
  return {};
}
}  // namespace

WordPiece::WordPiece(const std::string& vocabPath) : WordPiece(readVocab(vocabPath), optionsNextTo(vocabPath)) {}

WordPiece::WordPiece(const std::string& vocabPath, const WordPieceOptions& options)
    : WordPiece(readVocab(vocabPath), options) {}

WordPiece::WordPiece(std::vector<std::string> vocab, const WordPieceOptions& options)
    : vocab_(std::move(vocab)), opt_(options) {
  init();
}

void WordPiece::init() {
  BIUD_CHECK(opt_.maxInputCharsPerWord > 0, ConfigError, "max_input_chars_per_word must be > 0, got {}",
             opt_.maxInputCharsPerWord);
  index_.reserve(vocab_.size() * 2);
  for (std::size_t i = 0; i < vocab_.size(); ++i) {
    // HF keeps the last id of a duplicated line; match it.
    index_[vocab_[i]] = static_cast<int>(i);
    maxTokenChars_ = std::max(maxTokenChars_, static_cast<int>(utf8::length(vocab_[i])));
  }
  auto idOf = [&](const std::string& t) {
    auto it = index_.find(t);
    return it == index_.end() ? -1 : it->second;
  };
  special_.pad = idOf(opt_.padToken);
  special_.unk = idOf(opt_.unkToken);
  special_.cls = idOf(opt_.clsToken);
  special_.sep = idOf(opt_.sepToken);
  special_.mask = idOf(opt_.maskToken);
  BIUD_CHECK(special_.unk >= 0, DataError,
             "WordPiece vocab has no unknown token `{}`: add it or set unk_token in tokenizer_config.json",
             opt_.unkToken);
  isSpecialId_.assign(vocab_.size(), 0);
  for (const std::string* t : {&opt_.padToken, &opt_.unkToken, &opt_.clsToken, &opt_.sepToken, &opt_.maskToken}) {
    const int id = idOf(*t);
    if (id < 0) continue;
    specials_.push_back(*t);
    isSpecialId_[static_cast<std::size_t>(id)] = 1;
  }
  // Longest first: the leftmost match prefers the longer token when two start at one place.
  std::sort(specials_.begin(), specials_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string WordPiece::normalize(std::string_view text) const {
  std::string out;
  const bool strip = stripAccents();
  for (std::size_t i = 0; i < text.size();) {
    const char32_t cp = utf8::next(text, i);
    if (isRemoved(cp)) continue;
    if (isSpace(cp)) {
      out += ' ';
      continue;
    }
    const bool cjk = opt_.tokenizeChineseChars && isCjk(cp);
    if (cjk) out += ' ';
    auto emitLower = [&](char32_t c) {
      if (opt_.lowercase)
        lowered(c, [&](char32_t d) { utf8::append(out, d); });
      else
        utf8::append(out, c);
    };
    if (strip)
      stripped(cp, emitLower);
    else
      emitLower(cp);
    if (cjk) out += ' ';
  }
  return out;
}

template <class F>
void WordPiece::forEachWord(std::string_view text, F&& fn) const {
  const bool strip = stripAccents();
  std::string cur;
  std::vector<std::pair<int, int>> ranges;  // input byte range of each code point of `cur`
  auto close = [&] {
    if (!cur.empty()) fn(cur, ranges, false);
    cur.clear();
    ranges.clear();
  };
  std::string one;
  std::vector<std::pair<int, int>> oneRange(1);
  // Normalised code point `c` that came from input bytes [b, e).
  auto push = [&](char32_t c, int b, int e) {
    if (isSpace(c)) {
      close();
      return;
    }
    if (isPunct(c)) {
      close();
      one.clear();
      utf8::append(one, c);
      oneRange[0] = {b, e};
      fn(one, oneRange, false);
      return;
    }
    utf8::append(cur, c);
    ranges.emplace_back(b, e);
  };
  auto normalizeRange = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to;) {
      const int b = static_cast<int>(i);
      const char32_t cp = utf8::next(text, i);
      const int e = static_cast<int>(i);
      if (cp < 0x80 && cp > 0x20 && cp != 0x7F) {  // fast path for printable ASCII
        push(opt_.lowercase && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp, b, e);
        continue;
      }
      if (isRemoved(cp)) continue;
      if (isSpace(cp)) {
        close();
        continue;
      }
      const bool cjk = opt_.tokenizeChineseChars && isCjk(cp);
      if (cjk) close();
      auto emitLower = [&](char32_t c) {
        if (opt_.lowercase)
          lowered(c, [&](char32_t d) { push(d, b, e); });
        else
          push(c, b, e);
      };
      if (strip)
        stripped(cp, emitLower);
      else
        emitLower(cp);
      if (cjk) close();
    }
  };
  // Special tokens are matched in the raw text first (HF added tokens with normalized=false).
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t best = std::string_view::npos;
    const std::string* hit = nullptr;
    for (const std::string& s : specials_) {
      const std::size_t at = text.find(s, pos);
      if (at != std::string_view::npos && at < best) best = at, hit = &s;
    }
    if (!hit) {
      normalizeRange(pos, text.size());
      break;
    }
    normalizeRange(pos, best);
    close();
    oneRange[0] = {static_cast<int>(best), static_cast<int>(best + hit->size())};
    fn(*hit, oneRange, true);
    pos = best + hit->size();
  }
  close();
}

void WordPiece::visitWords(std::string_view text, const std::function<void(const std::string&, bool)>& fn) const {
  forEachWord(text,
              [&](const std::string& w, const std::vector<std::pair<int, int>>&, bool special) { fn(w, special); });
}

std::vector<WordPieceWord> WordPiece::preTokenize(std::string_view text) const {
  std::vector<WordPieceWord> words;
  forEachWord(text, [&](const std::string& w, const std::vector<std::pair<int, int>>& r, bool special) {
    words.push_back(WordPieceWord{w, r.front().first, r.back().second, special});
  });
  return words;
}

void WordPiece::encodeContent(std::string_view text, std::vector<int>& ids,
                              std::vector<std::pair<int, int>>& offsets) const {
  std::vector<std::size_t> cuts;  // byte position of each code point of a word, plus the end
  std::string buf;
  std::vector<int> wordIds;
  std::vector<std::pair<std::size_t, std::size_t>> wordSpans;
  forEachWord(text, [&](const std::string& w, const std::vector<std::pair<int, int>>& chars, bool special) {
    if (special) {
      ids.push_back(index_.at(w));
      offsets.push_back(chars.front());
      return;
    }
    const std::size_t n = chars.size();
    if (static_cast<int>(n) > opt_.maxInputCharsPerWord) {
      ids.push_back(special_.unk);
      offsets.emplace_back(chars.front().first, chars.back().second);
      return;
    }
    cuts.clear();
    for (std::size_t i = 0; i < w.size();) {
      cuts.push_back(i);
      utf8::next(w, i);
    }
    cuts.push_back(w.size());
    wordIds.clear();
    wordSpans.clear();
    // Greedy longest match first; a continuation piece carries the "##" prefix.
    for (std::size_t start = 0; start < n;) {
      std::size_t end = std::min(n, start + static_cast<std::size_t>(maxTokenChars_));
      int found = -1;
      for (; end > start; --end) {
        buf.assign(start > 0 ? "##" : "");
        buf.append(w, cuts[start], cuts[end] - cuts[start]);
        const auto it = index_.find(buf);
        if (it != index_.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {  // one unknown part makes the whole word [UNK], as in HF
        ids.push_back(special_.unk);
        offsets.emplace_back(chars.front().first, chars.back().second);
        return;
      }
      wordIds.push_back(found);
      wordSpans.emplace_back(start, end);
      start = end;
    }
    for (std::size_t p = 0; p < wordIds.size(); ++p) {
      ids.push_back(wordIds[p]);
      offsets.emplace_back(chars[wordSpans[p].first].first, chars[wordSpans[p].second - 1].second);
    }
  });
}

Encoding WordPiece::encode(std::string_view text, const EncodeOptions& opt) const {
  std::vector<int> ids;
  std::vector<std::pair<int, int>> offsets;
  encodeContent(text, ids, offsets);
  const bool specials = opt.addSpecialTokens;
  if (specials) {
    BIUD_CHECK(special_.cls >= 0 && special_.sep >= 0, DataError,
               "WordPiece vocab lacks `{}` or `{}`: cannot add special tokens", opt_.clsToken, opt_.sepToken);
  }
  if (opt.maxLength > 0 && opt.truncation) {
    const int room = opt.maxLength - (specials ? 2 : 0);
    BIUD_CHECK(room >= 0, ConfigError, "max length {} leaves no room for [CLS] and [SEP]", opt.maxLength);
    if (static_cast<int>(ids.size()) > room) {
      ids.resize(static_cast<std::size_t>(room));
      offsets.resize(static_cast<std::size_t>(room));
    }
  }
  Encoding e;
  const std::size_t total = ids.size() + (specials ? 2 : 0);
  e.ids.reserve(total);
  e.offsets.reserve(total);
  if (specials) {
    e.ids.push_back(special_.cls);
    e.offsets.emplace_back(0, 0);
  }
  e.ids.insert(e.ids.end(), ids.begin(), ids.end());
  e.offsets.insert(e.offsets.end(), offsets.begin(), offsets.end());
  if (specials) {
    e.ids.push_back(special_.sep);
    e.offsets.emplace_back(0, 0);
  }
  e.attentionMask.assign(e.ids.size(), 1);
  e.typeIds.assign(e.ids.size(), 0);
  e.specialMask.resize(e.ids.size());
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    const bool sp = (specials && (i == 0 || i + 1 == e.ids.size())) || isSpecialId_[static_cast<std::size_t>(e.ids[i])];
    e.specialMask[i] = sp ? 1 : 0;
  }
  if (opt.padding == Padding::MaxLength && opt.maxLength > 0)
    padEncoding(e, opt.maxLength, special_.pad < 0 ? 0 : special_.pad);
  return e;
}

std::vector<std::string> WordPiece::tokenize(std::string_view text) const {
  std::vector<int> ids;
  std::vector<std::pair<int, int>> offsets;
  encodeContent(text, ids, offsets);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int id : ids) out.push_back(vocab_[static_cast<std::size_t>(id)]);
  return out;
}

std::string WordPiece::decode(const std::vector<int>& ids, bool skipSpecial) const {
  std::string out;
  bool first = true;
  for (int id : ids) {
    BIUD_CHECK(id >= 0 && id < vocabSize(), ValueError, "WordPiece id {} out of range [0, {})", id, vocabSize());
    if (skipSpecial && isSpecialId_[static_cast<std::size_t>(id)]) continue;
    const std::string& t = vocab_[static_cast<std::size_t>(id)];
    std::string piece;
    if (!first && t.rfind("##", 0) == 0)
      piece = t.substr(2);
    else
      piece = (first ? "" : " ") + t;
    out += cleanup(std::move(piece));
    first = false;
  }
  return out;
}

std::string WordPiece::idToToken(int id) const {
  BIUD_CHECK(id >= 0 && id < vocabSize(), ValueError, "WordPiece id {} out of range [0, {})", id, vocabSize());
  return vocab_[static_cast<std::size_t>(id)];
}

int WordPiece::tokenToId(const std::string& token) const {
  const auto it = index_.find(token);
  return it == index_.end() ? -1 : it->second;
}

// --- training ---------------------------------------------------------------------------------

std::vector<std::string> trainWordPieceVocab(const std::vector<std::string>& texts, const WordPieceTrainOptions& opt) {
  BIUD_CHECK(opt.vocabSize > 10, ConfigError, "WordPiece vocab size must be > 10, got {}", opt.vocabSize);
  const WordPieceOptions& no = opt.normalization;
  // Pre-tokenise with a tokenizer whose vocabulary is only the specials (normalisation needs none).
  const WordPiece pre(std::vector<std::string>{no.padToken, no.unkToken, no.clsToken, no.sepToken, no.maskToken}, no);
  std::map<std::string, long long> wordFreq;  // ordered: deterministic symbol ids
  for (const auto& t : texts)
    pre.visitWords(t, [&](const std::string& w, bool special) {
      if (!special) ++wordFreq[w];
    });

  std::vector<std::string> vocab = {no.padToken, no.unkToken, no.clsToken, no.sepToken, no.maskToken};
  std::unordered_map<std::string, int> symId;
  std::vector<std::string> symStr;
  auto intern = [&](const std::string& s) {
    auto [it, added] = symId.emplace(s, static_cast<int>(symStr.size()));
    if (added) symStr.push_back(s);
    return it->second;
  };
  struct Word {
    std::vector<int> sym;
    long long freq;
  };
  std::vector<Word> words;
  std::map<std::string, long long> alphabet;
  for (const auto& [w, f] : wordFreq) {
    if (static_cast<int>(utf8::length(w)) > no.maxInputCharsPerWord) continue;
    Word word{{}, f};
    for (std::size_t i = 0; i < w.size();) {
      const std::size_t b = i;
      utf8::next(w, i);
      const std::string s = (b == 0 ? "" : "##") + w.substr(b, i - b);
      alphabet[s] += f;
      word.sym.push_back(intern(s));
    }
    words.push_back(std::move(word));
  }
  std::set<std::string> have(vocab.begin(), vocab.end());
  // The alphabet first (every character seen, also as a continuation), so any seen word encodes.
  for (const auto& [s, f] : alphabet)
    if (have.insert(s).second) vocab.push_back(s);

  // BPE merges with incremental pair counts and a lazy max-heap (stale entries are skipped).
  auto key = [](int a, int b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  };
  std::unordered_map<std::uint64_t, long long> count;
  std::unordered_map<std::uint64_t, std::set<int>> where;
  for (int wi = 0; wi < static_cast<int>(words.size()); ++wi) {
    const auto& w = words[static_cast<std::size_t>(wi)];
    for (std::size_t i = 0; i + 1 < w.sym.size(); ++i) {
      count[key(w.sym[i], w.sym[i + 1])] += w.freq;
      where[key(w.sym[i], w.sym[i + 1])].insert(wi);
    }
  }
  auto bare = [](const std::string& s) { return s.rfind("##", 0) == 0 ? s.substr(2) : s; };
  // Heap order: higher count first, then the smaller merged string (deterministic ties).
  using Entry = std::pair<long long, std::uint64_t>;
  auto worse = [&](const Entry& x, const Entry& y) {
    if (x.first != y.first) return x.first < y.first;
    const auto sx = symStr[x.second >> 32] + "\x01" + symStr[x.second & 0xffffffffu];
    const auto sy = symStr[y.second >> 32] + "\x01" + symStr[y.second & 0xffffffffu];
    return sx > sy;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (const auto& [k, c] : count) heap.push({c, k});
  while (static_cast<int>(vocab.size()) < opt.vocabSize && !heap.empty()) {
    const auto [c, k] = heap.top();
    heap.pop();
    const auto it = count.find(k);
    if (it == count.end() || it->second != c) continue;  // stale
    if (c < opt.minFrequency) break;
    const int a = static_cast<int>(k >> 32), b = static_cast<int>(k & 0xffffffffu);
    const std::string merged = symStr[static_cast<std::size_t>(a)] + bare(symStr[static_cast<std::size_t>(b)]);
    if (static_cast<int>(utf8::length(bare(merged))) > opt.maxTokenChars) {
      count.erase(it);
      continue;
    }
    const int m = intern(merged);
    if (have.insert(merged).second) vocab.push_back(merged);
    std::set<std::uint64_t> touched;
    const std::set<int> affected = where[k];
    for (int wi : affected) {
      auto& w = words[static_cast<std::size_t>(wi)];
      // Remove this word's old pairs, merge, add the new pairs.
      for (std::size_t i = 0; i + 1 < w.sym.size(); ++i) {
        const auto pk = key(w.sym[i], w.sym[i + 1]);
        count[pk] -= w.freq;
        where[pk].erase(wi);
        touched.insert(pk);
      }
      std::vector<int> out;
      out.reserve(w.sym.size());
      for (std::size_t i = 0; i < w.sym.size(); ++i) {
        if (i + 1 < w.sym.size() && w.sym[i] == a && w.sym[i + 1] == b) {
          out.push_back(m);
          ++i;
        } else {
          out.push_back(w.sym[i]);
        }
      }
      w.sym.swap(out);
      for (std::size_t i = 0; i + 1 < w.sym.size(); ++i) {
        const auto pk = key(w.sym[i], w.sym[i + 1]);
        count[pk] += w.freq;
        where[pk].insert(wi);
        touched.insert(pk);
      }
    }
    count.erase(k);
    where.erase(k);
    for (const auto pk : touched) {
      const auto ct = count.find(pk);
      if (ct != count.end() && ct->second > 0 && pk != k) heap.push({ct->second, pk});
    }
  }
  return vocab;
}

}  // namespace biud::text
