// SentencePiece through the dlopen shim: training is reproducible, encode -> decode gives the
// normalised input; the biud-tokenizer app trains WordPiece/SentencePiece from a CSV manifest and
// its `encode` output equals HF BertTokenizer's on the trained vocabulary.
#include <algorithm>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/text/SpmTokenizer.h"
#include "common/TestUtil.h"

namespace bt = biud::text;

namespace {

/// A deterministic little report corpus (no randomness: the test must be reproducible).
std::vector<std::string> corpus() {
  const char* a[] = {"No", "Small", "Large", "Mild", "Possible", "Stable", "New", "Bilateral"};
  const char* b[] = {
      "pleural effusion", "pneumothorax",         "pulmonary nodule", "consolidation",          "emphysema",
      "cardiomegaly",     "pericardial effusion", "atelectasis",      "coronary calcification", "lung mass"};
  const char* c[] = {"in the right upper lobe", "at the left base",      "",
                     "measuring 4 mm",          "since the prior study", "bilaterally"};
  std::vector<std::string> out;
  for (int i = 0; i < 600; ++i) {
    std::string s = std::string(a[i % 8]) + " " + b[(i / 8) % 10];
    const std::string tail = c[(i / 3) % 6];
    if (!tail.empty()) s += " " + tail;
    out.push_back(s + ".");
  }
  return out;
}

std::string normalised(const std::string& s) {  // nmt_nfkc_cf on ASCII: lower-case, collapse spaces
  std::string out;
  for (char ch : s) {
    const char l = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch + 32) : ch;
    if (l == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += l;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

TEST(SentencePiece, TrainIsReproducibleAndRoundTrips) {
  biud::test::TempDir dir("spm");
  std::string text;
  for (const auto& s : corpus()) text += s + "\n";
  biud::test::writeText(dir / "corpus.txt", text);
  for (const std::string type : {"unigram", "bpe"}) {
    bt::SpmTrainOptions o;
    o.modelType = type;
    o.vocabSize = 120;
    // The model records its own file prefix: train twice to one prefix and compare the bytes.
    bt::trainSpm((dir / "corpus.txt").string(), (dir / (type + "_a")).string(), o);
    const std::string first = biud::fs::readFile(dir / (type + "_a.model"));
    bt::trainSpm((dir / "corpus.txt").string(), (dir / (type + "_a")).string(), o);
    EXPECT_TRUE(first == biud::fs::readFile(dir / (type + "_a.model"))) << type << ": training is not reproducible";
    const bt::SpmTokenizer tok((dir / (type + "_a.model")).string());
    EXPECT_EQ(tok.kind(), "spm");
    EXPECT_GE(tok.vocabSize(), 60);
    const auto sp = tok.specialIds();
    EXPECT_EQ(sp.pad, 0);
    EXPECT_EQ(sp.unk, 1);
    EXPECT_EQ(sp.cls, 2);
    EXPECT_EQ(sp.sep, 3);
    EXPECT_EQ(sp.mask, 4);
    for (const std::string s :
         {"No pleural effusion.", "Small   pulmonary nodule measuring 4 mm.", "STABLE CARDIOMEGALY."}) {
      bt::EncodeOptions eo;
      eo.maxLength = 64;
      eo.padding = bt::Padding::MaxLength;
      const bt::Encoding e = tok.encode(s, eo);
      ASSERT_EQ(e.ids.size(), 64u);
      EXPECT_EQ(e.ids[0], sp.cls);
      const int n = e.length();
      EXPECT_EQ(e.ids[static_cast<std::size_t>(n - 1)], sp.sep);
      EXPECT_EQ(e.ids[static_cast<std::size_t>(n)], sp.pad);
      EXPECT_EQ(e.attentionMask[static_cast<std::size_t>(n)], 0);
      EXPECT_EQ(tok.decode(e.ids), normalised(s)) << type;
      // Offsets: the pieces' surfaces, in order, spell the input (without spaces).
      ASSERT_EQ(e.offsets.size(), e.ids.size());
      std::string spelled, squeezed;
      int last = 0;
      for (int k = 1; k + 1 < n; ++k) {
        const auto [b, en] = e.offsets[static_cast<std::size_t>(k)];
        EXPECT_TRUE(b >= last && en >= b && en <= static_cast<int>(s.size())) << type << ": " << s;
        spelled += s.substr(static_cast<std::size_t>(b), static_cast<std::size_t>(en - b));
        last = en;
      }
      for (char ch : s)
        if (ch != ' ') squeezed += ch;
      spelled.erase(std::remove(spelled.begin(), spelled.end(), ' '), spelled.end());
      EXPECT_EQ(spelled, squeezed) << type;
      for (int id : e.ids) EXPECT_NE(id, sp.unk) << type << ": " << s;
    }
    bt::EncodeOptions shortOpt;
    shortOpt.maxLength = 4;
    EXPECT_EQ(tok.encode("No pleural effusion.", shortOpt).ids.size(), 4u);
  }
  // A different corpus gives a different model (the test can fail).
  biud::test::writeText(dir / "other.txt", "alpha beta gamma\ndelta epsilon\n" + text.substr(0, 2000));
  bt::SpmTrainOptions o;
  o.vocabSize = 120;
  bt::trainSpm((dir / "other.txt").string(), (dir / "other").string(), o);
  const bt::SpmTokenizer other((dir / "other.model").string()), uni((dir / "unigram_a.model").string());
  EXPECT_NE(other.encode("alpha beta").ids, uni.encode("alpha beta").ids);
  EXPECT_THROW(bt::trainSpm((dir / "missing.txt").string(), (dir / "x").string(), o), biud::IoError);
}

TEST(TokenizerApp, TrainEncodeMatchesHf) {
  biud::test::TempDir dir("tokapp");
  std::string csv = "id,findings,impression\n";
  int i = 0;
  for (const auto& s : corpus()) csv += std::to_string(i++) + ",\"" + s + "\",\"No acute findings, stable.\"\n";
  biud::test::writeText(dir / "manifest.csv", csv);
  const std::string app = biud::test::app("biud-tokenizer");
  auto r = biud::test::run(app + " -q train --kind wordpiece --vocab-size 200 -i " +
                           biud::test::quote((dir / "manifest.csv").string()) + " --out " +
                           biud::test::quote((dir / "wp").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  std::string lines =
      "No pleural effusion.\nSmall pulmonary nodule measuring 4 mm in the right upper lobe, stable.\nUnseen wordz "
      "xyz!\n\n";
  for (int k = 0; k < 3; ++k)
    lines += corpus()[static_cast<std::size_t>(k * 37)] + " " + corpus()[static_cast<std::size_t>(k * 11)] + "\n";
  biud::test::writeText(dir / "in.txt", lines);
  r = biud::test::run(app + " -q encode --vocab " + biud::test::quote((dir / "wp" / "vocab.txt").string()) + " -i " +
                      biud::test::quote((dir / "in.txt").string()) + " --max-length 16 --pad --output " +
                      biud::test::quote((dir / "ours.jsonl").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string hf =
      biud::test::runPython("text_hf_encode.py", biud::test::quote((dir / "wp" / "vocab.txt").string()) + " " +
                                                     biud::test::quote((dir / "in.txt").string()) + " 16");
  std::istringstream a(biud::test::readText(dir / "ours.jsonl")), b(hf);
  std::string la, lb;
  int n = 0;
  while (std::getline(b, lb)) {
    if (lb.empty() || lb[0] != '{') continue;
    ASSERT_TRUE(std::getline(a, la)) << "app wrote fewer lines than HF";
    const auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
    EXPECT_EQ(ja["ids"], jb["ids"]) << "line " << n;
    EXPECT_EQ(ja["attention_mask"], jb["attention_mask"]) << "line " << n;
    ++n;
  }
  EXPECT_EQ(n, 7);
  // SentencePiece via the app, then inspect reports coverage.
  r = biud::test::run(app + " -q train --kind bpe --vocab-size 150 -i " +
                      biud::test::quote((dir / "manifest.csv").string()) + " --out " +
                      biud::test::quote((dir / "spm").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = biud::test::run(app + " -q inspect --spm " + biud::test::quote((dir / "spm" / "tokenizer.model").string()) +
                      " -i " + biud::test::quote((dir / "manifest.csv").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto js = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(js["corpus"]["texts"], 600);
  EXPECT_EQ(js["corpus"]["unk_tokens"], 0);
  // A bad flag value is an error naming the flag.
  r = biud::test::run(app + " train --kind nope -i x");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--kind"), std::string::npos) << r.out;
}

TEST(SentencePiece, IdsMatchPythonPackageWhenInstalled) {
  biud::test::TempDir dir("spmpy");
  std::string text;
  for (const auto& s : corpus()) text += s + "\n";
  biud::test::writeText(dir / "corpus.txt", text);
  bt::SpmTrainOptions o;
  o.vocabSize = 100;
  bt::trainSpm((dir / "corpus.txt").string(), (dir / "m").string(), o);
  const std::string lines =
      "No pleural effusion.\nMild emphysema since the prior study.\nUnseen words: zebra quokka.\n";
  biud::test::writeText(dir / "in.txt", lines);
  const std::string out = biud::test::runPython("text_spm_ids.py", biud::test::quote((dir / "m.model").string()) + " " +
                                                                       biud::test::quote((dir / "in.txt").string()));
  if (out.find("SKIP") != std::string::npos) GTEST_SKIP() << "Python sentencepiece is not installed";
  const bt::SpmTokenizer tok((dir / "m.model").string());
  std::istringstream py(out), in(lines);
  std::string l, p;
  while (std::getline(in, l) && std::getline(py, p)) {
    bt::EncodeOptions eo;
    eo.addSpecialTokens = false;
    EXPECT_EQ(nlohmann::json(tok.encode(l, eo).ids), nlohmann::json::parse(p)) << l;
  }
}
