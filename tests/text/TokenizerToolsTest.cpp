// text/TokenizerTools.h (what biud-tokenizer does), called in-process: a trained WordPiece
// folder loaded by HF transformers' AutoTokenizer encodes like ours, and vocabulary/corpus
// statistics, JSON lines, line splitting and label counts against values worked out by hand.
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "biud/config/EvalConfig.h"
#include "biud/core/Error.h"
#include "biud/text/Entities.h"
#include "biud/text/TokenizerTools.h"
#include "biud/text/WordPiece.h"
#include "common/TestUtil.h"

namespace bt = biud::text;
using biud::test::quote;
using biud::test::TempDir;
using nlohmann::json;

namespace {

/// [PAD] [UNK] [CLS] [SEP] [MASK] (0-4), "." (5), no (6), effusion (7), ##s (8), a (9).
std::string tinyVocab(const TempDir& d) {
  return biud::test::writeTinyVocab(d / "tiny" / "vocab.txt", {"no", "effusion", "##s", "a"});
}

}  // namespace

TEST(TokenizerTools, SplitTextLinesKeepsEmptyLinesAndDropsCr) {
  EXPECT_EQ(bt::splitTextLines("a\r\n\nb"), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(bt::splitTextLines("a\n"), (std::vector<std::string>{"a"}));
  EXPECT_EQ(bt::splitTextLines("\n\n"), (std::vector<std::string>{"", ""}));
  EXPECT_TRUE(bt::splitTextLines("").empty());
}

TEST(TokenizerTools, OpenTokenizerFromFlagsOrConfig) {
  TempDir d("toktools-open");
  const std::string vocab = tinyVocab(d);
  EXPECT_EQ(bt::openTokenizer({vocab, "", false})->vocabSize(), 10);
  EXPECT_THROW(bt::openTokenizer({}), biud::ConfigError);                         // neither
  EXPECT_THROW(bt::openTokenizer({vocab, "m.model", false}), biud::ConfigError);  // both
  biud::TextConfig cfg;
  EXPECT_THROW(bt::openTokenizer({}, &cfg), biud::ConfigError);  // the config names no vocab either
  cfg.vocab = vocab;
  const auto tok = bt::openTokenizer({}, &cfg);
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->vocabSize(), 10);
}

TEST(TokenizerTools, EncodingJsonLineByHand) {
  TempDir d("toktools-enc");
  const auto tok = bt::openTokenizer({tinyVocab(d), "", false});
  bt::EncodeLineOptions o;
  EXPECT_EQ(bt::encodingJsonLine(*tok, "No effusions.", o), R"({"attention_mask":[1,1,1,1,1,1],"ids":[2,6,7,8,5,3]})");
  o.tokens = o.typeIds = true;
  o.encode.maxLength = 4;
  const json j = json::parse(bt::encodingJsonLine(*tok, "No effusions.", o));
  EXPECT_EQ(j["ids"], json({2, 6, 7, 3}));  // truncated to 4 with [SEP] kept
  EXPECT_EQ(j["tokens"], json({"[CLS]", "no", "effusion", "[SEP]"}));
  EXPECT_EQ(j["token_type_ids"], json({0, 0, 0, 0}));
}

