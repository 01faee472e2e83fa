// Small cases worked out by hand, masking statistics, determinism and the assembly rules.
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/losses/BiudLoss.h"
#include "biud/losses/ClipLoss.h"
#include "biud/losses/EfmLoss.h"
#include "biud/losses/RelationDistillLoss.h"
#include "biud/losses/RocoLoss.h"
#include "biud/losses/TrimodalLoss.h"

namespace L = biud::losses;
using torch::Tensor;

namespace {
const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);
Tensor eye3() { return torch::eye(3, kF64); }
double val(const Tensor& t) { return t.item<double>(); }
}  // namespace

TEST(ClipHand, OrthonormalFeaturesAtKnownTemperature) {
  // a = b = I_3, tau = 0.5: logits = 2 on the diagonal, 0 elsewhere; every row's CE is
  // -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2), in both directions.
  const auto out = L::clipLoss({eye3(), eye3()}, torch::tensor(0.5, kF64));
  const double expected = std::log(1.0 + 2.0 * std::exp(-2.0));
  EXPECT_NEAR(val(out.total), expected, 1e-12);
  EXPECT_NEAR(val(out.terms.at("i2t")), expected, 1e-12);
  EXPECT_NEAR(val(out.metrics.at("acc_i2t")), 1.0, 0);
  // Features at any scale are normalised: 3·I gives the same loss.
  EXPECT_NEAR(val(L::clipLoss({3.0 * eye3(), eye3()}, torch::tensor(0.5, kF64)).total), expected, 1e-12);
  // Swapped pairing (b rows permuted): the positive logit is 0, one negative is 2.
  const auto perm = eye3().index_select(0, torch::tensor({1, 0, 2}));
  const double row01 = -std::log(1.0 / (std::exp(2.0) + 2.0));  // rows 0, 1: positive 0, one negative 2
  const double row2 = expected;
  EXPECT_NEAR(val(L::clipLoss({eye3(), perm}, torch::tensor(0.5, kF64)).total), (2 * row01 + row2) / 3, 1e-12);
}

TEST(ClipHand, TemperatureClampAndLogitScale) {
  EXPECT_NEAR(val(L::resolveTemperature(torch::tensor(5.0), 0.07, 0.01, 1.0)), 1.0, 1e-7);
  EXPECT_NEAR(val(L::resolveTemperature(torch::tensor(0.001), 0.07, 0.01, 1.0)), 0.01, 1e-7);
  EXPECT_NEAR(val(L::resolveTemperature(Tensor(), 0.07, 0.01, 1.0)), 0.07, 1e-12);
  EXPECT_NEAR(val(L::tauFromLogitScale(torch::tensor(std::log(1 / 0.07), kF64))), 0.07, 1e-12);
  EXPECT_THROW(L::resolveTemperature(Tensor(), 2.0, 0.01, 1.0), biud::ConfigError);
}

TEST(ClipHand, LocalLayoutEqualsTheMatchingRowsOfTheFullLoss) {
  torch::manual_seed(1);
  auto a = torch::randn({8, 4}, kF64), b = torch::randn({8, 4}, kF64);
  const double full = val(L::clipLoss({a, b}, torch::tensor(0.1, kF64)).total);
  double sum = 0;
  for (int64_t r = 0; r < 4; ++r)  // four "ranks" of two rows each
    sum +=
        val(L::clipLoss({a.narrow(0, 2 * r, 2), b.narrow(0, 2 * r, 2), a, b, 2 * r}, torch::tensor(0.1, kF64)).total);
  EXPECT_NEAR(sum / 4, full, 1e-12);
  EXPECT_THROW(L::clipLoss({a.narrow(0, 0, 2), b.narrow(0, 0, 2), a, b, 7}, torch::tensor(0.1)), biud::ValueError);
}

