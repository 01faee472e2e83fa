#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `eval:` — zero-shot, report generation and metrics.
struct EvalConfig {
  std::string prompts = "configs/prompts/synthetic.yaml";
  std::string threshold = "youden";
  int bootstrap = 1000;
  double ci = 0.95;
  int beam = 3;
  double length_penalty = 1.0;
  int max_new_tokens = 96;
  bool plots = true;
  bool ema = true;
  std::string zeroshot_protocol = "biud";
  std::string nlg_protocol = "biud";

  void visit(config::Visitor& v) {
    v.field("prompts", prompts, "zero-shot prompt sets (YAML)");
    v.field("threshold", threshold, "operating point: youden, or chosen on the validation split",
            config::oneOf({"youden", "val", "0.5"}));
    v.field("bootstrap", bootstrap, "bootstrap resamples for confidence intervals (0 = off)", config::atLeast(0));
    v.field("ci", ci, "confidence level", config::range(0, 1, true, true));
    v.field("beam", beam, "beam size for report generation", config::atLeast(1));
    v.field("length_penalty", length_penalty, "beam search length penalty", config::atLeast(0));
    v.field("max_new_tokens", max_new_tokens, "longest generated report", config::atLeast(1));
    v.field("plots", plots, "write PNG plots");
    v.field("ema", ema,
            "evaluate a run with its averaged weights (ema.safetensors, trainer.ema) when its checkpoint has them");
    v.field("zeroshot_protocol", zeroshot_protocol,
            "biud-zeroshot: biud (prompt ensembles, Youden threshold, bootstrap CIs) or ct-clip (CT-CLIP's prompt "
            "pair, threshold "
            "rule, weighted F1; added as `ct_clip` to zeroshot.json); docs/eval.md",
            config::oneOf({"biud", "ct-clip"}));
    v.field("nlg_protocol", nlg_protocol,
            "report metrics: biud (one punctuation-free tokenisation, nltk BLEU) or ct2rep (CT2Rep's report cleaning, "
            "pycocoevalcap "
            "BLEU and ROUGE-L); docs/eval.md",
            config::oneOf({"biud", "ct2rep"}));
  }
};

/// `text:` — tokenizer, lexicon and prompts.
struct TextConfig {
  std::string tokenizer = "wordpiece";
  std::string vocab;
  std::string spm_model;
  int max_length = 128;
  bool lowercase = true;
  std::string lexicon = "configs/lexicon/synthetic.yaml";

  void visit(config::Visitor& v) {
    v.field("tokenizer", tokenizer, "tokenizer kind", config::oneOf({"wordpiece", "spm"}));
    v.field("vocab", vocab, "WordPiece vocab.txt (HF layout)");
    v.field("spm_model", spm_model, "SentencePiece .model file");
    v.field("max_length", max_length, "tokens per report incl. [CLS]/[SEP]", config::atLeast(4));
    v.field("lowercase", lowercase, "lower-case and strip accents (BERT uncased)");
    v.field("lexicon", lexicon, "entity lexicon (YAML)");
  }
};

}  // namespace biud