TEST(TokenizerTools, InspectCountsByHand) {
  TempDir d("toktools-inspect");
  const auto tok = bt::openTokenizer({tinyVocab(d), "", false});
  const std::vector<std::string> corpus = {"no effusion.", "a zebra"};
  const auto j = bt::inspectTokenizer(*tok, &corpus, 4);
  EXPECT_EQ(j["vocab_size"], 10);
  EXPECT_EQ(j["continuation_pieces"], 1);  // ##s
  EXPECT_EQ(j["single_byte_entries"], 3);  // ".", "s" (of ##s), "a"
  // Bytes per entry: 1 ".", "s", "a"; 2 "no"; 5 [PAD] [UNK] [CLS] [SEP]; 6 [MASK]; 8 "effusion".
  EXPECT_EQ(j["entry_bytes_histogram"], nlohmann::ordered_json({{"1", 3}, {"2", 1}, {"5", 4}, {"6", 1}, {"8", 1}}));
  const auto& c = j["corpus"];
  // [CLS] no effusion . [SEP] = 5 tokens; [CLS] a [UNK] [SEP] = 4 (zebra is unknown).
  EXPECT_EQ(c["texts"], 2);
  EXPECT_EQ(c["tokens"], 9);
  EXPECT_EQ(c["unk_tokens"], 1);
  EXPECT_DOUBLE_EQ(c["unk_rate"].get<double>(), 1.0 / 9.0);
  EXPECT_DOUBLE_EQ(c["bytes_per_token"].get<double>(), 19.0 / 9.0);
  EXPECT_DOUBLE_EQ(c["tokens_per_text_mean"].get<double>(), 4.5);
  EXPECT_EQ(c["tokens_per_text_p50"], 5);
  EXPECT_EQ(c["tokens_per_text_max"], 5);
  EXPECT_EQ(c["truncated_texts"], 1);  // 5 > 4
  EXPECT_DOUBLE_EQ(c["truncated_fraction"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(c["unk_word_rate"].get<double>(), 0.2);  // zebra of no, effusion, ., a, zebra
  EXPECT_FALSE(bt::inspectTokenizer(*tok, nullptr, 4).contains("corpus"));
  // Nearest-rank percentiles.
  EXPECT_EQ(bt::lengthPercentile({5, 1, 3, 2, 4}, 0.5), 3);
  EXPECT_EQ(bt::lengthPercentile({5, 1, 3, 2, 4}, 0.95), 5);
  EXPECT_EQ(bt::lengthPercentile({5, 1, 3, 2, 4}, 0.1), 1);
  EXPECT_EQ(bt::lengthPercentile({}, 0.5), 0);
}

TEST(TokenizerTools, BenchCountsTokensAndBytes) {
  TempDir d("toktools-bench");
  const auto tok = bt::openTokenizer({tinyVocab(d), "", false});
  const json j = bt::benchTokenizer(*tok, {"no effusion.", "a zebra"}, 2, 0);
  EXPECT_EQ(j["texts"], 2);
  EXPECT_EQ(j["bytes"], 19);
  EXPECT_EQ(j["tokens"], 9);
  EXPECT_EQ(j["repeats"], 2);
  EXPECT_NEAR(j["tokens_per_second"].get<double>() * j["seconds_best"].get<double>(), 9.0, 1e-9);
  EXPECT_THROW(bt::benchTokenizer(*tok, {}, 1, 0), biud::DataError);
}

TEST(TokenizerTools, TrainedWordPieceFolderLoadsInTransformers) {
  TempDir d("toktools-train");
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) {
    texts.push_back("No pleural effusion. Small nodule in the Right upper lobe, stable since " +
                    std::to_string(2000 + i) + ".");
    texts.push_back("Mild cardiomegaly; the lungs are clear. Emphysema is unchanged.");
  }
  int calls = 0;
  // No texts: an error before the folder is made.
  EXPECT_THROW(bt::trainTokenizer({},
                                  [&] {
                                    ++calls;
                                    return d.str();
                                  },
                                  {}),
               biud::DataError);
  EXPECT_EQ(calls, 0);
  bt::TokenizerTrainOptions o;
  o.kind = "wordpiece";
  o.vocabSize = 120;
  const json s = bt::trainTokenizer(
      texts,
      [&] {
        ++calls;
        return (d / "uncased").string();
      },
      o);
  o.cased = true;
  bt::trainTokenizer(
      texts,
      [&] {
        ++calls;
        return (d / "cased").string();
      },
      o);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(s["texts"], 80);
  EXPECT_EQ(s["kind"], "wordpiece");
  EXPECT_EQ(s["vocab_size"].get<std::size_t>(),
            bt::splitTextLines(biud::test::readText(d / "uncased" / "vocab.txt")).size());
  EXPECT_EQ(json::parse(biud::test::readText(d / "uncased" / "biud-tokenizer.json"))["vocab_size"], s["vocab_size"]);
  const std::string lines = "No pleural effusion.\nSMALL Nodule, stable since 2019.\nUnseen wordz!\n";
  biud::test::writeText(d / "in.txt", lines);
  const std::string out = biud::test::runPython(
      "text_hf_folder.py",
      quote((d / "in.txt").string()) + " " + quote((d / "uncased").string()) + " " + quote((d / "cased").string()));
  std::istringstream hf(out);
  std::string row;
  int folders = 0;
  while (std::getline(hf, row)) {
    if (row.empty() || row[0] != '{') continue;
    const json h = json::parse(row);
    EXPECT_EQ(h["class"], "BertTokenizer");
    const bt::WordPiece ours((std::filesystem::path(h["dir"].get<std::string>()) / "vocab.txt").string());
    const auto in = bt::splitTextLines(lines);
    ASSERT_EQ(h["ids"].size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i)
      EXPECT_EQ(json(ours.encode(in[i]).ids), h["ids"][i]) << h["dir"] << ": " << in[i];
    ++folders;
  }
  EXPECT_EQ(folders, 2);
  // The cased folder keeps case (HF reads do_lower_case false), so it encodes differently.
  const bt::WordPiece cased((d / "cased" / "vocab.txt").string()), uncased((d / "uncased" / "vocab.txt").string());
  EXPECT_NE(cased.encode("SMALL Nodule").ids, uncased.encode("SMALL Nodule").ids);
}

TEST(TokenizerTools, ExtractWritesOneLinePerReportAndCounts) {
  TempDir d("toktools-extract");
  const bt::EntityExtractor ex(
      bt::Lexicon::load((biud::test::sourceDir() / "configs/lexicon/synthetic.yaml").string()));
  const std::vector<std::string> texts = {"Small left pleural effusion.", "No pleural effusion.",
                                          "Possible pleural effusion.", "The heart is normal."};
  std::vector<std::map<std::string, int>> counts;
  ASSERT_EQ(bt::extractLabels(ex, texts, (d / "labels.jsonl").string(), &counts), 0);
  const auto lines = bt::splitTextLines(biud::test::readText(d / "labels.jsonl"));
  ASSERT_EQ(lines.size(), 4u);
  for (std::size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(lines[i], ex.toJson(ex.extract(texts[i])));
  std::size_t pe = 0;
  while (ex.lexicon().findings[pe].id != "pleural_effusion") ++pe;
  EXPECT_EQ(counts[pe]["present"], 1);
  EXPECT_EQ(counts[pe]["absent"], 1);
  EXPECT_EQ(counts[pe]["uncertain"], 1);
  EXPECT_EQ(counts[pe]["not_mentioned"], 1);
}