namespace {
// Three samples, features I_3 at tau = 1: logits = I. Reports 0 and 1 are identical.
L::RocoInputs twoIdenticalReports() {
  L::RocoInputs in;
  in.features = {eye3(), eye3()};
  in.tau = torch::tensor(1.0, kF64);
  in.report_embeddings = torch::tensor({{1.0, 2.0, 0.0}, {1.0, 2.0, 0.0}, {0.0, 0.0, 1.0}}, kF64);
  return in;
}
biud::RocoConfig rocoCfg(const std::string& mode, double alpha = 1.0) {
  biud::RocoConfig c;
  c.mode = mode;
  c.alpha = alpha;
  c.fn_by_entities = false;
  return c;
}
const double kE = std::exp(1.0);
}  // namespace

TEST(RocoHand, TwoIdenticalReportsRemoveDropsTheFalseNegative) {
  const auto out = L::RocoLoss(rocoCfg("remove"))(twoIdenticalReports());
  // Rows 0 and 1: the other identical report leaves the denominator: -log(e / (e + 1)).
  // Row 2: both negatives stay: -log(e / (e + 2)). Same in both directions.
  const double expected = (2 * std::log((kE + 1) / kE) + std::log((kE + 2) / kE)) / 3;
  EXPECT_NEAR(val(out.total), expected, 1e-12);
  EXPECT_NEAR(val(out.metrics.at("fn_rate")), 2.0 / 6.0, 1e-12);  // (0,1), (1,0) of 6 off-diagonal pairs
  // Plain InfoNCE on the same batch is larger: the identical report is pushed away.
  const auto none = L::RocoLoss(rocoCfg("none"))(twoIdenticalReports());
  EXPECT_NEAR(val(none.total), std::log((kE + 2) / kE), 1e-12);
  EXPECT_NEAR(val(none.metrics.at("fn_rate")), 2.0 / 6.0, 1e-12);
}

TEST(RocoHand, TwoIdenticalReportsSoftTargetAlpha) {
  for (double alpha : {1.0, 0.25}) {
    const auto out = L::RocoLoss(rocoCfg("soft", alpha))(twoIdenticalReports());
    // Row 0: targets (1, alpha, 0) / (1 + alpha) against softmax(1, 0, 0) = (e, 1, 1) / (e + 2).
    const double p0 = kE / (kE + 2), p1 = 1 / (kE + 2);
    const double row01 = -(std::log(p0) + alpha * std::log(p1)) / (1 + alpha);
    const double row2 = -std::log(p0);
    EXPECT_NEAR(val(out.total), (2 * row01 + row2) / 3, 1e-12) << "alpha " << alpha;
  }
  // alpha = 0 is plain InfoNCE.
  EXPECT_NEAR(val(L::RocoLoss(rocoCfg("soft", 0.0))(twoIdenticalReports()).total),
              val(L::RocoLoss(rocoCfg("none"))(twoIdenticalReports()).total), 1e-12);
}

TEST(RocoHand, IdenticalFindingSetsAsIdsOrLabelVectors) {
  auto cfg = rocoCfg("remove");
  cfg.fn_by_similarity = false;
  cfg.fn_by_entities = true;
  auto in = twoIdenticalReports();
  in.report_embeddings = Tensor();
  const double expected = (2 * std::log((kE + 1) / kE) + std::log((kE + 2) / kE)) / 3;
  in.findings = torch::tensor({7, 7, 8});  // two normal reports share a finding-set id
  EXPECT_NEAR(val(L::RocoLoss{cfg}(in).total), expected, 1e-12);
  in.findings = torch::tensor({{0, 1}, {0, 1}, {1, 0}});  // label vectors
  EXPECT_NEAR(val(L::RocoLoss{cfg}(in).total), expected, 1e-12);
  in.findings = torch::tensor({-1, -1, 8});  // unknown finding sets never match
  EXPECT_NEAR(val(L::RocoLoss{cfg}(in).total), std::log((kE + 2) / kE), 1e-12);
  // Missing evidence for an enabled criterion is an error naming the key.
  in.findings = Tensor();
  try {
    L::RocoLoss{cfg}(in);
    FAIL() << "expected an error";
  } catch (const biud::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("fn_by_entities"), std::string::npos) << e.what();
  }
}

