// Report parsing, negation/uncertainty scope and lexicon entity extraction against hand-labelled
// report sentences; prompt-set loading; entity spans -> WordPiece token positions.
#include <gtest/gtest.h>

#include "biud/core/Error.h"
#include "biud/text/Entities.h"
#include "biud/text/Prompts.h"
#include "biud/text/WordPiece.h"
#include "common/TestUtil.h"

namespace bt = biud::text;
using S = bt::FindingStatus;

namespace {

const bt::EntityExtractor& synthetic() {
  static const bt::EntityExtractor ex(
      bt::Lexicon::load((biud::test::sourceDir() / "configs/lexicon/synthetic.yaml").string()));
  return ex;
}
const bt::EntityExtractor& ctRate() {
  static const bt::EntityExtractor ex(
      bt::Lexicon::load((biud::test::sourceDir() / "configs/lexicon/ct_rate.yaml").string()));
  return ex;
}

S status(const bt::EntityExtractor& ex, const std::string& text, const std::string& id) {
  const auto labels = ex.extract(text);
  const int i = ex.lexicon().findingIndex(id);
  EXPECT_GE(i, 0) << id;
  return i < 0 ? S::NotMentioned : labels.status[static_cast<std::size_t>(i)];
}

struct Case {
  const char* text;
  const char* finding;
  S expect;
};

}  // namespace

TEST(Report, SentencesAndSections) {
  const std::string r =
      "CLINICAL HISTORY: Cough.\nFINDINGS: There is a 2.3 x 1.8 cm mass, e.g. in the LUL. No effusion!\n"
      "IMPRESSION:\n1. Mass, suspicious for malignancy.\n2. No pneumothorax.";
  const bt::ReportParser p;
  const auto pr = p.parse(r);
  ASSERT_EQ(pr.sections.size(), 3u);
  EXPECT_EQ(pr.sections[0].name, "history");
  EXPECT_EQ(pr.sections[1].name, "findings");
  EXPECT_EQ(pr.sections[2].name, "impression");
  std::vector<std::string> sents;
  for (const auto& s : pr.sentences)
    sents.push_back(r.substr(static_cast<std::size_t>(s.begin), static_cast<std::size_t>(s.end - s.begin)));
  EXPECT_EQ(sents, (std::vector<std::string>{"Cough.", "There is a 2.3 x 1.8 cm mass, e.g. in the LUL.", "No effusion!",
                                             "1. Mass, suspicious for malignancy.", "2. No pneumothorax."}));
  EXPECT_EQ(pr.section("impression"), "\n1. Mass, suspicious for malignancy.\n2. No pneumothorax.");
  // Headings also after a sentence end on one line; no headings = one "text" section.
  EXPECT_EQ(p.parse("Lungs clear. Impression: normal.").sections.size(), 2u);
  EXPECT_EQ(p.parse("No acute findings.").sections[0].name, "text");
}

TEST(Report, WordsKeepOffsets) {
  const auto w = bt::splitWords("Ground-glass 2.5cm, can't");
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[0].norm, "ground");
  EXPECT_EQ(w[1].norm, "glass");
  EXPECT_EQ(w[2].norm, "2.5cm");
  EXPECT_TRUE(w[3].punct);
  EXPECT_EQ(w[4].norm, "can't");
  EXPECT_EQ(w[4].begin, 20);
  EXPECT_EQ(w[4].end, 25);
}

