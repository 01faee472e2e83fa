#include "biud/text/TokenizerTools.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>

#include "biud/config/EvalConfig.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/text/Corpus.h"
#include "biud/text/SpmTokenizer.h"
#include "biud/text/WordPiece.h"

namespace biud::text {

namespace stdfs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Tokenizer> openTokenizer(const TokenizerSource& o, const TextConfig* fallback) {
  if (o.vocab.empty() && o.spm.empty() && fallback &&
      !(fallback->tokenizer == "spm" ? fallback->spm_model : fallback->vocab).empty())
    return makeTokenizer(*fallback);
  BIUD_CHECK(
      o.vocab.empty() != o.spm.empty(), ConfigError,
      "give exactly one of --vocab vocab.txt or --spm model (or --config/--set with text.vocab or text.spm_model)");
  if (!o.spm.empty()) return std::make_unique<SpmTokenizer>(o.spm);
  if (o.cased) {
    WordPieceOptions w;
    w.lowercase = false;
    return std::make_unique<WordPiece>(o.vocab, w);
  }
  return std::make_unique<WordPiece>(o.vocab);
}

std::vector<std::string> readCorpora(const std::vector<std::string>& files, const std::vector<std::string>& columns) {
  BIUD_CHECK(!files.empty(), ConfigError, "no input: give --input FILE (text lines, CSV or JSONL) or --manifest FILE");
  CorpusOptions co;
  co.columns = columns;
  std::vector<std::string> texts;
  for (const auto& f : files) {
    auto t = readCorpus(f, co);
    log::info("text", "{}: {} texts", f, t.size());
    texts.insert(texts.end(), std::make_move_iterator(t.begin()), std::make_move_iterator(t.end()));
  }
  return texts;
}

std::vector<std::string> splitTextLines(const std::string& text) {
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

std::vector<std::string> readTextLines(const std::string& path) {
  if (path == "-")
    return splitTextLines(std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()));
  fs::requireFile(path, "input (one text per line)");
  return splitTextLines(fs::readFile(path));
}

void writeOutput(const std::string& output, const std::string& data) {
  if (output.empty() || output == "-") {
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
  } else {
    fs::atomicWrite(output, data);
  }
}

LineWriter::LineWriter(const std::string& output) {
  if (!output.empty() && output != "-") file_ = std::make_unique<fs::AtomicFile>(output);
}
LineWriter::~LineWriter() = default;

void LineWriter::write(const std::string& line) {
  if (file_) {
    file_->write(line);
    file_->write("\n");
  } else {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  }
}

void LineWriter::commit() {
  if (file_) file_->commit();
  std::fflush(stdout);
}

json trainTokenizer(const std::vector<std::string>& texts, const std::function<std::string()>& outDir,
                    const TokenizerTrainOptions& o) {
  BIUD_CHECK(!texts.empty(), DataError, "the inputs hold no texts");
  BIUD_CHECK(o.kind == "unigram" || o.kind == "bpe" || o.kind == "wordpiece", ConfigError,
             "--kind `{}` is not one of unigram, bpe, wordpiece", o.kind);
  const stdfs::path out = outDir();
  json summary = {{"kind", o.kind}, {"texts", texts.size()}, {"vocab_size_requested", o.vocabSize}};
  const auto t0 = std::chrono::steady_clock::now();
  if (o.kind == "wordpiece") {
    WordPieceTrainOptions wo;
    wo.vocabSize = o.vocabSize;
    wo.minFrequency = o.minFrequency;
    wo.normalization.lowercase = !o.cased;
    const auto vocab = trainWordPieceVocab(texts, wo);
    std::string data;
    for (const auto& v : vocab) data += v + "\n";
    const auto vocabPath = out / "vocab.txt";
    fs::atomicWrite(vocabPath, data);
    const json cfg = {{"do_lower_case", !o.cased}, {"tokenize_chinese_chars", true},
                      {"strip_accents", nullptr},  {"unk_token", "[UNK]"},
                      {"sep_token", "[SEP]"},      {"pad_token", "[PAD]"},
                      {"cls_token", "[CLS]"},      {"mask_token", "[MASK]"},
                      {"model_max_length", 512},   {"tokenizer_class", "BertTokenizer"}};
    fs::atomicWrite(out / "tokenizer_config.json", cfg.dump(2) + "\n");
    summary["vocab"] = vocabPath.string();
    summary["vocab_size"] = vocab.size();
  } else {
    // SentencePiece reads a file of sentences: one text per line (newlines inside reports become spaces).
    const auto corpus = out / (o.prefix + ".corpus.txt");
    std::string data;
    for (auto t : texts) {
      std::replace(t.begin(), t.end(), '\n', ' ');
      std::replace(t.begin(), t.end(), '\r', ' ');
      data += t + "\n";
    }
    fs::atomicWrite(corpus, data);
    SpmTrainOptions so;
    so.modelType = o.kind;
    so.vocabSize = o.vocabSize;
    so.characterCoverage = o.coverage;
    so.seed = o.seed;
    so.lowercase = !o.cased;
    const std::string prefix = (out / o.prefix).string();
    trainSpm(corpus.string(), prefix, so);
    stdfs::remove(corpus);
    const SpmTokenizer tok(prefix + ".model");
    summary["model"] = prefix + ".model";
    summary["vocab_size"] = tok.vocabSize();
  }
  summary["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::atomicWrite(out / "biud-tokenizer.json", summary.dump(2) + "\n");
  log::info("text", "trained {} tokenizer ({} entries) in {}", o.kind, summary["vocab_size"].dump(), out.string());
  return summary;
}

std::string encodingJsonLine(const Tokenizer& tok, const std::string& text, const EncodeLineOptions& o) {
  const Encoding e = tok.encode(text, o.encode);
  json j;
  j["ids"] = e.ids;
  j["attention_mask"] = e.attentionMask;
  if (o.typeIds) j["token_type_ids"] = e.typeIds;
  if (o.offsets && !e.offsets.empty()) j["offsets"] = e.offsets;
  if (o.tokens) {
    std::vector<std::string> t;
    for (int id : e.ids) t.push_back(tok.idToToken(id));
    j["tokens"] = t;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int encodeLines(const Tokenizer& tok, const std::vector<std::string>& lines, const EncodeLineOptions& o,
                const std::string& output) {
  BIUD_CHECK(o.encode.padding != Padding::MaxLength || o.encode.maxLength > 0, ConfigError,
             "--pad needs --max-length N");
  LineWriter out(output);
  Progress prog("encode", lines.size(), "texts");
  for (const auto& l : lines) {
    out.write(encodingJsonLine(tok, l, o));
    prog.advance();
    if (app::stopRequested()) return app::kExitInterrupted;
  }
  prog.finish();
  out.commit();
  return 0;
}

double lengthPercentile(std::vector<int> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(
      std::min<double>(static_cast<double>(v.size() - 1), q * static_cast<double>(v.size() - 1) + 0.5))];
}

nlohmann::ordered_json inspectTokenizer(const Tokenizer& tok, const std::vector<std::string>* corpus, int maxLen) {
  nlohmann::ordered_json j;
  j["kind"] = tok.kind();
  j["vocab_size"] = tok.vocabSize();
  const auto sp = tok.specialIds();
  j["special_ids"] = {{"pad", sp.pad}, {"unk", sp.unk}, {"cls", sp.cls}, {"sep", sp.sep}, {"mask", sp.mask}};
  int continuation = 0, single = 0;
  std::map<int, int> lengthHist;
  for (int i = 0; i < tok.vocabSize(); ++i) {
    std::string t = tok.idToToken(i);
    if (t.rfind("##", 0) == 0) ++continuation, t = t.substr(2);
    const int n = static_cast<int>(t.size());
    if (n == 1) ++single;
    ++lengthHist[std::min(n, 16)];
  }
  if (tok.kind() == "wordpiece") j["continuation_pieces"] = continuation;
  j["single_byte_entries"] = single;
  nlohmann::ordered_json hist = nlohmann::ordered_json::object();
  for (const auto& [n, c] : lengthHist) hist[n == 16 ? "16+" : std::to_string(n)] = c;
  j["entry_bytes_histogram"] = hist;
  if (!corpus) return j;
  const auto& texts = *corpus;
  long long tokens = 0, unk = 0, chars = 0, unkWords = 0, words = 0;
  int truncated = 0;
  std::vector<int> lengths;
  Progress prog("inspect", texts.size(), "texts");
  const auto* wp = dynamic_cast<const WordPiece*>(&tok);
  for (const auto& t : texts) {
    const Encoding e = tok.encode(t, EncodeOptions{});
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
  const double nTexts = static_cast<double>(texts.size());
  j["corpus"] = {{"texts", texts.size()},
                 {"tokens", tokens},
                 {"tokens_per_text_mean", texts.empty() ? 0.0 : static_cast<double>(tokens) / nTexts},
                 {"tokens_per_text_p50", lengthPercentile(lengths, 0.5)},
                 {"tokens_per_text_p95", lengthPercentile(lengths, 0.95)},
                 {"tokens_per_text_max", lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end())},
                 {"bytes_per_token", tokens ? static_cast<double>(chars) / static_cast<double>(tokens) : 0.0},
                 {"unk_tokens", unk},
                 {"unk_rate", tokens ? static_cast<double>(unk) / static_cast<double>(tokens) : 0.0},
                 {"max_length", maxLen},
                 {"truncated_texts", truncated},
                 {"truncated_fraction", texts.empty() ? 0.0 : static_cast<double>(truncated) / nTexts}};
  if (wp) j["corpus"]["unk_word_rate"] = words ? static_cast<double>(unkWords) / static_cast<double>(words) : 0.0;
  return j;
}

json benchTokenizer(const Tokenizer& tok, const std::vector<std::string>& lines, int repeat, int maxLength) {
  BIUD_CHECK(!lines.empty(), DataError, "bench input is empty");
  long long bytes = 0;
  for (const auto& l : lines) bytes += static_cast<long long>(l.size());
  EncodeOptions eo;
  eo.maxLength = maxLength;
  double best = 1e30;
  long long tokens = 0;
  const int passes = std::max(1, repeat);
  for (int r = 0; r < passes; ++r) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& l : lines) tokens += static_cast<long long>(tok.encode(l, eo).ids.size());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double n = static_cast<double>(lines.size());
  return {{"tokenizer", tok.kind()},
          {"texts", lines.size()},
          {"bytes", bytes},
          {"tokens", tokens},
          {"seconds_best", best},
          {"repeats", passes},
          {"threads", 1},
          {"tokens_per_second", static_cast<double>(tokens) / best},
          {"texts_per_second", n / best},
          {"mb_per_second", static_cast<double>(bytes) / best / 1e6}};
}

int extractLabels(const EntityExtractor& ex, const std::vector<std::string>& texts, const std::string& output,
                  std::vector<std::map<std::string, int>>* countsOut) {
  LineWriter out(output);
  Progress prog("extract", texts.size(), "reports");
  std::vector<std::map<std::string, int>> counts(ex.lexicon().findings.size());
  for (const auto& t : texts) {
    const auto labels = ex.extract(t);
    out.write(ex.toJson(labels));
    for (std::size_t i = 0; i < labels.status.size(); ++i) ++counts[i][toString(labels.status[i])];
    prog.advance();
    if (app::stopRequested()) return app::kExitInterrupted;
  }
  prog.finish();
  out.commit();
  for (std::size_t i = 0; i < counts.size(); ++i)
    log::info("text", "{:<34} present {:>6}  uncertain {:>6}  absent {:>6}  not mentioned {:>6}",
              ex.lexicon().findings[i].id, counts[i]["present"], counts[i]["uncertain"], counts[i]["absent"],
              counts[i]["not_mentioned"]);
  if (countsOut) *countsOut = std::move(counts);
  return 0;
}

}  // namespace biud::text