TEST(RocoHand, DiagonalIsNeverAFalseNegativeAndCriteriaAreOred) {
  // Similarity flags (0,1); entity ids flag (1,2); all reports' self-similarity is 1 >= theta.
  L::FalseNegativeOptions opt;
  const auto emb = torch::tensor({{1.0, 0.0}, {1.0, 0.01}, {0.0, 1.0}}, kF64);
  const auto ids = torch::tensor({0, 1, 1});
  const auto fn = L::detectFalseNegatives(emb, ids, 3, 0, opt);
  const auto expected = torch::tensor({{false, true, false}, {true, false, true}, {false, true, false}});
  EXPECT_TRUE(torch::equal(fn.mask, expected)) << fn.mask;
  // Local rows 1..2 of the same batch.
  EXPECT_TRUE(torch::equal(L::detectFalseNegatives(emb, ids, 2, 1, opt).mask, expected.narrow(0, 1, 2)));
  // A mask handed in with the diagonal set is cleared there: identical to the plain loss.
  const auto p = L::ContrastivePair{eye3(), eye3()};
  const auto withDiag = L::rocoLoss(p, torch::tensor(1.0, kF64), torch::eye(3).to(torch::kBool), "remove", 1.0);
  EXPECT_NEAR(val(withDiag.total), std::log((kE + 2) / kE), 1e-12);
  EXPECT_NEAR(val(withDiag.metrics.at("fn_rate")), 0.0, 0);
}

// Diagnostics against the true finding sets: nothing flagged -> precision undefined (NaN), a true
// pair missed -> recall 0; a flagged pair that is not true -> precision 0, no true pair -> recall NaN.
TEST(RocoHand, FalseNegativePrecisionAndRecallAgainstTrueFindingSets) {
  biud::RocoConfig cfg;
  cfg.fn_by_similarity = false;
  L::RocoInputs in;
  in.features = {eye3(), eye3()};
  in.tau = torch::tensor(0.5, kF64);
  in.findings = torch::tensor({0, 1, 2}, torch::kLong);       // nothing flagged
  in.true_findings = torch::tensor({0, 0, 1}, torch::kLong);  // (0, 1) and (1, 0) are true
  auto out = L::RocoLoss(cfg)(in);
  EXPECT_TRUE(std::isnan(val(out.metrics.at("fn_precision"))));
  EXPECT_EQ(val(out.metrics.at("fn_recall")), 0.0);
  EXPECT_NEAR(val(out.metrics.at("fn_rate_true")), 2.0 / 6.0, 1e-12);
  in.findings = torch::tensor({0, 0, 1}, torch::kLong);       // (0, 1), (1, 0) flagged
  in.true_findings = torch::tensor({0, 1, 2}, torch::kLong);  // no true pair
  out = L::RocoLoss(cfg)(in);
  EXPECT_EQ(val(out.metrics.at("fn_precision")), 0.0);
  EXPECT_TRUE(std::isnan(val(out.metrics.at("fn_recall"))));
  EXPECT_EQ(val(out.metrics.at("fn_rate_true")), 0.0);
  in.true_findings = torch::tensor({5, 5, -1}, torch::kLong);  // the flagged pairs are the true ones; row 2 unknown
  out = L::RocoLoss(cfg)(in);
  EXPECT_EQ(val(out.metrics.at("fn_precision")), 1.0);
  EXPECT_EQ(val(out.metrics.at("fn_recall")), 1.0);
  in.true_findings = torch::Tensor();
  EXPECT_FALSE(L::RocoLoss(cfg)(in).metrics.count("fn_precision"));  // no truth given: not logged
}

