#pragma once
/// \file Tokenizer.h
/// The tokenizer interface shared by WordPiece (HF BERT-compatible) and SentencePiece, so that
/// models, trainers and apps take either one:
///
///     auto tok = biud::text::makeTokenizer(cfg.text);            // from the `text:` section
///     biud::text::EncodeOptions o; o.maxLength = 128; o.padding = biud::text::Padding::MaxLength;
///     biud::text::Encoding e = tok->encode("No pleural effusion.", o);
///     // e.ids = [CLS] no pleural effusion . [SEP] [PAD]...; e.attentionMask = 1...1 0...0
///
/// Offsets are UTF-8 byte ranges into the encoded text, so that entity spans found by the report
/// parser (also byte ranges) map onto token positions (see tokensForSpan()).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace biud {
struct TextConfig;
}

namespace biud::text {

/// How encode() pads.
enum class Padding {
  None,       ///< no padding
  Longest,    ///< encodeBatch(): pad to the longest sequence of the batch (encode(): none)
  MaxLength,  ///< pad to EncodeOptions::maxLength
};

struct EncodeOptions {
  /// Maximum sequence length including special tokens; 0 = unlimited. Longer sequences are
  /// truncated at the end (before [SEP]) when `truncation`, else kept whole.
  int maxLength = 0;
  bool truncation = true;
  Padding padding = Padding::None;
  /// Add [CLS] ... [SEP] (WordPiece) or <s> ... </s> (SentencePiece), as HF does by default.
  bool addSpecialTokens = true;
};

/// One encoded text. All vectors have the same length.
struct Encoding {
  std::vector<int> ids;
  std::vector<int> attentionMask;  ///< 1 for real tokens (specials included), 0 for padding
  std::vector<int> typeIds;        ///< token_type_ids (all 0 for a single text)
  std::vector<int> specialMask;    ///< 1 for special tokens ([CLS], [SEP], [PAD], ...)
  /// Byte range [first, second) of each token in the input text; (0, 0) for special tokens and
  /// padding (SentencePiece: the piece's surface, which may be empty for a lone "▁").
  std::vector<std::pair<int, int>> offsets;
  /// Number of non-padding tokens.
  int length() const;
};

/// Ids of the special tokens; -1 where the vocabulary has none.
struct SpecialIds {
  int pad = -1, unk = -1, cls = -1, sep = -1, mask = -1;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Encode one text.
  virtual Encoding encode(std::string_view text, const EncodeOptions& opt = {}) const = 0;
  /// Encode several texts; with Padding::Longest all come out as long as the longest.
  std::vector<Encoding> encodeBatch(const std::vector<std::string>& texts, const EncodeOptions& opt = {}) const;
  /// Tokens (strings) of a text without special tokens, e.g. {"pl", "##eur", "##al"}.
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;
  /// Ids back to text. `skipSpecial` drops [CLS]/[SEP]/[PAD]/... as HF's skip_special_tokens.
  virtual std::string decode(const std::vector<int>& ids, bool skipSpecial = true) const = 0;
  virtual int vocabSize() const = 0;
  virtual SpecialIds specialIds() const = 0;
  /// Token string of an id (ValueError when out of range) and id of a token (-1 when absent).
  virtual std::string idToToken(int id) const = 0;
  virtual int tokenToId(const std::string& token) const = 0;
  /// "wordpiece" or "spm".
  virtual std::string kind() const = 0;
};

/// Build the tokenizer named by the `text:` config section (tokenizer, vocab, spm_model,
/// lowercase). ConfigError naming the key when a needed file is not given.
std::unique_ptr<Tokenizer> makeTokenizer(const TextConfig& cfg);

/// Pad or truncate an encoding in place to `length` tokens (used by encodeBatch()).
void padEncoding(Encoding& e, int length, int padId);

/// Token positions (indices into Encoding::ids) whose offsets overlap the byte range
/// [begin, end) of the text — e.g. the WordPiece tokens of an entity, for entity-focused masking.
std::vector<int> tokensForSpan(const Encoding& e, int begin, int end);

}  // namespace biud::text
