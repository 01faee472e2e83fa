#pragma once
/// \file SpmTokenizer.h
/// SentencePiece behind the common Tokenizer interface, plus training with the ids biud uses.
/// Models trained by trainSpm() reserve pad=0, unk=1, bos=2 (used as [CLS]), eos=3 (as [SEP])
/// and the user symbol "[MASK]" (id 4), so masked-language objectives work with either
/// tokenizer. encode() adds <s> ... </s> like HF's BERT template adds [CLS] ... [SEP], and reports
/// byte offsets of each piece (so entity spans map to SentencePiece tokens too).
#include <memory>
#include <string>
#include <vector>

#include "biud/text/SentencePiece.h"
#include "biud/text/Tokenizer.h"

namespace biud::text {

struct SpmTrainOptions {
  std::string modelType = "unigram";  ///< unigram | bpe | char | word
  int vocabSize = 4000;
  double characterCoverage = 1.0;
  /// Sentences sampled for training (0 = all); the sample is seeded, so training is reproducible.
  int inputSentenceSize = 0;
  int seed = 0;
  int numThreads = 1;     ///< > 1 can change the model between runs; keep 1 for reproducibility
  bool lowercase = true;  ///< lower-case the corpus (and later inputs) with nmt_nfkc_cf rules
};

/// Train a model from a text file (one sentence per line) to `<prefix>.model` and
/// `<prefix>.vocab`. IoError with SentencePiece's message when training fails (e.g. vocab_size
/// larger than the corpus supports).
void trainSpm(const std::string& corpusFile, const std::string& prefix, const SpmTrainOptions& opt);

class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(const std::string& modelPath);
  Encoding encode(std::string_view text, const EncodeOptions& opt = {}) const override;
  std::vector<std::string> tokenize(std::string_view text) const override;
  std::string decode(const std::vector<int>& ids, bool skipSpecial = true) const override;
  int vocabSize() const override { return spm_.vocabSize(); }
  SpecialIds specialIds() const override { return special_; }
  std::string idToToken(int id) const override { return spm_.idToPiece(id); }
  int tokenToId(const std::string& token) const override;
  std::string kind() const override { return "spm"; }
  const SentencePiece& processor() const { return spm_; }

 private:
  SentencePiece spm_;
  SpecialIds special_;
};

}  // namespace biud::text