TEST(RocoHand, ConfigErrors) {
  auto cfg = rocoCfg("soft");
  auto in = twoIdenticalReports();
  in.tau = Tensor();
  EXPECT_THROW(L::RocoLoss{cfg}(in), biud::ValueError);  // learn_temperature without a tau
  cfg.learn_temperature = false;
  EXPECT_NO_THROW(L::RocoLoss{cfg}(in));
  cfg.fn_by_similarity = false;
  EXPECT_THROW(L::RocoLoss{cfg}, biud::ConfigError);  // soft without any FN criterion
  cfg.mode = "bogus";
  EXPECT_THROW(L::RocoLoss{cfg}, biud::ConfigError);
}

TEST(RelationHand, IdenticalRelationsGiveZeroAndBatchOfOneIsZero) {
  torch::manual_seed(3);
  auto t = torch::nn::functional::normalize(torch::randn({5, 6}, kF64),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto s = (2.5 * t).requires_grad_(true);  // any scale: the student side is normalised
  auto pair = L::pairwiseRelationLoss({s, t}, 0.1, 0.5);
  EXPECT_NEAR(val(pair.total), 0.0, 1e-12);
  EXPECT_NEAR(val(pair.terms.at("feat")), 0.0, 1e-12);
  EXPECT_NEAR(val(L::semanticRelationLoss(s, t, torch::randn({3, 6}, kF64), 0.1).total), 0.0, 1e-12);
  auto one = L::pairwiseRelationLoss({s.narrow(0, 0, 1), t.narrow(0, 0, 1)}, 0.1);
  EXPECT_EQ(val(one.total), 0.0);
  one.total.backward();  // still attached to the graph
  // Hand value, B = 3: teacher relations S*_0 = (1, 0)/tau over columns (1, 2); student relations 0.
  auto t3 = eye3();
  auto s3 = torch::tensor({{1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}}, kF64);
  // Student rows all equal: S^CT off-diagonal all 1/tau -> uniform (1/2, 1/2). Teacher: I -> uniform.
  EXPECT_NEAR(val(L::pairwiseRelationLoss({s3, t3}, 0.1).total), 0.0, 1e-12);
  // Teacher rows 0 and 1 equal (so S*_01 = 1/tau): row 0 target softmax(10, 0), student uniform.
  auto t3b = torch::tensor({{1.0, 0.0, 0.0}, {1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}}, kF64);
  const double p = std::exp(10.0) / (std::exp(10.0) + 1), q = 1 - p;
  const double klRow01 = p * std::log(p / 0.5) + q * std::log(q / 0.5);
  EXPECT_NEAR(val(L::pairwiseRelationLoss({s3, t3b}, 0.1).total), 2 * klRow01 / 3, 1e-12);  // row 2: uniform both
}

TEST(EfmHand, MaskingRatesOverManyDraws) {
  const int64_t b = 32, l = 64, vocab = 1000, maskId = 4;
  auto ids = torch::randint(10, vocab, {b, l}, torch::kLong);
  auto attn = torch::ones({b, l}, torch::kLong);
  attn.narrow(1, 56, 8).zero_();  // padding
  auto special = torch::zeros({b, l}, torch::kBool);
  special.select(1, 0).fill_(true), special.select(1, 55).fill_(true);
  auto entity = torch::zeros({b, l}, torch::kBool);
  entity.narrow(1, 5, 20).fill_(true);  // entity span
  entity.select(1, 0).fill_(true);      // a special token inside a "span" still must not be masked
  L::EfmMaskOptions o = L::EfmMaskOptions::from(biud::EfmConfig{}, vocab, maskId);  // 0.5 / 0.1, 80/10/10
  o.random_min_id = 10;
  double selEnt = 0, nEnt = 0, selOther = 0, nOther = 0, toMask = 0, toRandom = 0, kept = 0, neverBad = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto m = L::efmMask(ids, attn, entity, special, o, seed);
    const auto eligible = attn.ne(0).logical_and(special.logical_not());
    const auto sel = m.selected;
    neverBad += sel.logical_and(eligible.logical_not()).sum().item<double>();
    EXPECT_TRUE(torch::equal(sel, m.labels.ne(L::kIgnoreLabel)));
    EXPECT_TRUE(torch::equal(m.labels.masked_select(sel), ids.masked_select(sel)));
    EXPECT_TRUE(torch::equal(m.input_ids.masked_select(sel.logical_not()), ids.masked_select(sel.logical_not())));
    const auto e = entity.logical_and(eligible), oth = eligible.logical_and(entity.logical_not());
    selEnt += sel.logical_and(e).sum().item<double>(), nEnt += e.sum().item<double>();
    selOther += sel.logical_and(oth).sum().item<double>(), nOther += oth.sum().item<double>();
    const auto out = m.input_ids.masked_select(sel), orig = ids.masked_select(sel);
    toMask += out.eq(maskId).sum().item<double>();
    kept += out.eq(orig).sum().item<double>();
    toRandom += out.ne(maskId).logical_and(out.ne(orig)).sum().item<double>();
    EXPECT_TRUE(out.ge(10).logical_or(out.eq(maskId)).all().item<bool>());  // random ids >= random_min_id
  }
  EXPECT_EQ(neverBad, 0.0);  // special tokens and padding never selected
  const double total = toMask + toRandom + kept;
  // ~12,000 entity and ~19,000 other draws: standard errors below 0.005 and 0.0025.
  EXPECT_NEAR(selEnt / nEnt, 0.5, 0.02);
  EXPECT_NEAR(selOther / nOther, 0.1, 0.01);
  EXPECT_NEAR(toMask / total, 0.8, 0.02);
  EXPECT_NEAR(toRandom / total, 0.1, 0.015);  // a random id equal to the original counts as kept (p = 1/990)
  EXPECT_NEAR(kept / total, 0.1, 0.015);
}

