// WordPiece against HF transformers (BertTokenizer/BertTokenizerFast = Rust tokenizers, and the
// pure-Python BertTokenizerLegacy) on a real BERT vocabulary and ~2500 varied sentences.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/config/EvalConfig.h"
#include "biud/core/Error.h"
#include "biud/text/Utf8.h"
#include "biud/text/WordPiece.h"
#include "common/TestUtil.h"

namespace bt = biud::text;
using nlohmann::json;

namespace {

std::string show(const std::vector<int>& v) {
  std::ostringstream o;
  for (int x : v) o << x << ' ';
  return o.str();
}

/// The reference is generated once per test binary run (it takes a while to tokenise).
const biud::test::TempDir& referenceDir() {
  static biud::test::TempDir dir("wordpiece");
  static bool done = false;
  if (!done) {
    biud::test::runPython("text_wordpiece.py", biud::test::quote(dir.str()) + " 2500");
    done = true;
  }
  return dir;
}

std::vector<json> cases() {
  std::vector<json> out;
  std::ifstream in(referenceDir() / "cases.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

void compareConfig(const bt::WordPiece& wp, const std::vector<json>& all, const std::string& name) {
  int idMismatch = 0, offMismatch = 0, truncMismatch = 0, decMismatch = 0, legacyAgree = 0, asciiLegacyMismatch = 0;
  bt::EncodeOptions trunc;
  trunc.maxLength = 24;
  trunc.padding = bt::Padding::MaxLength;
  for (const auto& c : all) {
    const std::string text = c["text"].get<std::string>();
    const json& r = c[name];
    const auto expect = r["ids"].get<std::vector<int>>();
    const bt::Encoding e = wp.encode(text);
    if (e.ids != expect) {
      if (++idMismatch <= 5)
        ADD_FAILURE() << name << ": ids differ for " << json(text).dump() << "\n  hf:   " << show(expect)
                      << "\n  ours: " << show(e.ids);
      continue;
    }
    const auto off = r["offsets"].get<std::vector<std::pair<int, int>>>();
    if (e.offsets != off && ++offMismatch <= 5) {
      std::string s;
      for (std::size_t i = 0; i < off.size(); ++i)
        if (off[i] != e.offsets[i])
          s += " token " + std::to_string(i) + ": hf (" + std::to_string(off[i].first) + "," +
               std::to_string(off[i].second) + ") ours (" + std::to_string(e.offsets[i].first) + "," +
               std::to_string(e.offsets[i].second) + ")";
      ADD_FAILURE() << name << ": offsets differ for " << json(text).dump() << s;
    }
    const bt::Encoding t = wp.encode(text, trunc);
    if ((t.ids != r["trunc_ids"].get<std::vector<int>>() ||
         t.attentionMask != r["trunc_mask"].get<std::vector<int>>() ||
         t.typeIds != r["trunc_types"].get<std::vector<int>>()) &&
        ++truncMismatch <= 5)
      ADD_FAILURE() << name << ": truncated/padded encoding differs for " << json(text).dump()
                    << "\n  hf:   " << show(r["trunc_ids"].get<std::vector<int>>()) << "\n  ours: " << show(t.ids);
    const std::string dec = wp.decode(e.ids, true);
    if (dec != r["decoded"].get<std::string>() && ++decMismatch <= 5)
      ADD_FAILURE() << name << ": decode differs for " << json(text).dump() << "\n  hf:   " << r["decoded"].dump()
                    << "\n  ours: " << json(dec).dump();
    const bool legacySame = r["legacy_ids"].get<std::vector<int>>() == e.ids;
    legacyAgree += legacySame;
    bool ascii = true;
    for (unsigned char ch : text) ascii = ascii && ch >= 0x20 && ch < 0x7F;
    if (ascii && !legacySame && ++asciiLegacyMismatch <= 5)
      ADD_FAILURE() << name << ": pure-Python BertTokenizerLegacy differs on ASCII text " << json(text).dump();
  }
  EXPECT_EQ(idMismatch, 0) << name;
  EXPECT_EQ(offMismatch, 0) << name;
  EXPECT_EQ(truncMismatch, 0) << name;
  EXPECT_EQ(decMismatch, 0) << name;
  EXPECT_EQ(asciiLegacyMismatch, 0) << name;
  // The legacy tokenizer uses Python's Unicode tables and final-sigma lower-casing, so it
  // disagrees with the Rust one on some exotic code points; report how often.
  std::printf("[ %s ] %zu sentences: identical to BertTokenizer(Fast) on all; to BertTokenizerLegacy on %d\n",
              name.c_str(), all.size(), legacyAgree);
}

}  // namespace

TEST(WordPiece, MatchesHfBertTokenizer) {
  const auto all = cases();
  ASSERT_GT(all.size(), 2000u);
  const bt::WordPiece wp((referenceDir() / "vocab" / "vocab.txt").string());
  EXPECT_TRUE(wp.options().lowercase);
  EXPECT_EQ(wp.vocabSize(), 30522);
  EXPECT_EQ(wp.specialIds().cls, 101);
  EXPECT_EQ(wp.specialIds().sep, 102);
  EXPECT_EQ(wp.specialIds().pad, 0);
  EXPECT_EQ(wp.specialIds().unk, 100);
  EXPECT_EQ(wp.specialIds().mask, 103);
  compareConfig(wp, all, "uncased");
  // The same vocabulary with the other tokenizer_config options (one test: the reference takes
  // ~20 s to generate).
  const std::pair<const char*, std::pair<bool, int>> variants[] = {
      {"cased", {false, -1}}, {"lower_keep_accents", {true, 0}}, {"cased_strip_accents", {false, 1}}};
  for (const auto& [name, v] : variants) {
    bt::WordPieceOptions o;
    o.lowercase = v.first;
    o.stripAccents = v.second;
    const bt::WordPiece wpv((referenceDir() / "vocab" / "vocab.txt").string(), o);
    compareConfig(wpv, all, name);
  }
}

TEST(WordPiece, HandWorkedExamples) {
  // A tiny vocabulary, ids worked out by hand.
  bt::WordPiece wp({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "pleural", "effusion", "eff", "##us", "##ion", ".",
                    "no", "a", "##b"},
                   {});
  EXPECT_EQ(wp.tokenize("No pleural EFFUSION."), (std::vector<std::string>{"no", "pleural", "effusion", "."}));
  EXPECT_EQ(wp.tokenize("effusionx"), (std::vector<std::string>{"[UNK]"}));  // one unknown piece -> whole word [UNK]
  EXPECT_EQ(wp.tokenize("abbb"), (std::vector<std::string>{"a", "##b", "##b", "##b"}));
  EXPECT_EQ(wp.tokenize(std::string(100, 'a')), (std::vector<std::string>{"[UNK]"}));  // no "##a"
  EXPECT_EQ(wp.tokenize("a" + std::string(99, 'b')).size(), 100u);
  EXPECT_EQ(wp.tokenize("a" + std::string(100, 'b')), (std::vector<std::string>{"[UNK]"}));  // > 100 characters
  EXPECT_EQ(wp.tokenize("no[MASK]."), (std::vector<std::string>{"no", "[MASK]", "."}));
  const bt::Encoding e = wp.encode("no effusion", {6, true, bt::Padding::MaxLength, true});
  EXPECT_EQ(e.ids, (std::vector<int>{2, 11, 6, 3, 0, 0}));
  EXPECT_EQ(e.attentionMask, (std::vector<int>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(e.specialMask, (std::vector<int>{1, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.length(), 4);
  // Entity char span -> token positions: "effusion" is bytes [3, 11) of "no effusion".
  EXPECT_EQ(bt::tokensForSpan(e, 3, 11), (std::vector<int>{2}));
  const bt::Encoding sub = wp.encode("no effus");  // eff ##us
  EXPECT_EQ(sub.ids, (std::vector<int>{2, 11, 7, 8, 3}));
  EXPECT_EQ(bt::tokensForSpan(sub, 3, 8), (std::vector<int>{2, 3}));
  EXPECT_EQ(bt::tokensForSpan(sub, 0, 2), (std::vector<int>{1}));
  EXPECT_EQ(wp.decode(sub.ids), "no effus");
  EXPECT_EQ(wp.decode(sub.ids, false), "[CLS] no effus [SEP]");
  EXPECT_THROW(wp.decode({99}), biud::ValueError);
}

TEST(WordPiece, ConfigJsonAndErrors) {
  biud::test::TempDir dir("wpcfg");
  biud::test::writeText(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
  biud::test::writeText(dir / "tokenizer_config.json",
                        R"({"do_lower_case": false, "model_max_length": 1e30, "unk_token": {"content": "[UNK]"}})");
  const bt::WordPiece wp((dir / "vocab.txt").string());
  EXPECT_FALSE(wp.options().lowercase);
  EXPECT_EQ(wp.options().modelMaxLength, 0);
  EXPECT_EQ(wp.tokenize("hello Hello"), (std::vector<std::string>{"hello", "[UNK]"}));
  biud::test::writeText(dir / "tokenizer_config.json", R"({"do_lower_case": "yes"})");
  try {
    bt::WordPiece bad((dir / "vocab.txt").string());
    FAIL() << "expected an error";
  } catch (const biud::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("do_lower_case"), std::string::npos) << e.what();
  }
  EXPECT_THROW(bt::WordPiece((dir / "missing.txt").string()), biud::IoError);
  EXPECT_THROW(bt::WordPiece(std::vector<std::string>{"a", "b"}, {}), biud::DataError);  // no [UNK]
}

TEST(WordPiece, TrainedVocabularyCoversCorpus) {
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("No pleural effusion. Small right pleural effusion " + std::to_string(i % 7) +
                    " mm. Cardiomegaly.");
  bt::WordPieceTrainOptions o;
  o.vocabSize = 60;
  const auto vocab = bt::trainWordPieceVocab(texts, o);
  EXPECT_LE(vocab.size(), 60u);
  EXPECT_EQ(vocab[0], "[PAD]");
  EXPECT_EQ(vocab[1], "[UNK]");
  EXPECT_EQ(bt::trainWordPieceVocab(texts, o), vocab);  // deterministic
  const bt::WordPiece wp(vocab, o.normalization);
  int unk = 0, n = 0;
  for (const auto& t : texts)
    for (const auto& tok : wp.tokenize(t)) unk += tok == "[UNK]", ++n;
  EXPECT_EQ(unk, 0);
  // The most frequent words become whole tokens once there is room.
  EXPECT_GE(wp.tokenToId("pleural"), 0);
  EXPECT_GE(wp.tokenToId("effusion"), 0);
}

TEST(Utf8, DecodesAndRejectsMalformed) {
  std::size_t i = 0;
  const std::string s = "a\xC3\xA9\xF0\x9F\x98\x80";
  EXPECT_EQ(bt::utf8::next(s, i), U'a');
  EXPECT_EQ(bt::utf8::next(s, i), U'\u00e9');
  EXPECT_EQ(bt::utf8::next(s, i), U'\U0001F600');
  EXPECT_EQ(i, s.size());
  const std::string bad = "\xC3";  // truncated
  i = 0;
  EXPECT_EQ(bt::utf8::next(bad, i), 0xFFFDu);
  EXPECT_EQ(i, 1u);
  EXPECT_FALSE(bt::utf8::valid("\xC0\x80"));  // overlong NUL
  EXPECT_TRUE(bt::utf8::valid(s));
  std::string out;
  bt::utf8::append(out, 0x1F600);
  EXPECT_EQ(out, "\xF0\x9F\x98\x80");
}

TEST(Tokenizer, MakeFromTextConfig) {
  biud::TextConfig cfg;
  EXPECT_THROW(bt::makeTokenizer(cfg), biud::ConfigError);  // wordpiece without text.vocab
  biud::test::TempDir dir("mk");
  biud::test::writeText(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
  cfg.vocab = (dir / "vocab.txt").string();
  cfg.lowercase = false;
  const auto tok = bt::makeTokenizer(cfg);
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->tokenize("hello Hello"), (std::vector<std::string>{"hello", "[UNK]"}));  // text.lowercase=false
  bt::EncodeOptions o;
  o.padding = bt::Padding::Longest;
  const auto batch = tok->encodeBatch({"hello", "hello hello hello"}, o);
  EXPECT_EQ(batch[0].ids, (std::vector<int>{2, 5, 3, 0, 0}));
  EXPECT_EQ(batch[0].attentionMask, (std::vector<int>{1, 1, 1, 0, 0}));
  EXPECT_EQ(batch[1].ids, (std::vector<int>{2, 5, 5, 5, 3}));
  cfg.tokenizer = "spm";
  EXPECT_THROW(bt::makeTokenizer(cfg), biud::ConfigError);  // spm without text.spm_model
}
