#include "biud/text/Tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "biud/config/EvalConfig.h"
#include "biud/core/Error.h"
#include "biud/text/SpmTokenizer.h"
#include "biud/text/WordPiece.h"

namespace biud::text {

int Encoding::length() const {
  int n = 0;
  for (int m : attentionMask) n += m;
  return n;
}

void padEncoding(Encoding& e, int length, int padId) {
  const auto n = static_cast<std::size_t>(std::max(length, 0));
  if (e.ids.size() >= n) return;
  e.ids.resize(n, padId);
  e.attentionMask.resize(n, 0);
  e.typeIds.resize(n, 0);
  e.specialMask.resize(n, 1);
  if (!e.offsets.empty()) e.offsets.resize(n, {0, 0});
}

std::vector<Encoding> Tokenizer::encodeBatch(const std::vector<std::string>& texts, const EncodeOptions& opt) const {
  std::vector<Encoding> out;
  out.reserve(texts.size());
  std::size_t longest = 0;
  for (const auto& t : texts) {
    out.push_back(encode(t, opt));
    longest = std::max(longest, out.back().ids.size());
  }
  if (opt.padding == Padding::Longest) {
    const int pad = specialIds().pad < 0 ? 0 : specialIds().pad;
    for (auto& e : out) padEncoding(e, static_cast<int>(longest), pad);
  }
  return out;
}

std::vector<int> tokensForSpan(const Encoding& e, int begin, int end) {
  std::vector<int> pos;
  for (std::size_t i = 0; i < e.offsets.size(); ++i) {
    const auto [b, en] = e.offsets[i];
    if (e.specialMask.size() == e.offsets.size() && e.specialMask[i] && b == en) continue;  // [CLS]/[SEP]/[PAD]
    if (b < end && en > begin) pos.push_back(static_cast<int>(i));
  }
  return pos;
}

std::unique_ptr<Tokenizer> makeTokenizer(const TextConfig& cfg) {
  if (cfg.tokenizer == "spm") {
    BIUD_CHECK(!cfg.spm_model.empty(), ConfigError,
               "text.tokenizer is `spm` but text.spm_model is empty: set it to a .model file (train one with "
               "`biud-tokenizer train`)");
    return std::make_unique<SpmTokenizer>(cfg.spm_model);
  }
  BIUD_CHECK(cfg.tokenizer == "wordpiece", ConfigError, "text.tokenizer `{}` is not one of wordpiece, spm",
             cfg.tokenizer);
  BIUD_CHECK(!cfg.vocab.empty(), ConfigError,
             "text.tokenizer is `wordpiece` but text.vocab is empty: set it to a BERT vocab.txt (or train one with "
             "`biud-tokenizer train --kind wordpiece`)");
  // tokenizer_config.json next to the vocab wins; otherwise text.lowercase decides.
  const auto cfgJson = std::filesystem::path(cfg.vocab).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfgJson, ec)) return std::make_unique<WordPiece>(cfg.vocab);
  WordPieceOptions o;
  o.lowercase = cfg.lowercase;
  return std::make_unique<WordPiece>(cfg.vocab, o);
}

}  // namespace biud::text