TEST(EfmHand, MaskingIsDeterministicPerSeed) {
  auto ids = torch::randint(5, 100, {3, 40}, torch::kLong);
  auto entity = torch::rand({3, 40}).lt(0.3);
  L::EfmMaskOptions o;
  o.vocab_size = 100, o.mask_id = 1;
  const auto a = L::efmMask(ids, Tensor(), entity, Tensor(), o, uint64_t{42});
  const auto b = L::efmMask(ids, Tensor(), entity, Tensor(), o, uint64_t{42});
  const auto c = L::efmMask(ids, Tensor(), entity, Tensor(), o, uint64_t{43});
  EXPECT_TRUE(torch::equal(a.input_ids, b.input_ids));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_FALSE(torch::equal(a.labels, c.labels));
  // A generator continues its stream: two calls differ, a re-seeded generator repeats them.
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto g1 = L::efmMask(ids, Tensor(), entity, Tensor(), o, g),
             g2 = L::efmMask(ids, Tensor(), entity, Tensor(), o, g);
  EXPECT_FALSE(torch::equal(g1.labels, g2.labels));
  EXPECT_TRUE(torch::equal(L::efmMask(ids, Tensor(), entity, Tensor(), o, uint64_t{7}).labels, g1.labels));
  // Bad options are errors, not crashes.
  o.mask_id = 100;
  EXPECT_THROW(L::efmMask(ids, Tensor(), entity, Tensor(), o, uint64_t{1}), biud::ValueError);
}