TEST(Entities, HandLabelledSyntheticSentences) {
  const Case cases[] = {
      {"No pleural effusion.", "pleural_effusion", S::Absent},
      {"There is no evidence of pneumothorax.", "pneumothorax", S::Absent},
      {"No evidence of pleural effusion, pneumothorax, or consolidation.", "consolidation", S::Absent},
      {"No evidence of pleural effusion, pneumothorax, or consolidation.", "pneumothorax", S::Absent},
      {"Small left pleural effusion.", "pleural_effusion", S::Present},
      {"Possible early consolidation at the left base.", "consolidation", S::Uncertain},
      {"Consolidation cannot be excluded.", "consolidation", S::Uncertain},
      {"Pneumothorax cannot be ruled out.", "pneumothorax", S::Uncertain},  // longer than the negation "ruled out"
      {"Pneumothorax has been ruled out.", "pneumothorax", S::Absent},
      {"Pleural effusion is absent.", "pleural_effusion", S::Absent},
      {"A pericardial effusion is not seen.", "pericardial_effusion", S::Absent},
      {"No pericardial effusion but there is a small pleural effusion.", "pleural_effusion", S::Present},
      {"No pericardial effusion but there is a small pleural effusion.", "pericardial_effusion", S::Absent},
      {"No pleural or pericardial effusion.", "pericardial_effusion", S::Absent},
      {"No pleural or pericardial effusion.", "pleural_effusion", S::Absent},
      {"There is a 6 mm pulmonary nodule in the right upper lobe.", "lung_nodule", S::Present},
      {"Nodular opacity in the lingula, suspicious for malignancy.", "lung_nodule", S::Present},
      {"Findings suspicious for a lung mass.", "lung_mass", S::Uncertain},
      {"The heart is enlarged.", "cardiomegaly", S::Present},
      {"Enlarged heart.", "cardiomegaly", S::Present},
      {"Mild cardiac enlargement.", "cardiomegaly", S::Present},
      {"Heart size is normal.", "cardiomegaly", S::Absent},
      {"The heart is not enlarged.", "cardiomegaly", S::Absent},
      {"Bibasilar subsegmental atelectasis.", "atelectasis", S::Present},
      {"Partial collapse of the left lower lobe.", "atelectasis", S::Present},
      {"Coronary calcification is noted.", "arterial_calcification", S::Present},
      {"Centrilobular emphysema, upper lobe predominant.", "emphysema", S::Present},
      {"Lungs are free of emphysema.", "emphysema", S::Absent},
      {"Negative for pneumothorax.", "pneumothorax", S::Absent},
      {"Previously seen pneumothorax has resolved.", "pneumothorax", S::Absent},
      {"Questionable small nodule in the left lower lobe.", "lung_nodule", S::Uncertain},
      {"Opacity in the right lower lobe may represent atelectasis.", "atelectasis", S::Uncertain},
      {"Probable atelectasis; no pneumothorax.", "atelectasis", S::Uncertain},
      {"Probable atelectasis; no pneumothorax.", "pneumothorax", S::Absent},
      {"No change in the right upper lobe nodule.", "lung_nodule", S::Present},            // pseudo-negation
      {"No pneumothorax. Large right pleural effusion.", "pleural_effusion", S::Present},  // scope ends at the sentence
      {"No consolidation, however there is a nodule.", "lung_nodule", S::Present},
      {"Without pleural effusion.", "pleural_effusion", S::Absent},
      {"The lungs are clear.", "lung_nodule", S::NotMentioned},
      // Report level: one affirmed mention wins over a negated one.
      {"No right pleural effusion. Small left pleural effusion.", "pleural_effusion", S::Present},
      {"No definite nodule. Possible nodule in the RUL.", "lung_nodule", S::Uncertain},
      {"No focal consolidation, pleural effusion, or pneumothorax.", "pleural_effusion", S::Absent},
      {"Interval resolution of the previously seen right pleural effusion.", "pleural_effusion", S::Absent},
      {"No suspicious pulmonary nodules or masses.", "lung_mass", S::Absent},
      {"Cardiac silhouette is within normal limits.", "cardiomegaly", S::Absent},
      {"Lung nodule is not seen.", "lung_nodule", S::Absent},
      {"Findings may represent early pneumonia.", "consolidation", S::Uncertain},
      {"Patchy consolidation in the right lower lobe, likely pneumonia.", "consolidation", S::Present},
      {"Moderate coronary artery calcifications.", "arterial_calcification", S::Present},
      {"Small bilateral pleural effusions.", "pleural_effusion", S::Present},
      {"Previously noted nodule has resolved.", "lung_nodule", S::Absent},
      {"The heart is mildly enlarged.", "cardiomegaly", S::Present},
  };
  int i = 0;
  for (const auto& c : cases)
    EXPECT_EQ(status(synthetic(), c.text, c.finding), c.expect)
        << "case " << i++ << ": " << c.text << " / " << c.finding;
}

