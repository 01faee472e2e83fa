#pragma once
/// \file Protocols.h
/// Published evaluation protocols on CT-RATE, restated from the original code (torch-free).
///
/// **CT-CLIP** (Hamamci et al., github.com/ibrahimethemhamamci/CT-CLIP), zero-shot classification:
/// - prompts: one pair per finding, "<finding> is present." / "<finding> is not present."
///   (scripts/zero_shot.py, CTClipInference.infer), with the CT-RATE label name as the finding;
/// - probability: softmax over the two image-text logits, the positive's share (apply_softmax);
/// - AUROC: sklearn roc_curve + auc (scripts/eval.py, plot_roc), per finding;
/// - threshold: scripts/bootstrap_values.py find_threshold: of the 100 thresholds
///   np.linspace(0, 1, 100), the one whose (FPR, TPR) at `p > t` lies closest to (0, 1); ties go
///   to the larger threshold (`<=`). Chosen per finding on the evaluated set itself;
/// - F1 = f1_score(average="weighted") (both classes, weighted by their support), accuracy,
///   precision = precision_score (positive class, 0 when nothing is predicted positive), all at
///   `p > t` (bootstrap_values.py);
/// - macro: the mean over findings. (bootstrap_values.py's loop draws resamples but then scores
///   the full set 1000 times, so its reported means are these numbers.)
///
/// **CT2Rep** (github.com/ibrahimethemhamamci/CT2Rep), report generation:
/// - cleaning: CT2Rep/modules/tokenizers.py clean_report_mimic_cxr, the cleaner CT2Rep's
///   Tokenizer uses (`ct2repClean`), then whitespace tokens; references keep their first
///   max_seq_length - 1 = 199 tokens (data_ct.py truncates the ids, trainer.py decodes
///   reports_ids[:, 1:]);
/// - BLEU-1..4: pycocoevalcap Bleu(4) on the space-joined tokens (CT2Rep/modules/metrics.py
///   compute_scores, no PTB tokenizer): corpus counts, 'closest' reference length, the tiny/small
///   constants 1e-15 / 1e-9;
/// - ROUGE-L: pycocoevalcap Rouge (LCS, beta 1.2, best precision and recall over references,
///   mean over items); METEOR: ours (Nlg.h) on the same tokens (the jar is not reproduced
///   exactly; docs/eval.md gives the measured difference).
#include <array>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "biud/eval/Nlg.h"

namespace biud::eval {

// ---- CT-CLIP ---------------------------------------------------------------------------------

/// The positive and negative prompt of a finding: "<finding> is present.", "<finding> is not present.".
std::pair<std::string, std::string> ctClipPrompts(const std::string& finding);

/// find_threshold of bootstrap_values.py on known labels (0/1); NaN without both classes.
double ctClipThreshold(const std::vector<double>& probs, const std::vector<int>& labels);

struct CtClipFinding {
  std::string name;
  double auroc = 0, f1 = 0, accuracy = 0, precision = 0, threshold = 0;  ///< NaN when the finding has one class
  std::size_t nPos = 0, nNeg = 0, nUnknown = 0;
};

struct CtClipReport {
  std::vector<CtClipFinding> findings;
  double auroc = 0, f1 = 0, accuracy = 0, precision = 0;  ///< means over the findings with both classes
  std::vector<std::string> warnings;
  nlohmann::json toJson() const;
};

/// The CT-CLIP metrics of probs[i][f] against labels[i][f] (1, 0, NaN = unknown: that case is
/// left out for that finding). A finding with one class gets NaN metrics and a warning and is
/// left out of the means (the original code stops there).
CtClipReport evaluateCtClip(const std::vector<std::vector<double>>& probs,
                            const std::vector<std::vector<double>>& labels, const std::vector<std::string>& names);

// ---- CT2Rep ----------------------------------------------------------------------------------

/// clean_report_mimic_cxr of CT2Rep's tokenizers.py: collapse `__`, double spaces and `..`, drop
/// list numbering ("1. ", " 2. " ...), lower-case, split into sentences at ". ", remove
/// `"` `/` `\` `'` and every character of [.,?;*!%^&_+():-\[\]{}] (the `:-\[` there is a range:
/// `:;<=>?@`, A-Z and `[`) from each sentence, and join them as "s1 . s2 . ... ." (empty sentences
/// included, as the original does). Lower-casing is ASCII only.
std::string ct2repClean(const std::string& report);

/// Whitespace tokens of ct2repClean(report); at most `maxTokens` (0 = all).
Tokens ct2repTokens(const std::string& report, std::size_t maxTokens = 0);

/// pycocoevalcap Bleu(4).compute_score (option 'closest'): BLEU-1..4 of the corpus.
std::array<double, 4> cocoBleu(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs);

/// pycocoevalcap Rouge.calc_score of one item (beta 1.2); 0 when the LCS is empty.
double cocoRougeL(const Tokens& hyp, const std::vector<Tokens>& refs);

struct Ct2RepOptions {
  std::size_t maxRefTokens = 199;  ///< CT2Rep's --max_seq_length 200 minus the start token; 0 = no cut
};

/// BLEU-1..4 (cocoBleu), METEOR (ours), ROUGE-L (cocoRougeL, averaged) and CIDEr-D (ours; CT2Rep
/// reports none) on CT2Rep-cleaned reports.
NlgScores evaluateNlgCt2Rep(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                            const Ct2RepOptions& options = {});

/// The report metrics of a protocol: "biud" (evaluateNlg) or "ct2rep" (evaluateNlgCt2Rep);
/// ConfigError naming both for anything else.
NlgScores evaluateNlgProtocol(const std::string& protocol, const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs);

/// One line saying how a protocol tokenises (for the output JSON).
std::string nlgTokenization(const std::string& protocol);

}  // namespace biud::eval
