#pragma once
/// \file TokenizerTools.h
/// What `biud-tokenizer` does, as functions: open a tokenizer from files or the `text:` config,
/// read corpora and line files, train a WordPiece vocab.txt or a SentencePiece model into a
/// folder, encode lines to JSON, inspect a vocabulary (and its coverage of a corpus), measure
/// encoding speed and extract lexicon labels. The app parses flags and calls one of these.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "biud/text/Entities.h"
#include "biud/text/Tokenizer.h"

namespace biud {
struct TextConfig;
}

namespace biud::fs {
class AtomicFile;
}

namespace biud::text {

/// Which tokenizer to open: a WordPiece vocab.txt or a SentencePiece model.
struct TokenizerSource {
  std::string vocab;   ///< WordPiece vocab.txt (tokenizer_config.json beside it is read when present)
  std::string spm;     ///< SentencePiece .model
  bool cased = false;  ///< WordPiece without tokenizer_config.json: keep case and accents
};
/// Exactly one of `vocab`/`spm`; when neither is given and `fallback` names a file for its
/// tokenizer kind (text.vocab / text.spm_model), makeTokenizer(*fallback). ConfigError otherwise.
std::unique_ptr<Tokenizer> openTokenizer(const TokenizerSource& source, const TextConfig* fallback = nullptr);

/// The texts of every file (text lines, CSV or JSONL, readCorpus() with `columns`), in order;
/// logs the count per file. ConfigError when `files` is empty.
std::vector<std::string> readCorpora(const std::vector<std::string>& files, const std::vector<std::string>& columns);

/// `text` split into lines as they are: empty lines kept, one trailing `\r` per line dropped, no
/// extra line after a final `\n` (so output line i of `encode` is input line i).
std::vector<std::string> splitTextLines(const std::string& text);
/// splitTextLines() of a file, or of stdin for `-`.
std::vector<std::string> readTextLines(const std::string& path);

/// Text to stdout (`output` empty or `-`) or to a file written atomically.
void writeOutput(const std::string& output, const std::string& data);

/// Lines to stdout, or to a file written atomically and kept only when commit() is reached.
class LineWriter {
 public:
  explicit LineWriter(const std::string& output);
  ~LineWriter();
  void write(const std::string& line);
  void commit();

 private:
  std::unique_ptr<fs::AtomicFile> file_;
};

struct TokenizerTrainOptions {
  std::string kind = "unigram";  ///< unigram | bpe (SentencePiece) | wordpiece
  int vocabSize = 8000;
  int minFrequency = 2;              ///< WordPiece: least pair frequency to merge
  double coverage = 1.0;             ///< SentencePiece character coverage
  int seed = 0;                      ///< SentencePiece seed
  bool cased = false;                ///< keep case (default: lower-case)
  std::string prefix = "tokenizer";  ///< SentencePiece file name prefix
};
/// Train on `texts` and write into the folder `outDir()` returns (called once the texts are
/// checked): WordPiece -> vocab.txt + tokenizer_config.json (BertTokenizer, HF-loadable);
/// SentencePiece -> <prefix>.model/.vocab. Writes and returns the summary biud-tokenizer.json
/// (kind, texts, vocab_size_requested, vocab_size, vocab or model, seconds). DataError for no
/// texts, ConfigError for an unknown kind.
nlohmann::json trainTokenizer(const std::vector<std::string>& texts, const std::function<std::string()>& outDir,
                              const TokenizerTrainOptions& options);

struct EncodeLineOptions {
  EncodeOptions encode;
  bool typeIds = false;  ///< also token_type_ids
  bool offsets = false;  ///< also byte offsets (when the tokenizer gives them)
  bool tokens = false;   ///< also the token strings
};
/// One line of `encode`'s output: {"ids", "attention_mask"[, "token_type_ids", "offsets", "tokens"]}.
std::string encodingJsonLine(const Tokenizer& tok, const std::string& text, const EncodeLineOptions& options);
/// encodingJsonLine() of every line into `output` (stdout for "" / "-"), with a progress bar.
/// Returns 0, or app::kExitInterrupted when a stop was requested (the file is then not written).
int encodeLines(const Tokenizer& tok, const std::vector<std::string>& lines, const EncodeLineOptions& options,
                const std::string& output);

/// Quantile `q` of token counts: the sorted value at floor(q * (n - 1) + 0.5); 0 for none.
double lengthPercentile(std::vector<int> lengths, double q);
/// Vocabulary statistics (kind, vocab_size, special_ids, continuation_pieces for WordPiece,
/// single_byte_entries, entry_bytes_histogram) and, with a corpus, its coverage under `corpus`
/// (tokens per text, UNK rate, share longer than `maxLength`; WordPiece: unk_word_rate).
nlohmann::ordered_json inspectTokenizer(const Tokenizer& tok, const std::vector<std::string>* corpus, int maxLength);

/// Encoding speed on `lines`, one thread: the fastest of `repeat` passes (tokens, bytes, seconds_best,
/// tokens_per_second, texts_per_second, mb_per_second). DataError when `lines` is empty.
nlohmann::json benchTokenizer(const Tokenizer& tok, const std::vector<std::string>& lines, int repeat, int maxLength);

/// Lexicon labels and entity spans of every text as JSON lines into `output`; logs per finding
/// how many reports have it present/uncertain/absent/not mentioned. Returns 0 or
/// app::kExitInterrupted. `counts`, when given, receives those counts per finding.
int extractLabels(const EntityExtractor& extractor, const std::vector<std::string>& texts, const std::string& output,
                  std::vector<std::map<std::string, int>>* counts = nullptr);

}  // namespace biud::text