TEST(Entities, HandLabelledCtRateSentences) {
  const Case cases[] = {
      {"Calcific atheroma plaques are observed in the aorta.", "arterial_wall_calcification", S::Present},
      {"No lymph node in pathological size and appearance was detected in the mediastinum.", "lymphadenopathy",
       S::Absent},
      {"Lymph nodes of pathological size are observed in the mediastinum.", "lymphadenopathy", S::Present},
      {"No pleural or pericardial effusion was detected.", "pericardial_effusion", S::Absent},
      {"Sliding type hiatal hernia is observed.", "hiatal_hernia", S::Present},
      {"Fibroatelectatic sequelae changes in both lungs.", "pulmonary_fibrotic_sequela", S::Present},
      {"Ground-glass opacities in both lungs.", "lung_opacity", S::Present},
      {"Mosaic attenuation pattern is noted.", "mosaic_attenuation_pattern", S::Present},
      {"Bronchiectatic changes in the lower lobes.", "bronchiectasis", S::Present},
      {"Interlobular septal thickening is not seen.", "interlobular_septal_thickening", S::Absent},
      {"Coronary artery calcifications.", "coronary_artery_wall_calcification", S::Present},
      {"Coronary artery calcifications.", "arterial_wall_calcification", S::NotMentioned},
      {"Pacemaker leads in the right heart.", "medical_material", S::Present},
      {"Heart contour and size are normal.", "cardiomegaly", S::Absent},
      {"Peribronchial thickening in both lungs.", "peribronchial_thickening", S::Present},
  };
  int i = 0;
  for (const auto& c : cases)
    EXPECT_EQ(status(ctRate(), c.text, c.finding), c.expect) << "case " << i++ << ": " << c.text << " / " << c.finding;
  EXPECT_EQ(ctRate().lexicon().findings.size(), 18u);
  EXPECT_EQ(ctRate().lexicon().findings[0].name, "Medical material");
}

TEST(Entities, AttributesAndSpans) {
  const std::string r =
      "There is a 2.3 x 1.8 cm spiculated mass in the left upper lobe and a small right pleural effusion.";
  const auto labels = synthetic().extract(r);
  const bt::Entity* mass = nullptr;
  const bt::Entity* eff = nullptr;
  for (const auto& e : labels.entities) {
    if (e.kind == bt::EntityKind::Finding && e.id == "lung_mass") mass = &e;
    if (e.kind == bt::EntityKind::Finding && e.id == "pleural_effusion") eff = &e;
  }
  ASSERT_TRUE(mass && eff);
  EXPECT_EQ(r.substr(static_cast<std::size_t>(mass->begin), static_cast<std::size_t>(mass->end - mass->begin)),
            "spiculated mass");
  EXPECT_DOUBLE_EQ(mass->sizeMm, 23.0);
  EXPECT_EQ(mass->anatomy, "left_upper_lobe");
  EXPECT_EQ(mass->laterality, "left");
  EXPECT_EQ(eff->laterality, "right");
  EXPECT_EQ(eff->severity, "mild");
  EXPECT_EQ(r.substr(static_cast<std::size_t>(eff->begin), static_cast<std::size_t>(eff->end - eff->begin)),
            "pleural effusion");
  const auto nod = synthetic().extract("Bilateral ground-glass nodules, up to 8mm.");
  bool found = false;
  for (const auto& e : nod.entities)
    if (e.kind == bt::EntityKind::Finding && e.id == "lung_nodule") {
      found = true;
      EXPECT_EQ(e.laterality, "bilateral");
      EXPECT_EQ(e.density, "ground_glass");
      EXPECT_DOUBLE_EQ(e.sizeMm, 8.0);
    }
  EXPECT_TRUE(found);
  // JSON carries the labels of all findings.
  const std::string js = synthetic().toJson(labels);
  EXPECT_NE(js.find("\"lung_mass\":\"present\""), std::string::npos) << js;
  EXPECT_NE(js.find("\"pneumothorax\":\"not_mentioned\""), std::string::npos) << js;
}

TEST(Entities, SpansMapToWordPieceTokens) {
  // Vocabulary chosen so that "effusion" is split: pl ##eur ##al eff ##usion.
  bt::WordPiece wp({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pl", "##eur", "##al", "eff", "##usion", ".",
                    "small", "right"},
                   {});
  const std::string r = "No right pleural effusion. Small effusion.";
  const auto labels = synthetic().extract(r);
  const auto enc = wp.encode(r);
  // [CLS] no right pl ##eur ##al eff ##usion . small eff ##usion . [SEP]
  //   0    1   2    3   4     5   6    7      8   9     10   11    12  13
  EXPECT_EQ(bt::entityTokenPositions(enc, labels.entities, true), (std::vector<int>{3, 4, 5, 6, 7, 10, 11}));
  // With attributes: "right" (laterality) and "small" (severity) too.
  EXPECT_EQ(bt::entityTokenPositions(enc, labels.entities, false), (std::vector<int>{2, 3, 4, 5, 6, 7, 9, 10, 11}));
}

