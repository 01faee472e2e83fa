// biud-tokenizer: train, apply and inspect the report tokenizers (HF-compatible WordPiece and
// SentencePiece), benchmark WordPiece, and extract lexicon labels from reports.
// Flags only: the work is text/TokenizerTools.h.
#include <filesystem>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/text/Entities.h"
#include "biud/text/TokenizerTools.h"

namespace bt = biud::text;

namespace {

struct Opts {
  std::vector<std::string> inputs, columns;
  std::string output, lexicon;
  bt::TokenizerSource source;
  bt::TokenizerTrainOptions train;
  bt::EncodeLineOptions encode;
  int maxLength = 0, repeat = 3;
  bool pad = false, noSpecial = false;
};

}  // namespace

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-tokenizer",
      "Report tokenizers and labels.\n"
      "  train    learn a SentencePiece (unigram/bpe) model or a WordPiece vocab.txt from reports\n"
      "  encode   texts (one per line) -> JSON lines with ids and attention_mask, special tokens as HF adds them\n"
      "  inspect  vocabulary statistics and, with --input, corpus coverage (UNK rate, lengths, truncation)\n"
      "  bench    WordPiece/SentencePiece encoding speed on a file (tokens/second, one thread)\n"
      "  extract  lexicon labels per report (present/absent/uncertain/not mentioned) and entity spans as JSON lines");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kManifest | biud::app::kSeed);
  auto& cli = app.cli();
  cli.require_subcommand(1, 1);
  Opts o;
  auto addTok = [&](CLI::App* s) {
    s->add_option(
        "--vocab", o.source.vocab,
        "WordPiece vocab.txt (tokenizer_config.json next to it is read when present); without --vocab and --spm: "
        "the config's text.vocab or text.spm_model (per text.tokenizer)");
    s->add_option("--spm", o.source.spm, "SentencePiece .model file");
    s->add_flag("--cased", o.source.cased,
                "WordPiece without tokenizer_config.json: keep case and accents (default: BERT uncased)");
  };
  auto addInput = [&](CLI::App* s, const char* what) {
    s->add_option("-i,--input", o.inputs, what);
    s->add_option("--column", o.columns,
                  "CSV/JSONL column(s) holding the text (default: report/text, else findings + impression)");
  };
  CLI::App* train = cli.add_subcommand("train", "learn a tokenizer from reports");
  addInput(train, "corpus files: text (one report per line), CSV or JSONL manifests (repeatable)");
  train->add_option("--kind", o.train.kind, "unigram | bpe (SentencePiece) | wordpiece (BERT vocab.txt)")
      ->check(CLI::IsMember({"unigram", "bpe", "wordpiece"}));
  train->add_option("--vocab-size", o.train.vocabSize, "vocabulary size (SentencePiece: soft limit on small corpora)")
      ->check(CLI::Range(16, 1000000));
  train->add_option("--model-prefix", o.train.prefix,
                    "SentencePiece file name prefix in --out (<prefix>.model, <prefix>.vocab)");
  train->add_option("--min-frequency", o.train.minFrequency, "WordPiece: least pair frequency to merge")
      ->check(CLI::Range(1, 1000000));
  train->add_option("--character-coverage", o.train.coverage, "SentencePiece character coverage")
      ->check(CLI::Range(0.9, 1.0));
  train->add_flag("--cased", o.train.cased, "keep case (default: lower-case)");
  CLI::App* encode = cli.add_subcommand("encode", "encode texts, one per line, to JSON lines");
  addTok(encode);
  encode->add_option("-i,--input", o.inputs, "text file, one text per line (default: stdin)");
  encode->add_option("--output", o.output, "JSON lines file (default: stdout); written atomically");
  encode->add_option("--max-length", o.maxLength, "truncate to N tokens including special tokens (0 = no limit)")
      ->check(CLI::Range(0, 1 << 20));
  encode->add_flag("--pad", o.pad, "pad to --max-length with [PAD] (attention_mask 0)");
  encode->add_flag("--no-special", o.noSpecial, "do not add [CLS]/[SEP] (<s>/</s>)");
  encode->add_flag("--type-ids", o.encode.typeIds, "also write token_type_ids");
  encode->add_flag("--offsets", o.encode.offsets, "also write UTF-8 byte offsets of each token (WordPiece)");
  encode->add_flag("--tokens", o.encode.tokens, "also write the token strings");
  CLI::App* inspect = cli.add_subcommand("inspect", "vocabulary statistics and corpus coverage");
  addTok(inspect);
  addInput(inspect, "corpus to measure coverage on: text lines, CSV or JSONL (repeatable)");
  inspect->add_option("--max-length", o.maxLength,
                      "length for the truncation statistics (default: text.max_length = 128)");
  inspect->add_option("--output", o.output, "JSON file (default: stdout)");
  CLI::App* bench = cli.add_subcommand("bench", "encoding speed on a file, one thread");
  addTok(bench);
  bench->add_option("-i,--input", o.inputs, "text file, one text per line")->required();
  bench->add_option("--repeat", o.repeat, "timed passes over the file; the fastest counts")->check(CLI::Range(1, 1000));
  bench->add_option("--max-length", o.maxLength, "truncate to N tokens (0 = no limit)");
  bench->add_option("--output", o.output, "JSON file (default: stdout)");
  CLI::App* extract = cli.add_subcommand("extract", "lexicon labels and entities per report");
  addInput(extract, "reports: text (one per line), CSV or JSONL (repeatable)");
  extract->add_option(
      "--lexicon", o.lexicon,
      "lexicon YAML, e.g. configs/lexicon/ct_rate.yaml (default: text.lexicon = configs/lexicon/synthetic.yaml)");
  extract->add_option("--output", o.output, "JSON lines file (default: stdout)");
  // Common flags (--out, --manifest, --config, --set, --seed, -q) may also follow the subcommand.
  for (CLI::App* s : {train, encode, inspect, bench, extract}) s->fallthrough();
  return app.run(argc, argv, [&] {
    const auto& cfg = app.config();
    auto inputs = [&] {
      std::vector<std::string> files = o.inputs;
      if (!app.manifest().empty()) files.push_back(app.manifest());
      return files;
    };
    if (train->parsed()) {
      o.train.seed = static_cast<int>(cfg.seed);
      bt::trainTokenizer(
          bt::readCorpora(inputs(), o.columns), [&] { return app.prepareOutDir("tokenizer"); }, o.train);
      return 0;
    }
    if (extract->parsed()) {
      const std::string lexicon = o.lexicon.empty() ? cfg.text.lexicon : o.lexicon;
      BIUD_CHECK(!lexicon.empty(), biud::ConfigError,
                 "--lexicon FILE is required (e.g. configs/lexicon/synthetic.yaml)");
      const bt::EntityExtractor ex(bt::Lexicon::load(lexicon));
      return bt::extractLabels(ex, bt::readCorpora(inputs(), o.columns), o.output);
    }
    const auto tok = bt::openTokenizer(o.source, &cfg.text);
    if (encode->parsed()) {
      o.encode.encode.maxLength = o.maxLength;
      o.encode.encode.padding = o.pad ? bt::Padding::MaxLength : bt::Padding::None;
      o.encode.encode.addSpecialTokens = !o.noSpecial;
      return bt::encodeLines(*tok, bt::readTextLines(o.inputs.empty() ? "-" : o.inputs.front()), o.encode, o.output);
    }
    if (bench->parsed()) {
      const auto lines = bt::readTextLines(o.inputs.empty() ? "-" : o.inputs.front());
      bt::writeOutput(o.output, bt::benchTokenizer(*tok, lines, o.repeat, o.maxLength).dump() + "\n");
      return 0;
    }
    if (inspect->parsed()) {
      std::vector<std::string> corpus;
      const bool withCorpus = !o.inputs.empty() || !app.manifest().empty();
      if (withCorpus) corpus = bt::readCorpora(inputs(), o.columns);
      const int maxLength = o.maxLength > 0 ? o.maxLength : cfg.text.max_length;
      const std::string text = bt::inspectTokenizer(*tok, withCorpus ? &corpus : nullptr, maxLength).dump(2) + "\n";
      if (app.outGiven())
        biud::fs::atomicWrite(std::filesystem::path(app.prepareOutDir("inspect")) / "biud-tokenizer.json", text);
      bt::writeOutput(o.output, text);
      return 0;
    }
    return biud::app::kExitUsage;
  });
}
