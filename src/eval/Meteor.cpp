// METEOR 1.5-style scoring (exact + Porter-stem stages) and the Porter stemmer.
// Written from the published descriptions (Porter 1980; Denkowski & Lavie 2014), not from the
// METEOR jar: no synonym/paraphrase stages, a greedy aligner and our own function-word list.
#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

#include "biud/core/Error.h"
#include "biud/eval/Nlg.h"

namespace biud::eval {

namespace {

class Porter {
 public:
  explicit Porter(std::string w) : b_(std::move(w)), k_(static_cast<int>(b_.size()) - 1) {}
  std::string run() {
    if (k_ <= 1) return b_;
    step1ab();
    if (k_ > 0) {
      step1c();
      step2();
      step3();
      step4();
      step5();
    }
    return b_.substr(0, k_ + 1);
  }

 private:
  bool cons(int i) const {
    switch (b_[i]) {
      case 'a':
      case 'e':
      case 'i':
      case 'o':
      case 'u':
        return false;
      case 'y':
        return i == 0 ? true : !cons(i - 1);
      default:
        return true;
    }
  }
  /// Number of VC sequences in b[0..j].
  int m() const {
    int n = 0, i = 0;
    for (;;) {
      if (i > j_) return n;
      if (!cons(i)) break;
      ++i;
    }
    ++i;
    for (;;) {
      for (;;) {
        if (i > j_) return n;
        if (cons(i)) break;
        ++i;
      }
      ++i;
      ++n;
      for (;;) {
        if (i > j_) return n;
        if (!cons(i)) break;
        ++i;
      }
      ++i;
    }
  }
  bool vowelInStem() const {
    for (int i = 0; i <= j_; ++i)
      if (!cons(i)) return true;
    return false;
  }
  bool doublec(int j) const { return j >= 1 && b_[j] == b_[j - 1] && cons(j); }
  bool cvc(int i) const {
    if (i < 2 || !cons(i) || cons(i - 1) || !cons(i - 2)) return false;
    const char c = b_[i];
    return c != 'w' && c != 'x' && c != 'y';
  }
  bool ends(const std::string& s) {
    const int l = static_cast<int>(s.size());
    if (l > k_ + 1) return false;
    if (b_.compare(k_ - l + 1, l, s) != 0) return false;
    j_ = k_ - l;
    return true;
  }
  void setto(const std::string& s) {
    b_.replace(j_ + 1, k_ - j_, s);
    k_ = j_ + static_cast<int>(s.size());
    b_.resize(k_ + 1);
  }
  void r(const std::string& s) {
    if (m() > 0) setto(s);
  }
  void step1ab() {
    if (b_[k_] == 's') {
      if (ends("sses"))
        k_ -= 2;
      else if (ends("ies"))
        setto("i");
      else if (b_[k_ - 1] != 's')
        --k_;
    }
    b_.resize(k_ + 1);
    if (ends("eed")) {
      if (m() > 0) --k_;
    } else if ((ends("ed") || ends("ing")) && vowelInStem()) {
      k_ = j_;
      b_.resize(k_ + 1);
      if (ends("at"))
        setto("ate");
      else if (ends("bl"))
        setto("ble");
      else if (ends("iz"))
        setto("ize");
      else if (doublec(k_)) {
        --k_;
        const char c = b_[k_];
        if (c == 'l' || c == 's' || c == 'z') ++k_;
      } else if ((j_ = k_, m() == 1) && cvc(k_)) {
        setto("e");
      }
    }
    b_.resize(k_ + 1);
  }
  void step1c() {
    if (ends("y") && vowelInStem()) b_[k_] = 'i';
  }
  void step2() {
    if (k_ < 1) return;
    static const std::vector<std::pair<std::string, std::string>> rules = {
        {"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"}, {"izer", "ize"},
        {"bli", "ble"},     {"alli", "al"},     {"entli", "ent"}, {"eli", "e"},     {"ousli", "ous"},
        {"ization", "ize"}, {"ation", "ate"},   {"ator", "ate"},  {"alism", "al"},  {"iveness", "ive"},
        {"fulness", "ful"}, {"ousness", "ous"}, {"aliti", "al"},  {"iviti", "ive"}, {"biliti", "ble"},
        {"logi", "log"}};
    for (const auto& [suf, rep] : rules)
      if (ends(suf)) {
        r(rep);
        return;
      }
  }
  void step3() {
    static const std::vector<std::pair<std::string, std::string>> rules = {
        {"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"}, {"ical", "ic"}, {"ful", ""}, {"ness", ""}};
    for (const auto& [suf, rep] : rules)
      if (ends(suf)) {
        r(rep);
        return;
      }
  }
  void step4() {
    static const std::vector<std::string> sufs = {"al",  "ance",  "ence", "er",  "ic",  "able", "ible",
                                                  "ant", "ement", "ment", "ent", "ion", "ou",   "ism",
                                                  "ate", "iti",   "ous",  "ive", "ize"};
    for (const auto& s : sufs) {
      if (!ends(s)) continue;
      if (s == "ion" && !(j_ >= 0 && (b_[j_] == 's' || b_[j_] == 't'))) return;
      if (m() > 1) {
        k_ = j_;
        b_.resize(k_ + 1);
      }
      return;
    }
  }
  void step5() {
    j_ = k_;
    if (b_[k_] == 'e') {
      const int a = m();
      if (a > 1 || (a == 1 && !cvc(k_ - 1))) --k_;
    }
    if (b_[k_] == 'l' && doublec(k_) && m() > 1) --k_;
    b_.resize(k_ + 1);
  }