TEST(Entities, LexiconErrorsNameTheProblem) {
  auto expectError = [](const std::string& yaml, const std::string& needle) {
    try {
      bt::Lexicon::fromString(yaml, "lex.yaml");
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const biud::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectError("findings: [{id: a, synonyms: [x]}, {id: a, synonyms: [y]}]", "duplicate finding id `a`");
  expectError("findings: [{id: a}]", "has no synonyms");
  expectError("findings: [{id: a, synonym: [x]}]", "did you mean `synonyms`");
  expectError("finding: []", "unknown key `finding`");
  expectError("findings: [", "not valid YAML");
}

TEST(Prompts, LoadExpandAndValidate) {
  const auto ps = bt::PromptSet::load((biud::test::sourceDir() / "configs/prompts/synthetic.yaml").string());
  EXPECT_EQ(ps.ids(), (std::vector<std::string>{"lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax",
                                                "consolidation", "emphysema", "cardiomegaly", "pericardial_effusion",
                                                "atelectasis", "arterial_calcification"}));
  const auto& pe = ps.at("pleural_effusion");
  // 2 own + 4 templates x 2 terms.
  EXPECT_EQ(pe.positive.size(), 10u);
  EXPECT_EQ(pe.positive[0], "Small left pleural effusion.");
  EXPECT_EQ(pe.positive[2], "Pleural effusion is present.");  // first template, first term, capitalised
  EXPECT_EQ(pe.negative[2], "No pleural effusion.");          // "No pleural effusion or pneumothorax." comes before
  EXPECT_NE(std::find(pe.negative.begin(), pe.negative.end(), "No evidence of pleural fluid."), pe.negative.end());
  EXPECT_THROW(ps.at("nope"), biud::ConfigError);
  const auto ct = bt::PromptSet::load((biud::test::sourceDir() / "configs/prompts/ct_rate.yaml").string());
  EXPECT_EQ(ct.findings.size(), 18u);
  // The prompt ids of each benchmark are exactly its lexicon's finding ids.
  for (const auto& [p, lex] : {std::pair{&ps, &synthetic()}, std::pair{&ct, &ctRate()}}) {
    std::vector<std::string> lexIds;
    for (const auto& f : lex->lexicon().findings) lexIds.push_back(f.id);
    EXPECT_EQ(p->ids(), lexIds);
  }
  EXPECT_THROW(bt::PromptSet::fromString("templates: {positive: [\"no slot\"]}\nfindings: [{id: a, terms: [x]}]"),
               biud::ConfigError);
  EXPECT_THROW(bt::PromptSet::fromString("findings: [{id: a, positive: [x]}]"), biud::ConfigError);  // no negative
}

// Label columns find their prompts under the names the data set really uses: CT-RATE's 18 label
// columns (spelled as in CT-CLIP's scripts/zero_shot.py) match configs/prompts/ct_rate.yaml, as do
// the snake_case ids; a prompt set that matches no column is an error naming both sides.
TEST(Prompts, LabelColumnsMatchByTheDataSetsNames) {
  const std::string path = (biud::test::sourceDir() / "configs/prompts/ct_rate.yaml").string();
  const auto ct = bt::PromptSet::load(path);
  const std::vector<std::string> ctRate{"Medical material",
                                        "Arterial wall calcification",
                                        "Cardiomegaly",
                                        "Pericardial effusion",
                                        "Coronary artery wall calcification",
                                        "Hiatal hernia",
                                        "Lymphadenopathy",
                                        "Emphysema",
                                        "Atelectasis",
                                        "Lung nodule",
                                        "Lung opacity",
                                        "Pulmonary fibrotic sequela",
                                        "Pleural effusion",
                                        "Mosaic attenuation pattern",
                                        "Peribronchial thickening",
                                        "Consolidation",
                                        "Bronchiectasis",
                                        "Interlobular septal thickening"};
  // A manifest's columns in another order, with `id`-like extra label columns around them.
  std::vector<std::string> cols{"Age"};
  cols.insert(cols.end(), ctRate.rbegin(), ctRate.rend());
  const auto m = ct.matchLabels(cols);
  EXPECT_EQ(m.findings, std::vector<std::string>(ctRate.rbegin(), ctRate.rend()));  // the data set's own names
  ASSERT_EQ(m.columns.size(), 18u);
  for (std::size_t k = 0; k < 18; ++k) EXPECT_EQ(m.columns[k], static_cast<std::int64_t>(k + 1));
  EXPECT_EQ(m.unmatched, std::vector<std::string>{"Age"});
  // Each name finds the finding whose id is its snake_case form (the ids are written by hand in the YAML).
  for (const auto& n : ctRate) {
    const auto* f = ct.match(n);
    ASSERT_NE(f, nullptr) << n;
    EXPECT_EQ(f->name, n);
    EXPECT_EQ(f->id, bt::labelKey(n));
    EXPECT_EQ(&ct.at(n), f);
    EXPECT_EQ(ct.match(f->id), f);  // snake_case ids
  }
  EXPECT_EQ(bt::labelKey("Coronary artery wall calcification"), "coronary_artery_wall_calcification");
  EXPECT_EQ(bt::labelKey("  LUNG-Nodule (any) "), "lung_nodule_any");
  EXPECT_EQ(ct.match("LUNG NODULE")->id, "lung_nodule");
  EXPECT_EQ(ct.match("lung-nodule")->id, "lung_nodule");
  EXPECT_EQ(ct.match("Lung nodules"), nullptr);
  EXPECT_EQ(ct.match(""), nullptr);
  EXPECT_EQ(ct.matchLabels({"medical_material", "Lung opacity"}).columns, (std::vector<std::int64_t>{0, 1}));
  // No column matches: one error with both lists and the fix.
  const auto syn = bt::PromptSet::load((biud::test::sourceDir() / "configs/prompts/synthetic.yaml").string());
  try {
    syn.matchLabels({"Medical material", "Hiatal hernia"}, "manifest `m.csv`");
    ADD_FAILURE() << "no error";
  } catch (const biud::ConfigError& e) {
    const std::string w = e.what();
    for (const char* s : {"manifest `m.csv`", "synthetic.yaml", "`Medical material`, `Hiatal hernia`", "lung_nodule",
                          "arterial_calcification", "`id` or `name`"})
      EXPECT_NE(w.find(s), std::string::npos) << s << " not in: " << w;
  }
  try {
    ct.at("Pneumothorax");
    ADD_FAILURE() << "no error";
  } catch (const biud::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("medical_material (Medical material)"), std::string::npos) << e.what();
  }
}

TEST(Prompts, ReportFormComposesWholeReports) {
  const auto ps = bt::PromptSet::fromString(R"(
name: r
report: {prefix: "Lungs clear.", suffix: "Bones intact.", impression: ["Normal.", "No acute process."]}
findings:
  - {id: a, normal: "No A.", positive: ["A here.", "Big A."], impression: ["A."]}
  - {id: b, normal: "No B.", positive: ["B here."]}
)");
  ASSERT_EQ(ps.ids(), (std::vector<std::string>{"a", "b"}));
  // Worked by hand: the normal report with each normal impression ...
  const std::vector<std::string> normal{"Lungs clear. No A. No B. Bones intact. Normal.",
                                        "Lungs clear. No A. No B. Bones intact. No acute process."};
  EXPECT_EQ(ps.at("a").negative, normal);
  EXPECT_EQ(ps.at("b").negative, normal);
  // ... and the same report with one finding's sentence swapped, closed by its impressions
  // (b has none: its positive sentences are its impressions).
  EXPECT_EQ(ps.at("a").positive, (std::vector<std::string>{"Lungs clear. A here. No B. Bones intact. A.",
                                                           "Lungs clear. Big A. No B. Bones intact. A."}));
  EXPECT_EQ(ps.at("b").positive, (std::vector<std::string>{"Lungs clear. No A. B here. Bones intact. B here."}));
  // The shipped report-form set covers exactly the synthetic lexicon's findings.
  const auto shipped =
      bt::PromptSet::load((biud::test::sourceDir() / "configs/prompts/synthetic-reports.yaml").string());
  std::vector<std::string> lexIds;
  for (const auto& f : synthetic().lexicon().findings) lexIds.push_back(f.id);
  EXPECT_EQ(shipped.ids(), lexIds);
  EXPECT_EQ(shipped.at("pneumothorax").positive.size(), 4u);  // 2 sentences x 2 impressions
  // Mistakes name the fix.
  EXPECT_THROW(bt::PromptSet::fromString("report: {impression: [n]}\nfindings: [{id: a, positive: [x]}]"),
               biud::ConfigError);  // no `normal`
  EXPECT_THROW(
      bt::PromptSet::fromString("report: {impression: [n]}\ntemplates: {positive: [\"{}\"], negative: [\"no {}\"]}\n"
                                "findings: [{id: a, normal: n, positive: [x]}]"),
      biud::ConfigError);  // templates and report
  EXPECT_THROW(
      bt::PromptSet::fromString("report: {impression: [n]}\nfindings: [{id: a, normal: n, positive: [x], terms: [t]}]"),
      biud::ConfigError);  // `terms` belongs to the template form
}