TEST(EfmHand, LossOnSelectedRowsAndEmptySelection) {
  torch::manual_seed(5);
  auto logits = torch::randn({2, 5, 7}, kF64).requires_grad_(true);
  auto labels = torch::full({2, 5}, L::kIgnoreLabel, torch::kLong);
  auto none = L::efmLoss(logits, labels, Tensor());
  EXPECT_EQ(val(none.total), 0.0);
  EXPECT_EQ(val(none.metrics.at("n_masked")), 0.0);
  none.total.backward();
  labels.index_put_({0, 1}, 3), labels.index_put_({1, 4}, 6);
  const auto full = L::efmLoss(logits, labels, Tensor());
  // [N, V] logits of only the selected positions give the same loss.
  const auto rows = torch::stack({logits.select(0, 0).select(0, 1), logits.select(0, 1).select(0, 4)});
  EXPECT_NEAR(val(L::efmLoss(rows, labels, Tensor()).total), val(full.total), 1e-12);
  const double hand =
      0.5 * (-val(torch::log_softmax(logits[0][1], 0)[3]) - val(torch::log_softmax(logits[1][4], 0)[6]));
  EXPECT_NEAR(val(full.total), hand, 1e-12);
  labels.index_put_({0, 2}, 7);  // outside the vocabulary
  EXPECT_THROW(L::efmLoss(logits, labels, Tensor()), biud::ValueError);
}

TEST(BiudHand, AllAuxiliaryTermsOffIsPlainClip) {
  torch::manual_seed(9);
  biud::LossConfig cfg;
  cfg.roco.mode = "none";
  cfg.pair.weight = cfg.sem.weight = cfg.efm.weight = 0;
  L::BiudLossInputs in;
  in.roco.features = {torch::randn({5, 8}), torch::randn({5, 8})};
  in.roco.tau = torch::tensor(0.07);
  const auto out = L::BiudLoss{cfg}(in);  // relation/EFM inputs undefined: never touched
  EXPECT_NEAR(val(out.total), val(L::clipLoss(in.roco.features, torch::tensor(0.07)).total), 1e-6);
  EXPECT_EQ(out.terms.count("pair") + out.terms.count("sem") + out.terms.count("efm"), 0u);
  EXPECT_EQ(out.terms.count("roco"), 1u);
  EXPECT_EQ(out.metrics.count("roco/tau"), 1u);
  const auto s = out.scalars();
  EXPECT_NEAR(s.at("loss"), val(out.total), 1e-6);
  EXPECT_NEAR(s.at("roco/tau"), 0.07, 1e-6);
  // A term switched on without its inputs is an error naming the key.
  cfg.efm.weight = 0.5;
  try {
    L::BiudLoss{cfg}(in);
    FAIL();
  } catch (const biud::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("loss.efm.weight"), std::string::npos) << e.what();
  }
}

TEST(BiudHand, PrefixedNamesAndWeights) {
  torch::manual_seed(11);
  biud::LossConfig cfg;
  cfg.pair.weight = 2.0, cfg.sem.weight = 0.0, cfg.efm.weight = 0.5, cfg.pair.lambda_feat = 0.1;
  L::BiudLossInputs in;
  in.roco.features = {torch::randn({4, 8}), torch::randn({4, 8})};
  in.roco.tau = torch::tensor(0.07);
  in.roco.report_embeddings = torch::randn({4, 6});
  in.roco.findings = torch::tensor({0, 0, 1, 2});
  in.relation = {torch::randn({4, 6}), torch::randn({4, 6})};
  auto labels = torch::full({2, 3}, L::kIgnoreLabel, torch::kLong);
  labels.index_put_({0, 0}, 1);
  in.efm = {torch::randn({2, 3, 5}), labels, torch::ones({2, 3}, torch::kBool)};
  const auto out = L::BiudLoss{cfg}(in);
  for (const char* k : {"roco", "roco/i2t", "roco/t2i", "pair", "pair/kl", "pair/feat", "efm"})
    EXPECT_EQ(out.terms.count(k), 1u) << k;
  for (const char* k : {"roco/fn_rate", "roco/fn_rate_entities", "roco/fn_rate_similarity", "roco/tau",
                        "efm/acc_entity", "efm/acc_other", "efm/n_masked"})
    EXPECT_EQ(out.metrics.count(k), 1u) << k;
  EXPECT_EQ(out.terms.count("sem"), 0u);
  const double expected = val(out.terms.at("roco")) + 2.0 * val(out.terms.at("pair")) + 0.5 * val(out.terms.at("efm"));
  EXPECT_NEAR(val(out.total), expected, 1e-5);
  EXPECT_NEAR(val(out.metrics.at("roco/fn_rate_entities")), 2.0 / 12.0, 1e-9);
}

