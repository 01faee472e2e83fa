#include "biud/text/SpmTokenizer.h"

#include <fmt/format.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::text {

void trainSpm(const std::string& corpusFile, const std::string& prefix, const SpmTrainOptions& opt) {
  fs::requireFile(corpusFile, "SentencePiece training corpus");
  // SentencePieceTrainer splits its argument string on spaces.
  for (const std::string* p : {&corpusFile, &prefix})
    BIUD_CHECK(p->find_first_of(" \t\n") == std::string::npos, ConfigError,
               "SentencePiece cannot take a path with spaces (`{}`): use a path without spaces", *p);
  BIUD_CHECK(opt.modelType == "unigram" || opt.modelType == "bpe" || opt.modelType == "char" || opt.modelType == "word",
             ConfigError, "SentencePiece model type `{}` is not one of unigram, bpe, char, word", opt.modelType);
  BIUD_CHECK(opt.vocabSize > 5, ConfigError, "SentencePiece vocab size must be > 5, got {}", opt.vocabSize);
  const auto parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty()) fs::makeDirs(parent);
  std::string args = fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --model_type={} --character_coverage={} "
      "--pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3 --user_defined_symbols=[MASK] "
      "--num_threads={} --random_seed={} --hard_vocab_limit=false --minloglevel=3 --normalization_rule_name={}",
      corpusFile, prefix, opt.vocabSize, opt.modelType, opt.characterCoverage, opt.numThreads, opt.seed,
      opt.lowercase ? "nmt_nfkc_cf" : "nmt_nfkc");
  if (opt.inputSentenceSize > 0)
    args += fmt::format(" --input_sentence_size={} --shuffle_input_sentence=true", opt.inputSentenceSize);
  SentencePiece::train(args);
}

SpmTokenizer::SpmTokenizer(const std::string& modelPath) : spm_(modelPath) {
  special_.pad = spm_.padId();
  special_.unk = spm_.unkId();
  special_.cls = spm_.bosId();
  special_.sep = spm_.eosId();
  const int mask = spm_.pieceToId("[MASK]");
  special_.mask = (mask >= 0 && mask != special_.unk) ? mask : -1;
}

Encoding SpmTokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  std::vector<std::pair<int, int>> offsets;
  std::vector<int> ids = spm_.encode(std::string(text), offsets);
  const bool specials = opt.addSpecialTokens && special_.cls >= 0 && special_.sep >= 0;
  if (opt.maxLength > 0 && opt.truncation) {
    const int room = opt.maxLength - (specials ? 2 : 0);
    BIUD_CHECK(room >= 0, ConfigError, "max length {} leaves no room for <s> and </s>", opt.maxLength);
    if (static_cast<int>(ids.size()) > room) {
      ids.resize(static_cast<std::size_t>(room));
      offsets.resize(static_cast<std::size_t>(room));
    }
  }
  Encoding e;
  if (specials) e.ids.push_back(special_.cls), e.offsets.emplace_back(0, 0);
  e.ids.insert(e.ids.end(), ids.begin(), ids.end());
  e.offsets.insert(e.offsets.end(), offsets.begin(), offsets.end());
  if (specials) e.ids.push_back(special_.sep), e.offsets.emplace_back(0, 0);
  e.attentionMask.assign(e.ids.size(), 1);
  e.typeIds.assign(e.ids.size(), 0);
  e.specialMask.resize(e.ids.size());
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    const int id = e.ids[i];
    e.specialMask[i] = (id == special_.cls || id == special_.sep || id == special_.pad) ? 1 : 0;
  }
  if (opt.padding == Padding::MaxLength && opt.maxLength > 0)
    padEncoding(e, opt.maxLength, special_.pad < 0 ? 0 : special_.pad);
  return e;
}

std::vector<std::string> SpmTokenizer::tokenize(std::string_view text) const {
  return spm_.encodePieces(std::string(text));
}

std::string SpmTokenizer::decode(const std::vector<int>& ids, bool skipSpecial) const {
  std::vector<int> keep;
  keep.reserve(ids.size());
  for (int id : ids) {
    BIUD_CHECK(id >= 0 && id < vocabSize(), ValueError, "SentencePiece id {} out of range [0, {})", id, vocabSize());
    if (skipSpecial && (id == special_.cls || id == special_.sep || id == special_.pad)) continue;
    keep.push_back(id);
  }
  return spm_.decode(keep);
}

int SpmTokenizer::tokenToId(const std::string& token) const {
  const int id = spm_.pieceToId(token);
  return (id == special_.unk && token != spm_.idToPiece(special_.unk)) ? -1 : id;
}

}  // namespace biud::text
