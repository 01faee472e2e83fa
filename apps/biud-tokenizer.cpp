// biud-tokenizer: train, apply and inspect the report tokenizers (HF-compatible WordPiece and
// SentencePiece), benchmark WordPiece, and extract lexicon labels from reports.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "biud/core/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/text/Corpus.h"
#include "biud/text/Entities.h"
#include "biud/text/SpmTokenizer.h"
#include "biud/text/WordPiece.h"

namespace bt = biud::text;
using nlohmann::json;

namespace {

struct Opts {
  std::vector<std::string> inputs, columns;
  std::string kind = "unigram", vocab, spm, output, lexicon, prefix = "tokenizer";
  int vocabSize = 8000, maxLength = 0, minFrequency = 2, repeat = 3, seed = 0;
  double coverage = 1.0;
  bool cased = false, pad = false, noSpecial = false, offsets = false, tokens = false, typeIds = false;
};

std::unique_ptr<bt::Tokenizer> openTokenizer(const Opts& o) {
  BIUD_CHECK(o.vocab.empty() != o.spm.empty(), biud::ConfigError, "give exactly one of --vocab vocab.txt or --spm model");
  if (!o.spm.empty()) return std::make_unique<bt::SpmTokenizer>(o.spm);
  if (o.cased) {
    bt::WordPieceOptions w;
    w.lowercase = false;
    return std::make_unique<bt::WordPiece>(o.vocab, w);
  }
  return std::make_unique<bt::WordPiece>(o.vocab);
}

std::vector<std::string> readInputs(const Opts& o, const std::string& manifest) {
  std::vector<std::string> files = o.inputs;
  if (!manifest.empty()) files.push_back(manifest);
  BIUD_CHECK(!files.empty(), biud::ConfigError, "no input: give --input FILE (text lines, CSV or JSONL) or --manifest FILE");
  bt::CorpusOptions co;
  co.columns = o.columns;
  std::vector<std::string> texts;
  for (const auto& f : files) {
    auto t = bt::readCorpus(f, co);
    biud::log::info("text", "{}: {} texts", f, t.size());
    texts.insert(texts.end(), std::make_move_iterator(t.begin()), std::make_move_iterator(t.end()));
  }
  return texts;
}

/// Lines of a file as they are (encode keeps empty lines so that output line i = input line i).
std::vector<std::string> readLines(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    biud::fs::requireFile(path, "input (one text per line)");
    text = biud::fs::readFile(path);
  }
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string l = text.substr(pos, nl - pos);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    lines.push_back(std::move(l));
    pos = nl + 1;
  }
  return lines;
}

/// Write to a file atomically, or to stdout for "" / "-".
void emit(const std::string& output, const std::string& data) {
  if (output.empty() || output == "-") {
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
  } else {
    biud::fs::atomicWrite(output, data);
  }
}

/// Streams lines to stdout, or to a file written atomically (kept only when commit() is reached).
class LineWriter {
 public:
  explicit LineWriter(const std::string& output) {
    if (!output.empty() && output != "-") file_ = std::make_unique<biud::fs::AtomicFile>(output);
  }
  void write(const std::string& line) {
    if (file_) {
      file_->write(line);
      file_->write("\n");
    } else {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    }
  }
  void commit() {
    if (file_) file_->commit();
    std::fflush(stdout);
  }

 private:
  std::unique_ptr<biud::fs::AtomicFile> file_;
};

