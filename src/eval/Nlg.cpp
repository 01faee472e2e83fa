#include "biud/eval/Nlg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "biud/core/Error.h"

namespace biud::eval {

Tokens tokenize(const std::string& text) {
  Tokens out;
  std::string cur;
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      cur += static_cast<char>(c);
    } else if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

namespace {

using NgramCounts = std::map<std::string, int>;

/// n-grams of one order, joined with a separator no token contains.
NgramCounts ngrams(const Tokens& t, int n) {
  NgramCounts c;
  if (static_cast<int>(t.size()) < n) return c;
  for (std::size_t i = 0; i + n <= t.size(); ++i) {
    std::string k = t[i];
    for (int j = 1; j < n; ++j) k += ' ' + t[i + j];
    ++c[k];
  }
  return c;
}

void checkCorpus(std::size_t nh, std::size_t nr, const char* what) {
  BIUD_CHECK(nh == nr, ValueError, "{}: {} hypotheses but {} reference sets", what, nh, nr);
}

}  // namespace

double corpusBleu(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs, int maxN) {
  checkCorpus(hyps.size(), refs.size(), "BLEU");
  BIUD_CHECK(maxN >= 1, ValueError, "BLEU order {} must be >= 1", maxN);
  std::vector<long long> num(maxN + 1, 0), den(maxN + 1, 0);
  long long hypLen = 0, refLen = 0;
  for (std::size_t s = 0; s < hyps.size(); ++s) {
    const Tokens& h = hyps[s];
    BIUD_CHECK(!refs[s].empty(), ValueError, "BLEU: hypothesis {} has no reference", s);
    for (int n = 1; n <= maxN; ++n) {
      const NgramCounts hc = ngrams(h, n);
      std::map<std::string, int> maxRef;
      for (const auto& r : refs[s]) {
        const NgramCounts rc = ngrams(r, n);
        for (const auto& [g, _] : hc) {
          auto it = rc.find(g);
          const int v = it == rc.end() ? 0 : it->second;
          maxRef[g] = std::max(maxRef[g], v);
        }
      }
      long long clipped = 0, total = 0;
      for (const auto& [g, c] : hc) {
        clipped += std::min(c, maxRef[g]);
        total += c;
      }
      num[n] += clipped;
      den[n] += std::max<long long>(1, total);  // nltk: denominator at least 1 per sentence
    }
    hypLen += static_cast<long long>(h.size());
    // Closest reference length; ties go to the shorter one.
    long long best = -1;
    for (const auto& r : refs[s]) {
      const long long rl = static_cast<long long>(r.size());
      if (best < 0 ||
          std::llabs(rl - static_cast<long long>(h.size())) < std::llabs(best - static_cast<long long>(h.size())) ||
          (std::llabs(rl - static_cast<long long>(h.size())) == std::llabs(best - static_cast<long long>(h.size())) &&
           rl < best))
        best = rl;
    }
    refLen += best;
  }
  double bp;
  if (hypLen > refLen)
    bp = 1.0;
  else if (hypLen == 0)
    bp = 0.0;
  else
    bp = std::exp(1.0 - static_cast<double>(refLen) / static_cast<double>(hypLen));
  if (num[1] == 0) return 0.0;
  double s = 0;
  for (int n = 1; n <= maxN; ++n) {
    // nltk method0: a zero precision becomes DBL_MIN (so the score is ~0, not an error).
    const double p = num[n] == 0 ? DBL_MIN : static_cast<double>(num[n]) / static_cast<double>(den[n]);
    s += (1.0 / maxN) * std::log(p);
  }
  return bp * std::exp(s);
}

double rougeL(const Tokens& hyp, const Tokens& ref) {
  if (hyp.empty() || ref.empty()) return 0.0;
  std::vector<int> prev(ref.size() + 1, 0), cur(ref.size() + 1, 0);
  for (std::size_t i = 1; i <= hyp.size(); ++i) {
    for (std::size_t j = 1; j <= ref.size(); ++j)
      cur[j] = hyp[i - 1] == ref[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double lcs = prev[ref.size()];
  const double p = lcs / static_cast<double>(hyp.size()), r = lcs / static_cast<double>(ref.size());
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

double ciderD(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs,
              std::vector<double>* perItem, double sigma) {
  checkCorpus(hyps.size(), refs.size(), "CIDEr-D");
  constexpr int N = 4;
  using Cooked = std::array<NgramCounts, N>;
  auto cook = [](const Tokens& t) {
    Cooked c;
    for (int n = 1; n <= N; ++n) c[n - 1] = ngrams(t, n);
    return c;
  };
  std::vector<Cooked> ch;
  std::vector<std::vector<Cooked>> cr;
  std::unordered_map<std::string, double> df[N];
  for (std::size_t s = 0; s < hyps.size(); ++s) {
    BIUD_CHECK(!refs[s].empty(), ValueError, "CIDEr-D: hypothesis {} has no reference", s);
    ch.push_back(cook(hyps[s]));
    std::vector<Cooked> rs;
    for (const auto& r : refs[s]) rs.push_back(cook(r));
    // Document frequency: in how many items' reference sets an n-gram occurs.
    for (int n = 0; n < N; ++n) {
      std::set<std::string> seen;
      for (const auto& c : rs)
        for (const auto& [g, _] : c[n]) seen.insert(g);
      for (const auto& g : seen) df[n][g] += 1.0;
    }
    cr.push_back(std::move(rs));
  }
  const double refLen = std::log(static_cast<double>(hyps.size()));
  struct Vec {
    std::array<std::map<std::string, double>, N> v;
    std::array<double, N> norm{};
    double length = 0;
  };
  auto toVec = [&](const Cooked& c) {
    Vec out;
    for (int n = 0; n < N; ++n) {
      for (const auto& [g, tf] : c[n]) {
        auto it = df[n].find(g);
        const double d = std::log(std::max(1.0, it == df[n].end() ? 0.0 : it->second));
        const double x = static_cast<double>(tf) * (refLen - d);
        out.v[n][g] = x;
        out.norm[n] += x * x;
        if (n == 1) out.length += tf;  // pycocoevalcap counts bigrams as the length
      }
      out.norm[n] = std::sqrt(out.norm[n]);
    }
    return out;
  };
  double total = 0;
  if (perItem) perItem->clear();
  for (std::size_t s = 0; s < hyps.size(); ++s) {
    const Vec h = toVec(ch[s]);
    std::array<double, N> score{};
    for (const auto& rc : cr[s]) {
      const Vec r = toVec(rc);
      const double delta = h.length - r.length;
      for (int n = 0; n < N; ++n) {
        double val = 0;
        for (const auto& [g, x] : h.v[n]) {
          auto it = r.v[n].find(g);
          if (it != r.v[n].end()) val += std::min(x, it->second) * it->second;
        }
        if (h.norm[n] != 0 && r.norm[n] != 0) val /= h.norm[n] * r.norm[n];
        val *= std::exp(-(delta * delta) / (2 * sigma * sigma));
        score[n] += val;
      }
    }
    double avg = 0;
    for (double v : score) avg += v;
    avg /= N;
    avg /= static_cast<double>(cr[s].size());
    avg *= 10.0;
    if (perItem) perItem->push_back(avg);
    total += avg;
  }
  return hyps.empty() ? 0.0 : total / static_cast<double>(hyps.size());
}

nlohmann::json NlgScores::toJson() const {
  return {{"bleu1", bleu[0]}, {"bleu2", bleu[1]},  {"bleu3", bleu[2]}, {"bleu4", bleu[3]},
          {"meteor", meteor}, {"rouge_l", rougeL}, {"cider", cider},   {"n", n}};
}

NlgScores evaluateNlg(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) {
  checkCorpus(hyps.size(), refs.size(), "NLG");
  std::vector<Tokens> h;
  std::vector<std::vector<Tokens>> r;
  for (const auto& s : hyps) h.push_back(tokenize(s));
  for (const auto& rs : refs) {
    std::vector<Tokens> t;
    for (const auto& s : rs) t.push_back(tokenize(s));
    r.push_back(std::move(t));
  }
  NlgScores out;
  out.n = hyps.size();
  for (int n = 1; n <= 4; ++n) out.bleu[n - 1] = corpusBleu(h, r, n);
  double rl = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    double best = 0;
    for (const auto& ref : r[i]) best = std::max(best, rougeL(h[i], ref));
    rl += best;
  }
  out.rougeL = h.empty() ? 0.0 : rl / static_cast<double>(h.size());
  out.cider = ciderD(h, r);
  out.meteor = meteor(h, r);
  return out;
}

}  // namespace biud::eval
