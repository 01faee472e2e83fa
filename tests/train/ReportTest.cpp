// The pieces of the `report` task: clinical efficacy of generated reports worked out by hand,
// the decoder options, and teacher-forced decoding of a trained decoder against beam search.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/eval/Nlg.h"
#include "biud/eval/Protocols.h"
#include "biud/models/Registry.h"
#include "biud/text/Entities.h"
#include "biud/train/ReportTask.h"
#include "common/TestUtil.h"

using namespace biud;

TEST(ReportScores, ClinicalEfficacyByHand) {
  const auto lex = text::Lexicon::load((test::sourceDir() / "configs/lexicon/synthetic.yaml").string());
  text::EntityExtractor ex(lex);
  // report 1: generated {pleural_effusion}, reference {pleural_effusion, pneumothorax}
  // report 2: generated {cardiomegaly}, reference {} (negated: "no cardiomegaly")
  // report 3: generated {pleural_effusion}, reference {lung_nodule}
  const std::vector<std::string> gen = {"Small left pleural effusion. No pneumothorax.", "Cardiomegaly.",
                                        "Small pleural effusion."};
  const std::vector<std::string> ref = {"Left pleural effusion. Small right pneumothorax.", "No cardiomegaly.",
                                        "A 6 mm nodule in the right upper lobe."};
  const auto s = train::scoreReports(gen, ref, ex);
  ASSERT_EQ(s.generatedFindings.size(), 3u);
  EXPECT_EQ(s.generatedFindings[0], (std::set<std::string>{"pleural_effusion"}));
  EXPECT_EQ(s.referenceFindings[0], (std::set<std::string>{"pleural_effusion", "pneumothorax"}));
  EXPECT_EQ(s.generatedFindings[1], (std::set<std::string>{"cardiomegaly"}));
  EXPECT_TRUE(s.referenceFindings[1].empty());
  EXPECT_EQ(s.generatedFindings[2], (std::set<std::string>{"pleural_effusion"}));
  EXPECT_EQ(s.referenceFindings[2], (std::set<std::string>{"lung_nodule"}));
  // Pooled: tp 1 (effusion of report 1), fp 2 (cardiomegaly, effusion of report 3), fn 2
  // (pneumothorax, nodule): P = 1/3, R = 1/3, F1 = 2 / (2 + 2 + 2).
  const auto& micro = s.json["clinical"]["micro"];
  EXPECT_NEAR(micro["precision"].get<double>(), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(micro["recall"].get<double>(), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(micro["f1"].get<double>(), 1.0 / 3.0, 1e-12);
  // Chance level over shifts 1 and 2. Shift 1 pairs generated i with reference i+1:
  // {pe}-{} fp, {cm}-{nod} fp fn, {pe}-{pe,ptx} tp fn -> tp 1, fp 2, fn 2 -> 1/3.
  // Shift 2: {pe}-{nod} fp fn, {cm}-{pe,ptx} fp fn fn, {pe}-{} fp -> no tp -> 0. Mean 1/6.
  EXPECT_NEAR(s.json["clinical"]["chance_micro_f1"].get<double>(), 1.0 / 6.0, 1e-12);
  EXPECT_EQ(s.json["n"].get<int>(), 3);
  // The NLG block is eval::evaluateNlg on the same pairs (checked against nltk/pycocoevalcap in test_eval).
  const auto nlg = eval::evaluateNlg(gen, {{ref[0]}, {ref[1]}, {ref[2]}});
  EXPECT_DOUBLE_EQ(s.json["nlg"]["bleu1"].get<double>(), nlg.bleu[0]);
  EXPECT_DOUBLE_EQ(s.json["nlg"]["cider"].get<double>(), nlg.cider);
  EXPECT_THROW(train::scoreReports({"a"}, {}, ex), ValueError);
  EXPECT_EQ(s.json["nlg"]["protocol"], "biud");
  // eval.nlg_protocol = ct2rep: the NLG block is CT2Rep's (eval::evaluateNlgCt2Rep, checked against
  // pycocoevalcap in test_eval); clinical efficacy does not depend on it.
  const auto c = train::scoreReports(gen, ref, ex, "ct2rep");
  const auto ct2rep = eval::evaluateNlgCt2Rep(gen, {{ref[0]}, {ref[1]}, {ref[2]}});
  EXPECT_EQ(c.json["nlg"]["protocol"], "ct2rep");
  for (int n = 0; n < 4; ++n)
    EXPECT_DOUBLE_EQ(c.json["nlg"]["bleu" + std::to_string(n + 1)].get<double>(), ct2rep.bleu[n]);
  EXPECT_DOUBLE_EQ(c.json["nlg"]["rouge_l"].get<double>(), ct2rep.rougeL);
  EXPECT_NE(c.json["nlg"]["bleu4"].get<double>(), nlg.bleu[3]);  // the full stops count as tokens
  EXPECT_EQ(c.json["clinical"], s.json["clinical"]);
  EXPECT_THROW(train::scoreReports(gen, ref, ex, "coco"), ConfigError);
}

TEST(ReportDecoder, OptionsFromConfigWithTheTokenizersSpecialIds) {
  NetConfig n;
  n.arch = "report_decoder";
  n.preset = "tiny";
  auto d = models::makeReportDecoder(n, 192, 400, {2, 3, 0});
  EXPECT_EQ(d->opt.dim, 64);
  EXPECT_EQ(d->opt.depth, 2);
  EXPECT_EQ(d->opt.heads, 4);
  EXPECT_EQ(d->opt.vocab_size, 400);
  EXPECT_EQ(d->opt.memory_dim, 192);
  EXPECT_EQ(d->opt.bos_id, 2);
  EXPECT_EQ(d->opt.eos_id, 3);
  EXPECT_EQ(d->opt.pad_id, 0);
  n.dim = 32, n.depth = 1, n.max_len = 40;
  d = models::makeReportDecoder(n, 192, 400, {2, 3, 0});
  EXPECT_EQ(d->opt.dim, 32);
  EXPECT_EQ(d->opt.depth, 1);
  EXPECT_EQ(d->opt.max_len, 40);
  // A small vocabulary works with the tokenizer's ids.
  auto small = models::makeReportDecoder(n, 16, 50, {2, 3, 0});
  auto g = small->greedy(torch::randn({2, 5, 16}), {}, 4);
  EXPECT_EQ(g.tokens.size(), 2u);
}