int cmdTrain(const Opts& o, biud::app::App& app) {
  const std::vector<std::string> texts = readInputs(o, app.manifest());
  BIUD_CHECK(!texts.empty(), biud::DataError, "the inputs hold no texts");
  const std::string out = app.prepareOutDir("tokenizer");
  json summary = {{"kind", o.kind}, {"texts", texts.size()}, {"vocab_size_requested", o.vocabSize}};
  const auto t0 = std::chrono::steady_clock::now();
  if (o.kind == "wordpiece") {
    bt::WordPieceTrainOptions wo;
    wo.vocabSize = o.vocabSize;
    wo.minFrequency = o.minFrequency;
    wo.normalization.lowercase = !o.cased;
    const auto vocab = bt::trainWordPieceVocab(texts, wo);
    std::string data;
    for (const auto& v : vocab) data += v + "\n";
    const auto vocabPath = std::filesystem::path(out) / "vocab.txt";
    biud::fs::atomicWrite(vocabPath, data);
    const json cfg = {{"do_lower_case", !o.cased}, {"tokenize_chinese_chars", true}, {"strip_accents", nullptr},
                      {"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"}, {"cls_token", "[CLS]"},
                      {"mask_token", "[MASK]"}, {"model_max_length", 512}, {"tokenizer_class", "BertTokenizer"}};
    biud::fs::atomicWrite(std::filesystem::path(out) / "tokenizer_config.json", cfg.dump(2) + "\n");
    summary["vocab"] = vocabPath.string();
    summary["vocab_size"] = vocab.size();
  } else {
    BIUD_CHECK(o.kind == "unigram" || o.kind == "bpe", biud::ConfigError, "--kind `{}` is not one of unigram, bpe, wordpiece", o.kind);
    // SentencePiece reads a file of sentences: one text per line (newlines inside reports become spaces).
    const auto corpus = std::filesystem::path(out) / (o.prefix + ".corpus.txt");
    std::string data;
    for (auto t : texts) {
      std::replace(t.begin(), t.end(), '\n', ' ');
      std::replace(t.begin(), t.end(), '\r', ' ');
      data += t + "\n";
    }
    biud::fs::atomicWrite(corpus, data);
    bt::SpmTrainOptions so;
    so.modelType = o.kind;
    so.vocabSize = o.vocabSize;
    so.characterCoverage = o.coverage;
    so.seed = o.seed;
    so.lowercase = !o.cased;
    const std::string prefix = (std::filesystem::path(out) / o.prefix).string();
    bt::trainSpm(corpus.string(), prefix, so);
    std::filesystem::remove(corpus);
    const bt::SpmTokenizer tok(prefix + ".model");
    summary["model"] = prefix + ".model";
    summary["vocab_size"] = tok.vocabSize();
  }
  summary["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  biud::fs::atomicWrite(std::filesystem::path(out) / "biud-tokenizer.json", summary.dump(2) + "\n");
  biud::log::info("text", "trained {} tokenizer ({} entries) in {}", o.kind, summary["vocab_size"].dump(), out);
  return 0;
}

int cmdEncode(const Opts& o) {
  const auto tok = openTokenizer(o);
  const auto lines = readLines(o.inputs.empty() ? "-" : o.inputs.front());
  bt::EncodeOptions eo;
  eo.maxLength = o.maxLength;
  eo.padding = o.pad ? bt::Padding::MaxLength : bt::Padding::None;
  eo.addSpecialTokens = !o.noSpecial;
  BIUD_CHECK(!o.pad || o.maxLength > 0, biud::ConfigError, "--pad needs --max-length N");
  LineWriter out(o.output);
  biud::Progress prog("encode", lines.size(), "texts");
  for (const auto& l : lines) {
    const bt::Encoding e = tok->encode(l, eo);
    json j;
    j["ids"] = e.ids;
    j["attention_mask"] = e.attentionMask;
    if (o.typeIds) j["token_type_ids"] = e.typeIds;
    if (o.offsets && !e.offsets.empty()) j["offsets"] = e.offsets;
    if (o.tokens) {
      std::vector<std::string> t;
      for (int id : e.ids) t.push_back(tok->idToToken(id));
      j["tokens"] = t;
    }
    out.write(j.dump(-1, ' ', false, json::error_handler_t::replace));
    prog.advance();
    if (biud::app::stopRequested()) return biud::app::kExitInterrupted;
  }
  prog.finish();
  out.commit();
  return 0;
}

double percentile(std::vector<int> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(std::min<double>(v.size() - 1, q * static_cast<double>(v.size() - 1) + 0.5))];
}