TEST(TrimodalHand, ZeroWeightTermsAreNotComputed) {
  biud::TrimodalConfig cfg;  // alpha 0, beta 1, gamma 1
  L::TrimodalInputs in;
  in.xray = torch::eye(3), in.ct = torch::eye(3), in.report = torch::eye(3), in.tau = torch::tensor(0.5);
  auto out = L::TrimodalLoss{cfg}(in);
  EXPECT_EQ(out.terms.count("ct_report"), 0u);
  EXPECT_NEAR(val(out.total), 2 * std::log(1.0 + 2.0 * std::exp(-2.0)), 1e-6);
  in.ct = Tensor();
  cfg.gamma = 0;
  EXPECT_NO_THROW(L::TrimodalLoss{cfg}(in));  // CT latents unused
  cfg.gamma = 1;
  EXPECT_THROW(L::TrimodalLoss{cfg}(in), biud::ValueError);
  cfg.beta = cfg.gamma = 0;
  EXPECT_THROW(L::TrimodalLoss{cfg}, biud::ConfigError);
}

TEST(LocalLayout, RanksAveragedEqualTheWholeBatchInValueAndGradient) {
  // Four simulated ranks of two rows: each scores its rows against the gathered batch (here the
  // whole tensor, so gradients reach every row as gather-with-grad would deliver them). The mean
  // of the rank losses must equal the single-process loss, gradients included.
  torch::manual_seed(21);
  const int64_t n = 8, per = 2;
  auto a = torch::randn({n, 6}, kF64).requires_grad_(true), b = torch::randn({n, 6}, kF64).requires_grad_(true);
  auto s = torch::randn({n, 5}, kF64).requires_grad_(true);
  auto t = torch::nn::functional::normalize(torch::randn({n, 5}, kF64),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto emb = torch::randn({n, 4}, kF64);
  emb[5] = emb[2];
  const auto ids = torch::tensor({0, 1, 0, 2, 3, 4, 5, 6});
  biud::RocoConfig cfg;  // soft, alpha 1, both criteria
  cfg.learn_temperature = false;
  auto total = [&](int64_t rows, int64_t offset, bool local) {
    L::RocoInputs in;
    in.features = local ? L::ContrastivePair{a.narrow(0, offset, rows), b.narrow(0, offset, rows), a, b, offset}
                        : L::ContrastivePair{a, b};
    in.report_embeddings = emb, in.findings = ids;
    auto r = L::RocoLoss{cfg}(in);
    auto p =
        local ? L::pairwiseRelationLoss({s.narrow(0, offset, rows), t.narrow(0, offset, rows), s, t, offset}, 0.1, 0.2)
              : L::pairwiseRelationLoss({s, t}, 0.1, 0.2);
    return std::make_pair(r.total + p.total, r.metrics.at("fn_rate"));
  };
  auto [full, fullRate] = total(n, 0, false);
  auto grads = torch::autograd::grad({full}, {a, b, s});
  Tensor sum = torch::zeros({}, kF64), rate = torch::zeros({}, kF64);
  for (int64_t r = 0; r < n / per; ++r) {
    auto [l, fr] = total(per, r * per, true);
    sum = sum + l / double(n / per);
    rate = rate + fr / double(n / per);
  }
  auto rankGrads = torch::autograd::grad({sum}, {a, b, s});
  EXPECT_NEAR(val(sum), val(full), 1e-12);
  EXPECT_NEAR(val(rate), val(fullRate), 1e-12);
  EXPECT_GT(val(fullRate), 0.0);
  for (size_t i = 0; i < grads.size(); ++i) EXPECT_LE((grads[i] - rankGrads[i]).abs().max().item<double>(), 1e-12) << i;
}
