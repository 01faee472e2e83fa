#pragma once
/// \file Nlg.h
/// Report-generation metrics on one shared tokenisation (`tokenize`): lower-case ASCII, every
/// character other than a-z, 0-9 and bytes >= 0x80 separates tokens (so punctuation is dropped
/// and "2.5cm" becomes "2 5cm"). This is exactly rouge-score's default tokenizer for ASCII text;
/// the reference tests feed the same tokens (joined by spaces) to nltk and pycocoevalcap.
///
/// - BLEU-n: nltk.translate.bleu_score.corpus_bleu, weights (1/n,...,1/n), no smoothing
///   (a zero n-gram precision contributes log(DBL_MIN), as nltk does).
/// - ROUGE-L: rouge_score RougeScorer(['rougeL']) F-measure per pair (best over references),
///   averaged over pairs.
/// - CIDEr-D: pycocoevalcap Cider (n = 1..4, sigma = 6, clipped counts, x10, document frequency
///   from the references of the evaluated corpus).
/// - METEOR: a re-implementation of METEOR 1.5's scoring (alpha 0.85, beta 0.2, gamma 0.6,
///   delta 0.75; exact matches weight 1, Porter-stem matches 0.6; corpus score from summed
///   statistics as pycocoevalcap does). No WordNet synonyms or paraphrase table and our own
///   function-word list, so it differs from the jar (see docs/eval.md for measured differences).
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace biud::eval {

using Tokens = std::vector<std::string>;

/// The tokenisation every NLG metric uses (see the file comment).
Tokens tokenize(const std::string& text);

/// nltk corpus_bleu with uniform weights over 1..maxN grams. refs[i] = references of hyps[i].
double corpusBleu(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs, int maxN);

/// ROUGE-L F-measure of one pair (0 when either side is empty).
double rougeL(const Tokens& hyp, const Tokens& ref);

/// CIDEr-D corpus score; `perItem` (optional) receives each hypothesis' score.
double ciderD(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs,
              std::vector<double>* perItem = nullptr, double sigma = 6.0);

/// Porter (1980) stemmer, used by METEOR's stem stage.
std::string porterStem(const std::string& word);

/// METEOR corpus score (summed statistics) and per-segment scores.
double meteor(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs,
              std::vector<double>* perItem = nullptr);

struct NlgScores {
  std::array<double, 4> bleu{};  ///< BLEU-1..4
  double meteor = 0, rougeL = 0, cider = 0;
  std::size_t n = 0;
  nlohmann::json toJson() const;
};

/// All metrics on raw texts (tokenised with `tokenize`). refs[i] holds one or more references.
NlgScores evaluateNlg(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs);

}  // namespace biud::eval