int cmdInspect(const Opts& o, biud::app::App& app) {
  const auto tok = openTokenizer(o);
  nlohmann::ordered_json j;
  j["kind"] = tok->kind();
  j["vocab_size"] = tok->vocabSize();
  const auto sp = tok->specialIds();
  j["special_ids"] = {{"pad", sp.pad}, {"unk", sp.unk}, {"cls", sp.cls}, {"sep", sp.sep}, {"mask", sp.mask}};
  int continuation = 0, single = 0;
  std::map<int, int> lengthHist;
  for (int i = 0; i < tok->vocabSize(); ++i) {
    std::string t = tok->idToToken(i);
    if (t.rfind("##", 0) == 0) ++continuation, t = t.substr(2);
    const int n = static_cast<int>(t.size());
    if (n == 1) ++single;
    ++lengthHist[std::min(n, 16)];
  }
  if (tok->kind() == "wordpiece") j["continuation_pieces"] = continuation;
  j["single_byte_entries"] = single;
  nlohmann::ordered_json hist = nlohmann::ordered_json::object();
  for (const auto& [n, c] : lengthHist) hist[n == 16 ? "16+" : std::to_string(n)] = c;
  j["entry_bytes_histogram"] = hist;
  if (!o.inputs.empty() || !app.manifest().empty()) {
    const auto texts = readInputs(o, app.manifest());
    long long tokens = 0, unk = 0, chars = 0, unkWords = 0, words = 0;
    int truncated = 0;
    const int maxLen = o.maxLength > 0 ? o.maxLength : 128;
    std::vector<int> lengths;
    biud::Progress prog("inspect", texts.size(), "texts");
    const auto* wp = dynamic_cast<const bt::WordPiece*>(tok.get());
    for (const auto& t : texts) {
      bt::EncodeOptions eo;
      const bt::Encoding e = tok->encode(t, eo);
      const int n = static_cast<int>(e.ids.size());
      lengths.push_back(n);
      truncated += n > maxLen;
      for (int id : e.ids) unk += id == sp.unk;
      tokens += n;
      chars += static_cast<long long>(t.size());
      if (wp)
        for (const auto& w : wp->preTokenize(t)) {
          ++words;
          const auto pieces = wp->tokenize(w.text);
          unkWords += pieces.size() == 1 && pieces[0] == wp->options().unkToken && w.text != wp->options().unkToken;
        }
      prog.advance();
    }
    prog.finish();
    j["corpus"] = {{"texts", texts.size()},
                   {"tokens", tokens},
                   {"tokens_per_text_mean", texts.empty() ? 0.0 : static_cast<double>(tokens) / static_cast<double>(texts.size())},
                   {"tokens_per_text_p50", percentile(lengths, 0.5)},
                   {"tokens_per_text_p95", percentile(lengths, 0.95)},
                   {"tokens_per_text_max", lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end())},
                   {"bytes_per_token", tokens ? static_cast<double>(chars) / static_cast<double>(tokens) : 0.0},
                   {"unk_tokens", unk},
                   {"unk_rate", tokens ? static_cast<double>(unk) / static_cast<double>(tokens) : 0.0},
                   {"max_length", maxLen},
                   {"truncated_texts", truncated},
                   {"truncated_fraction", texts.empty() ? 0.0 : static_cast<double>(truncated) / static_cast<double>(texts.size())}};
    if (wp) j["corpus"]["unk_word_rate"] = words ? static_cast<double>(unkWords) / static_cast<double>(words) : 0.0;
  }
  const std::string text = j.dump(2) + "\n";
  if (app.outGiven()) {
    const std::string out = app.prepareOutDir("inspect");
    biud::fs::atomicWrite(std::filesystem::path(out) / "biud-tokenizer.json", text);
  }
  emit(o.output, text);
  return 0;
}