  std::string b_;
  int k_, j_ = 0;
};

/// Common English function words (our own list; METEOR ships a corpus-derived one) and the
/// punctuation tokens of METEOR's list.
const std::unordered_set<std::string>& functionWords() {
  static const std::unordered_set<std::string> w = {
      "a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "for", "from", "by", "with", "without",
      "as", "into", "onto", "over", "under", "within", "about", "is", "are", "was", "were", "be", "been", "being", "am",
      "has", "have", "had", "do", "does", "did", "it", "its", "this", "that", "these", "those", "there", "here",
      "which", "who", "whom", "whose", "what", "than", "then", "so", "such", "if", "also", "may", "can", "could",
      "would", "should", "will", "shall", "might", "must", "he", "she", "they", "we", "you", "i", "his", "her", "their",
      "our", "your", "my", "them", "him", "us", "me", "not", "no", "all", "any", "some", "each", "both", "either",
      "neither", "other", "s", "per", "via", "upon",
      // Punctuation tokens, function words in METEOR 1.5's english.words too (biud's own
      // tokenisation never produces them; CT2Rep's cleaning keeps the full stops).
      ".", ",", ":", ";", "-", "--", "(", ")", "\"", "'", "?", "$"};
  return w;
}

struct Stats {
  double testLen = 0, refLen = 0, testFunc = 0, refFunc = 0;
  double testContent[2] = {0, 0}, testFuncM[2] = {0, 0}, refContent[2] = {0, 0}, refFuncM[2] = {0, 0};
  double testMatched = 0, refMatched = 0, chunks = 0;
  void add(const Stats& o) {
    testLen += o.testLen;
    refLen += o.refLen;
    testFunc += o.testFunc;
    refFunc += o.refFunc;
    for (int s = 0; s < 2; ++s) {
      testContent[s] += o.testContent[s];
      testFuncM[s] += o.testFuncM[s];
      refContent[s] += o.refContent[s];
      refFuncM[s] += o.refFuncM[s];
    }
    testMatched += o.testMatched;
    refMatched += o.refMatched;
    chunks += o.chunks;
  }
};

constexpr double kAlpha = 0.85, kBeta = 0.2, kGamma = 0.6, kDelta = 0.75;
constexpr double kWeights[2] = {1.0, 0.6};  // exact, stem

double scoreOf(const Stats& s) {
  const double tDen = kDelta * (s.testLen - s.testFunc) + (1 - kDelta) * s.testFunc;
  const double rDen = kDelta * (s.refLen - s.refFunc) + (1 - kDelta) * s.refFunc;
  double pNum = 0, rNum = 0;
  for (int m = 0; m < 2; ++m) {
    pNum += kWeights[m] * (kDelta * s.testContent[m] + (1 - kDelta) * s.testFuncM[m]);
    rNum += kWeights[m] * (kDelta * s.refContent[m] + (1 - kDelta) * s.refFuncM[m]);
  }
  if (tDen <= 0 || rDen <= 0) return 0.0;
  const double P = pNum / tDen, R = rNum / rDen;
  if (P <= 0 || R <= 0) return 0.0;
  const double fmean = P * R / (kAlpha * P + (1 - kAlpha) * R);
  double frag = 0;
  if (!(s.testMatched == s.testLen && s.refMatched == s.refLen && s.chunks == 1))
    frag = s.chunks / ((s.testMatched + s.refMatched) / 2.0);
  return fmean * (1.0 - kGamma * std::pow(frag, kBeta));
}

/// Align `h` to `r` in two stages (exact, then stem on what is left). Within a stage, each
/// hypothesis word takes, among the free reference words it may match, the one continuing the
/// previous word's chunk, else the one starting the longest run of further matches, else the
/// nearest in relative position (fewer chunks, as METEOR's aligner prefers).
Stats align(const Tokens& h, const Tokens& r, const std::vector<std::string>& hs, const std::vector<std::string>& rs) {
  const auto& fw = functionWords();
  Stats st;
  st.testLen = static_cast<double>(h.size());
  st.refLen = static_cast<double>(r.size());
  for (const auto& w : h) st.testFunc += fw.count(w) ? 1 : 0;
  for (const auto& w : r) st.refFunc += fw.count(w) ? 1 : 0;
  std::vector<int> hm(h.size(), -1), rm(r.size(), -1);
  for (int stage = 0; stage < 2; ++stage) {
    const auto& a = stage == 0 ? h : hs;
    const auto& b = stage == 0 ? r : rs;
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (hm[i] >= 0) continue;
      int best = -1;
      long bestRun = -1;
      double bestDist = 1e18;
      const int cont = i > 0 && hm[i - 1] >= 0 ? hm[i - 1] + 1 : -1;
      for (std::size_t j = 0; j < r.size(); ++j) {
        if (rm[j] >= 0 || a[i] != b[j]) continue;
        if (static_cast<int>(j) == cont) {
          best = static_cast<int>(j);
          break;
        }
        long run = 0;
        while (i + run + 1 < h.size() && j + run + 1 < r.size() && hm[i + run + 1] < 0 && rm[j + run + 1] < 0 &&
               a[i + run + 1] == b[j + run + 1])
          ++run;
        const double dist = std::fabs(static_cast<double>(i) / std::max<std::size_t>(1, h.size()) -
                                      static_cast<double>(j) / std::max<std::size_t>(1, r.size()));
        if (run > bestRun || (run == bestRun && dist < bestDist)) {
          best = static_cast<int>(j);
          bestRun = run;
          bestDist = dist;
        }
      }
      if (best < 0) continue;
      hm[i] = best;
      rm[best] = static_cast<int>(i);
      const bool hf = fw.count(h[i]) > 0, rf = fw.count(r[best]) > 0;
      (hf ? st.testFuncM[stage] : st.testContent[stage]) += 1;
      (rf ? st.refFuncM[stage] : st.refContent[stage]) += 1;
      st.testMatched += 1;
      st.refMatched += 1;
    }
  }
  // Chunks: maximal runs adjacent in both sentences.
  int prev = -2;
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (hm[i] < 0) {
      prev = -2;
      continue;
    }
    if (hm[i] != prev + 1) st.chunks += 1;
    prev = hm[i];
  }
  return st;
}

}  // namespace

std::string porterStem(const std::string& word) { return Porter(word).run(); }

double meteor(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs,
              std::vector<double>* perItem) {
  BIUD_CHECK(hyps.size() == refs.size(), ValueError, "METEOR: {} hypotheses but {} reference sets", hyps.size(),
             refs.size());
  Stats total;
  if (perItem) perItem->clear();
  auto stems = [](const Tokens& t) {
    std::vector<std::string> s;
    for (const auto& w : t) s.push_back(porterStem(w));
    return s;
  };
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    BIUD_CHECK(!refs[i].empty(), ValueError, "METEOR: hypothesis {} has no reference", i);
    const auto hs = stems(hyps[i]);
    Stats best;
    double bestScore = -1;
    for (const auto& r : refs[i]) {
      const Stats s = align(hyps[i], r, hs, stems(r));
      const double sc = scoreOf(s);
      if (sc > bestScore) {
        bestScore = sc;
        best = s;
      }
    }
    if (perItem) perItem->push_back(bestScore);
    total.add(best);
  }
  return scoreOf(total);
}

}  // namespace biud::eval
