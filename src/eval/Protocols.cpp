#include "biud/eval/Protocols.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

#include "biud/core/Error.h"
#include "biud/eval/Classification.h"

namespace biud::eval {

namespace {

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

/// Python's str.replace(from, to): every non-overlapping occurrence, left to right.
std::string replaceAll(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

/// Python's str.isspace for ASCII (str.strip() and str.split() use it).
bool pySpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

std::string strip(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && pySpace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && pySpace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// Python's str.split(sep): every occurrence, empty pieces kept.
std::vector<std::string> splitOn(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = s.find(sep, pos);
    if (at == std::string::npos) break;
    out.push_back(s.substr(pos, at - pos));
    pos = at + sep.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

/// The character class [.,?;*!%^&_+():-\[\]{}] of CT2Rep's sent_cleaner (`:-\[` is the range
/// 0x3A-0x5B).
bool ct2repDropped(unsigned char c) {
  switch (c) {
    case '.':
    case ',':
    case '?':
    case ';':
    case '*':
    case '!':
    case '%':
    case '^':
    case '&':
    case '_':
    case '+':
    case '(':
    case ')':
    case ']':
    case '{':
    case '}':
      return true;
    default:
      return c >= ':' && c <= '[';
  }
}

std::string sentClean(const std::string& t) {
  std::string s = t;
  for (const char* q : {"\"", "/", "\\", "'"}) s = replaceAll(s, q, "");
  s = lower(strip(s));
  std::string out;
  for (const char c : s)
    if (!ct2repDropped(static_cast<unsigned char>(c))) out += c;
  return out;
}

/// Python's str.split() without a separator.
Tokens splitWhite(const std::string& s) {
  Tokens out;
  std::string cur;
  for (const char c : s) {
    if (pySpace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

using Counts = std::map<std::vector<std::string>, int>;

Counts ngramCounts(const Tokens& t, int maxN) {
  Counts c;
  for (int k = 1; k <= maxN; ++k)
    for (std::size_t i = 0; i + static_cast<std::size_t>(k) <= t.size(); ++i)
      ++c[std::vector<std::string>(t.begin() + static_cast<std::ptrdiff_t>(i),
                                   t.begin() + static_cast<std::ptrdiff_t>(i) + k)];
  return c;
}

std::size_t lcs(const Tokens& a, const Tokens& b) {
  std::vector<std::size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

// ---- CT-CLIP ---------------------------------------------------------------------------------

std::pair<std::string, std::string> ctClipPrompts(const std::string& finding) {
  return {finding + " is present.", finding + " is not present."};
}

double ctClipThreshold(const std::vector<double>& probs, const std::vector<int>& labels) {
  BIUD_CHECK(probs.size() == labels.size(), ValueError, "CT-CLIP threshold: {} probabilities but {} labels",
             probs.size(), labels.size());
  std::size_t pos = 0;
  for (const int y : labels) pos += y == 1;
  const std::size_t neg = labels.size() - pos;
  if (pos == 0 || neg == 0) return NAN;
  double best = 10000, bestT = 0;
  // np.linspace(0, 1, 100): i * (1 / 99), the last value exactly 1.
  const double step = 1.0 / 99.0;
  for (int i = 0; i < 100; ++i) {
    const double t = i == 99 ? 1.0 : static_cast<double>(i) * step;
    std::size_t tp = 0, fp = 0;
    for (std::size_t k = 0; k < probs.size(); ++k)
      if (probs[k] > t) (labels[k] == 1 ? tp : fp) += 1;
    const double tpr = static_cast<double>(tp) / static_cast<double>(pos);
    const double fpr = static_cast<double>(fp) / static_cast<double>(neg);
    const double d = std::sqrt((1 - tpr) * (1 - tpr) + fpr * fpr);
    if (d <= best) {
      best = d;
      bestT = t;
    }
  }
  return bestT;
}

nlohmann::json CtClipReport::toJson() const {
  nlohmann::json j;
  j["protocol"] = "ct-clip";
  j["threshold_rule"] = "closest ROC point to (0, 1) over np.linspace(0, 1, 100), predicted positive when p > t";
  nlohmann::json per = nlohmann::json::object();
  for (const auto& f : findings)
    per[f.name] = {{"auroc", num(f.auroc)},
                   {"f1_weighted", num(f.f1)},
                   {"accuracy", num(f.accuracy)},
                   {"precision", num(f.precision)},
                   {"threshold", num(f.threshold)},
                   {"n_pos", f.nPos},
                   {"n_neg", f.nNeg},
                   {"n_unknown", f.nUnknown}};
  j["per_label"] = per;
  j["macro"] = {
      {"auroc", num(auroc)}, {"f1_weighted", num(f1)}, {"accuracy", num(accuracy)}, {"precision", num(precision)}};
  j["warnings"] = warnings;
  return j;
}

CtClipReport evaluateCtClip(const std::vector<std::vector<double>>& probs,
                            const std::vector<std::vector<double>>& labels, const std::vector<std::string>& names) {
  BIUD_CHECK(probs.size() == labels.size(), ValueError,
             "CT-CLIP evaluation: {} rows of probabilities but {} rows of labels", probs.size(), labels.size());
  CtClipReport rep;
  double sum[4] = {0, 0, 0, 0};
  int used = 0;
  for (std::size_t f = 0; f < names.size(); ++f) {
    CtClipFinding r;
    r.name = names[f];
    std::vector<double> s;
    std::vector<int> y;
    for (std::size_t i = 0; i < probs.size(); ++i) {
      BIUD_CHECK(probs[i].size() == names.size() && labels[i].size() == names.size(), ValueError,
                 "CT-CLIP evaluation: row {} has {} probabilities and {} labels for {} findings", i, probs[i].size(),
                 labels[i].size(), names.size());
      const double l = labels[i][f];
      if (std::isnan(l)) {
        ++r.nUnknown;
        continue;
      }
      BIUD_CHECK(std::isfinite(probs[i][f]), ValueError,
                 "CT-CLIP evaluation: finding `{}`, case {}: probability {} is not finite", names[f], i, probs[i][f]);
      s.push_back(probs[i][f]);
      y.push_back(l > 0.5 ? 1 : 0);
      (y.back() ? r.nPos : r.nNeg) += 1;
    }
    if (r.nPos == 0 || r.nNeg == 0) {
      r.auroc = r.f1 = r.accuracy = r.precision = r.threshold = NAN;
      rep.warnings.push_back(
          fmt::format("finding `{}`: only one class among {} known labels ({} positive); CT-CLIP's metrics are "
                      "undefined and it is left out of the means",
                      r.name, s.size(), r.nPos));
      rep.findings.push_back(r);
      continue;
    }
    r.auroc = rocAuc(s, y);
    r.threshold = ctClipThreshold(s, y);
    // Confusion at p > t; per-class F1 weighted by the support in y (f1_score average="weighted").
    double tp = 0, fp = 0, tn = 0, fn = 0;
    for (std::size_t k = 0; k < s.size(); ++k) {
      const bool p = s[k] > r.threshold;
      if (y[k])
        (p ? tp : fn) += 1;
      else
        (p ? fp : tn) += 1;
    }
    auto f1of = [](double a, double b, double c) { return 2 * a + b + c > 0 ? 2 * a / (2 * a + b + c) : 0.0; };
    const double n = static_cast<double>(s.size());
    const double f1pos = f1of(tp, fp, fn), f1neg = f1of(tn, fn, fp);
    r.f1 = (static_cast<double>(r.nPos) * f1pos + static_cast<double>(r.nNeg) * f1neg) / n;
    r.accuracy = (tp + tn) / n;
    r.precision = tp + fp > 0 ? tp / (tp + fp) : 0.0;
    sum[0] += r.auroc;
    sum[1] += r.f1;
    sum[2] += r.accuracy;
    sum[3] += r.precision;
    ++used;
    rep.findings.push_back(r);
  }
  rep.auroc = used ? sum[0] / used : NAN;
  rep.f1 = used ? sum[1] / used : NAN;
  rep.accuracy = used ? sum[2] / used : NAN;
  rep.precision = used ? sum[3] / used : NAN;
  return rep;
}

// ---- CT2Rep ----------------------------------------------------------------------------------

std::string ct2repClean(const std::string& report) {
  // report_cleaner of clean_report_mimic_cxr, one replace at a time in the original's order.
  std::string s = replaceAll(report, "\n", " ");
  for (int i = 0; i < 7; ++i) s = replaceAll(s, "__", "_");
  for (int i = 0; i < 6; ++i) s = replaceAll(s, "  ", " ");
  for (int i = 0; i < 8; ++i) s = replaceAll(s, "..", ".");
  s = replaceAll(s, "1. ", "");
  for (const char* n : {". 2. ", ". 3. ", ". 4. ", ". 5. "}) s = replaceAll(s, n, ". ");
  for (const char* n : {" 2. ", " 3. ", " 4. ", " 5. "}) s = replaceAll(s, n, ". ");
  s = lower(strip(s));
  std::string out;
  bool first = true;
  for (const auto& sent : splitOn(s, ". ")) {
    if (!first) out += " . ";
    out += sentClean(sent);
    first = false;
  }
  return out + " .";
}

Tokens ct2repTokens(const std::string& report, std::size_t maxTokens) {
  auto t = splitWhite(ct2repClean(report));
  if (maxTokens > 0 && t.size() > maxTokens) t.resize(maxTokens);
  return t;
}

std::array<double, 4> cocoBleu(const std::vector<Tokens>& hyps, const std::vector<std::vector<Tokens>>& refs) {
  BIUD_CHECK(hyps.size() == refs.size(), ValueError, "BLEU: {} hypotheses but {} reference sets", hyps.size(),
             refs.size());
  constexpr int n = 4;
  constexpr double small = 1e-9, tiny = 1e-15;
  double correct[n] = {0, 0, 0, 0}, guess[n] = {0, 0, 0, 0};
  double testTotal = 0, refTotal = 0;
  for (std::size_t s = 0; s < hyps.size(); ++s) {
    BIUD_CHECK(!refs[s].empty(), ValueError, "BLEU: hypothesis {} has no reference", s);
    // cook_refs: the largest count of each n-gram over the references.
    std::map<std::vector<std::string>, int> maxRef;
    for (const auto& r : refs[s])
      for (const auto& [g, c] : ngramCounts(r, n)) maxRef[g] = std::max(maxRef[g], c);
    // 'closest' reference length (the shorter one on a tie: min over (|l - testlen|, l)).
    const auto testLen = static_cast<long long>(hyps[s].size());
    long long refLen = -1, bestDiff = 0;
    for (const auto& r : refs[s]) {
      const auto l = static_cast<long long>(r.size());
      const long long d = std::llabs(l - testLen);
      if (refLen < 0 || d < bestDiff || (d == bestDiff && l < refLen)) refLen = l, bestDiff = d;
    }
    testTotal += static_cast<double>(testLen);
    refTotal += static_cast<double>(refLen);
    for (int k = 0; k < n; ++k) guess[k] += static_cast<double>(std::max(0LL, testLen - k));
    for (const auto& [g, c] : ngramCounts(hyps[s], n)) {
      const auto it = maxRef.find(g);
      if (it != maxRef.end()) correct[g.size() - 1] += std::min(c, it->second);
    }
  }
  std::array<double, 4> out{};
  double bleu = 1;
  for (int k = 0; k < n; ++k) {
    bleu *= (correct[k] + tiny) / (guess[k] + small);
    out[static_cast<std::size_t>(k)] = std::pow(bleu, 1.0 / (k + 1));
  }
  const double ratio = (testTotal + tiny) / (refTotal + small);
  if (ratio < 1)
    for (auto& b : out) b *= std::exp(1 - 1 / ratio);
  return out;
}

double cocoRougeL(const Tokens& hyp, const std::vector<Tokens>& refs) {
  BIUD_CHECK(!refs.empty(), ValueError, "ROUGE-L: no reference");
  // pycocoevalcap splits on single spaces, so an empty text is one empty token.
  const double lc = std::max<std::size_t>(hyp.size(), 1);
  double precMax = 0, recMax = 0;
  for (const auto& r : refs) {
    const double l = static_cast<double>(lcs(r, hyp));
    precMax = std::max(precMax, l / lc);
    recMax = std::max(recMax, l / static_cast<double>(std::max<std::size_t>(r.size(), 1)));
  }
  constexpr double beta = 1.2;
  if (precMax == 0 || recMax == 0) return 0.0;
  return ((1 + beta * beta) * precMax * recMax) / (recMax + beta * beta * precMax);
}

NlgScores evaluateNlgCt2Rep(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                            const Ct2RepOptions& options) {
  BIUD_CHECK(hyps.size() == refs.size(), ValueError, "NLG: {} hypotheses but {} reference sets", hyps.size(),
             refs.size());
  std::vector<Tokens> h;
  std::vector<std::vector<Tokens>> r;
  for (const auto& s : hyps) h.push_back(ct2repTokens(s));
  for (const auto& rs : refs) {
    std::vector<Tokens> t;
    for (const auto& s : rs) t.push_back(ct2repTokens(s, options.maxRefTokens));
    r.push_back(std::move(t));
  }
  NlgScores out;
  out.n = hyps.size();
  out.bleu = cocoBleu(h, r);
  double rl = 0;
  for (std::size_t i = 0; i < h.size(); ++i) rl += cocoRougeL(h[i], r[i]);
  out.rougeL = h.empty() ? 0.0 : rl / static_cast<double>(h.size());
  out.cider = ciderD(h, r);
  out.meteor = meteor(h, r);
  return out;
}

NlgScores evaluateNlgProtocol(const std::string& protocol, const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs) {
  if (protocol == "biud") return evaluateNlg(hyps, refs);
  if (protocol == "ct2rep") return evaluateNlgCt2Rep(hyps, refs);
  BIUD_THROW(ConfigError, "report metrics protocol `{}`: use biud or ct2rep", protocol);
}

std::string nlgTokenization(const std::string& protocol) {
  if (protocol == "ct2rep")
    return "CT2Rep clean_report_mimic_cxr, whitespace tokens, references cut to 199 tokens; pycocoevalcap BLEU and "
           "ROUGE-L";
  return "lower-case; split on every character other than a-z, 0-9 (and non-ASCII bytes)";
}

}  // namespace biud::eval