int cmdBench(const Opts& o) {
  const auto tok = openTokenizer(o);
  const auto lines = readLines(o.inputs.empty() ? "-" : o.inputs.front());
  BIUD_CHECK(!lines.empty(), biud::DataError, "bench input is empty");
  long long bytes = 0;
  for (const auto& l : lines) bytes += static_cast<long long>(l.size());
  bt::EncodeOptions eo;
  eo.maxLength = o.maxLength;
  double best = 1e30;
  long long tokens = 0;
  for (int r = 0; r < std::max(1, o.repeat); ++r) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& l : lines) tokens += static_cast<long long>(tok->encode(l, eo).ids.size());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const json j = {{"tokenizer", tok->kind()}, {"texts", lines.size()}, {"bytes", bytes}, {"tokens", tokens},
                  {"seconds_best", best}, {"repeats", std::max(1, o.repeat)}, {"threads", 1},
                  {"tokens_per_second", static_cast<double>(tokens) / best}, {"texts_per_second", static_cast<double>(lines.size()) / best},
                  {"mb_per_second", static_cast<double>(bytes) / best / 1e6}};
  emit(o.output, j.dump() + "\n");
  return 0;
}

int cmdExtract(const Opts& o, biud::app::App& app) {
  BIUD_CHECK(!o.lexicon.empty(), biud::ConfigError, "--lexicon FILE is required (e.g. configs/lexicon/synthetic.yaml)");
  const bt::EntityExtractor ex(bt::Lexicon::load(o.lexicon));
  const auto texts = readInputs(o, app.manifest());
  LineWriter out(o.output);
  biud::Progress prog("extract", texts.size(), "reports");
  std::vector<std::map<std::string, int>> counts(ex.lexicon().findings.size());
  for (const auto& t : texts) {
    const auto labels = ex.extract(t);
    out.write(ex.toJson(labels));
    for (std::size_t i = 0; i < labels.status.size(); ++i) ++counts[i][bt::toString(labels.status[i])];
    prog.advance();
    if (biud::app::stopRequested()) return biud::app::kExitInterrupted;
  }
  prog.finish();
  out.commit();
  for (std::size_t i = 0; i < counts.size(); ++i)
    biud::log::info("text", "{:<34} present {:>6}  uncertain {:>6}  absent {:>6}  not mentioned {:>6}", ex.lexicon().findings[i].id,
                    counts[i]["present"], counts[i]["uncertain"], counts[i]["absent"], counts[i]["not_mentioned"]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  biud::app::App app("biud-tokenizer",
                     "Report tokenizers and labels.\n"
                     "  train    learn a SentencePiece (unigram/bpe) model or a WordPiece vocab.txt from reports\n"
                     "  encode   texts (one per line) -> JSON lines with ids and attention_mask, special tokens as HF adds them\n"
                     "  inspect  vocabulary statistics and, with --input, corpus coverage (UNK rate, lengths, truncation)\n"
                     "  bench    WordPiece/SentencePiece encoding speed on a file (tokens/second, one thread)\n"
                     "  extract  lexicon labels per report (present/absent/uncertain/not mentioned) and entity spans as JSON lines");
  app.addCommon(biud::app::kOut | biud::app::kManifest);
  auto& cli = app.cli();
  cli.require_subcommand(1, 1);
  Opts o;
  auto addTok = [&](CLI::App* s) {
    s->add_option("--vocab", o.vocab, "WordPiece vocab.txt (tokenizer_config.json next to it is read when present)");
    s->add_option("--spm", o.spm, "SentencePiece .model file");
    s->add_flag("--cased", o.cased, "WordPiece without tokenizer_config.json: keep case and accents (default: BERT uncased)");
  };
  auto addInput = [&](CLI::App* s, const char* what) {
    s->add_option("-i,--input", o.inputs, what);
    s->add_option("--column", o.columns, "CSV/JSONL column(s) holding the text (default: report/text, else findings + impression)");
  };
  CLI::App* train = cli.add_subcommand("train", "learn a tokenizer from reports");
  addInput(train, "corpus files: text (one report per line), CSV or JSONL manifests (repeatable)");
  train->add_option("--kind", o.kind, "unigram | bpe (SentencePiece) | wordpiece (BERT vocab.txt)")->check(CLI::IsMember({"unigram", "bpe", "wordpiece"}));
  train->add_option("--vocab-size", o.vocabSize, "vocabulary size (SentencePiece: soft limit on small corpora)")->check(CLI::Range(16, 1000000));
  train->add_option("--prefix", o.prefix, "SentencePiece file name prefix in --out (<prefix>.model, <prefix>.vocab)");
  train->add_option("--min-frequency", o.minFrequency, "WordPiece: least pair frequency to merge")->check(CLI::Range(1, 1000000));
  train->add_option("--character-coverage", o.coverage, "SentencePiece character coverage")->check(CLI::Range(0.9, 1.0));
  train->add_option("--seed", o.seed, "SentencePiece random seed (training is reproducible for a fixed seed)");
  train->add_flag("--cased", o.cased, "keep case (default: lower-case)");
  CLI::App* encode = cli.add_subcommand("encode", "encode texts, one per line, to JSON lines");
  addTok(encode);
  encode->add_option("-i,--input", o.inputs, "text file, one text per line (default: stdin)");
  encode->add_option("--output", o.output, "JSON lines file (default: stdout); written atomically");
  encode->add_option("--max-length", o.maxLength, "truncate to N tokens including special tokens (0 = no limit)")->check(CLI::Range(0, 1 << 20));
  encode->add_flag("--pad", o.pad, "pad to --max-length with [PAD] (attention_mask 0)");
  encode->add_flag("--no-special", o.noSpecial, "do not add [CLS]/[SEP] (<s>/</s>)");
  encode->add_flag("--type-ids", o.typeIds, "also write token_type_ids");
  encode->add_flag("--offsets", o.offsets, "also write UTF-8 byte offsets of each token (WordPiece)");
  encode->add_flag("--tokens", o.tokens, "also write the token strings");
  CLI::App* inspect = cli.add_subcommand("inspect", "vocabulary statistics and corpus coverage");
  addTok(inspect);
  addInput(inspect, "corpus to measure coverage on: text lines, CSV or JSONL (repeatable)");
  inspect->add_option("--max-length", o.maxLength, "length for the truncation statistics (default 128)");
  inspect->add_option("--output", o.output, "JSON file (default: stdout)");
  CLI::App* bench = cli.add_subcommand("bench", "encoding speed on a file, one thread");
  addTok(bench);
  bench->add_option("-i,--input", o.inputs, "text file, one text per line")->required();
  bench->add_option("--repeat", o.repeat, "timed passes over the file; the fastest counts")->check(CLI::Range(1, 1000));
  bench->add_option("--max-length", o.maxLength, "truncate to N tokens (0 = no limit)");
  bench->add_option("--output", o.output, "JSON file (default: stdout)");
  CLI::App* extract = cli.add_subcommand("extract", "lexicon labels and entities per report");
  addInput(extract, "reports: text (one per line), CSV or JSONL (repeatable)");
  extract->add_option("--lexicon", o.lexicon, "lexicon YAML (configs/lexicon/synthetic.yaml, configs/lexicon/ct_rate.yaml)")->required();
  extract->add_option("--output", o.output, "JSON lines file (default: stdout)");
  // Common flags (--out, --manifest, -q) may also follow the subcommand.
  for (CLI::App* s : {train, encode, inspect, bench, extract}) s->fallthrough();
  return app.run(argc, argv, [&] {
    if (train->parsed()) return cmdTrain(o, app);
    if (encode->parsed()) return cmdEncode(o);
    if (inspect->parsed()) return cmdInspect(o, app);
    if (bench->parsed()) return cmdBench(o);
    if (extract->parsed()) return cmdExtract(o, app);
    return biud::app::kExitUsage;
  });
}
