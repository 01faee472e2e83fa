// Report templates. Variety comes from synonyms, sentence shapes, optional organ headings and
// which absent findings are negated; content always comes from the placed findings.
#include "biud/synth/Report.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

namespace biud::synth {

namespace {

using Strs = std::vector<std::string>;

/// fmt::format with a pattern chosen at run time.
template <class... A>
std::string F(const std::string& pattern, const A&... args) {
  return fmt::format(fmt::runtime(pattern), args...);
}

const std::string& pick(Rng& rng, const Strs& v) {
  return v[static_cast<size_t>(rng.uniformInt(0, static_cast<std::int64_t>(v.size()) - 1))];
}

std::string cap(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

/// Collapse double spaces left by empty template slots.
std::string tidy(std::string s) {
  std::string o;
  for (char c : s) {
    if (c == ' ' && (o.empty() || o.back() == ' ')) continue;
    o += c;
  }
  while (!o.empty() && o.back() == ' ') o.pop_back();
  for (size_t p; (p = o.find(" ,")) != std::string::npos;) o.erase(p, 1);
  for (size_t p; (p = o.find(" .")) != std::string::npos;) o.erase(p, 1);
  return o;
}

std::string sizeWord(Rng& rng, int severity) {
  if (severity <= 1) return pick(rng, {"small", "small", "trace", "minimal"});
  if (severity == 2) return pick(rng, {"moderate", "moderate-sized", "moderate"});
  return pick(rng, {"large", "large", "substantial"});
}
std::string degreeWord(Rng& rng, int severity) {
  if (severity <= 1) return pick(rng, {"mild", "mild", "minimal"});
  if (severity == 2) return "moderate";
  return pick(rng, {"severe", "marked", "extensive"});
}
std::string degreeAdverb(Rng& rng, int severity) {
  if (severity <= 1) return pick(rng, {"mildly", "slightly"});
  if (severity == 2) return "moderately";
  return pick(rng, {"markedly", "severely"});
}

struct Sentences {
  Strs lungs, pleura, heart, impression;
};

void describe(Rng& rng, const FindingInstance& f, Modality mod, Sentences& s) {
  const std::string side = sideName(f.side);
  const bool ct = mod == Modality::CT;
  const auto mm = [](double v) { return fmt::format("{:.0f}", std::round(v)); };
  switch (f.type) {
    case Finding::LungNodule: {
      const std::string syn =
          pick(rng, {"nodule", "pulmonary nodule", "nodular opacity", "solid nodule", "lung nodule"});
      if (f.count > 1) {
        const std::string where = f.side == Side::Bilateral ? "bilateral " : "";
        s.lungs.push_back(
            F(pick(rng, {"Multiple {0}pulmonary nodules are present, the largest measuring {1} mm in the {2}.",
                         "There are {3} {0}pulmonary nodules; the largest is in the {2} and measures {1} mm.",
                         "Several {0}nodules, the dominant one in the {2} measuring {1} mm."}),
              where, mm(f.size_mm), f.lobe, f.count == 2 ? "two" : "three"));
        s.impression.push_back(F(pick(rng, {"Multiple pulmonary nodules, the largest {0} mm in the {1}.",
                                            "Multiple pulmonary nodules (largest {0} mm); follow-up CT recommended."}),
                                 mm(f.size_mm), f.lobe));
      } else if (f.uncertain) {
        s.lungs.push_back(F(pick(rng, {"A possible {} mm {} in the {}.", "Questionable {} mm {} in the {}.",
                                       "A subtle {} mm {} in the {} cannot be excluded."}),
                            mm(f.size_mm), syn, f.lobe));
        s.impression.push_back(F(pick(rng, {"Possible {} mm {} nodule; short-term follow-up suggested.",
                                            "Questionable {} mm nodule in the {}."}),
                                 mm(f.size_mm), f.lobe));
      } else {
        s.lungs.push_back(F(pick(rng, {"A {0} mm {1} is seen in the {2}.", "There is a {0} mm {1} in the {2}.",
                                       "{3} {1} measuring {0} mm.", "In the {2} there is a {1} measuring {0} mm."}),
                            mm(f.size_mm), syn, f.lobe, cap(f.lobe)));
        s.impression.push_back(F(pick(rng, {"{0} mm {1} pulmonary nodule; follow-up CT recommended.",
                                            "Pulmonary nodule in the {1} measuring {0} mm.", "{2} nodule, {0} mm."}),
                                 mm(f.size_mm), f.lobe, cap(f.lobe)));
      }
      break;
    }
    case Finding::LungMass: {
      const std::string syn = pick(rng, {"mass", "pulmonary mass", "lung mass", "soft tissue mass", "mass lesion"});
      s.lungs.push_back(F(pick(rng, {"A {0} {1} x {2} mm {3} is present in the {4}.",
                                     "There is a {0} {3} in the {4} measuring {1} x {2} mm.",
                                     "{5} {0} {3}, {1} mm in greatest dimension."}),
                          f.detail, mm(f.size_mm), mm(f.extent_mm), syn, f.lobe, cap(f.lobe)));
      s.impression.push_back(F(pick(rng, {"{0} mm {1} mass, suspicious for primary lung malignancy.",
                                          "{2} mass ({0} mm); tissue sampling recommended.",
                                          "Mass in the {1} measuring {0} mm, concerning for neoplasm."}),
                               mm(f.size_mm), f.lobe, cap(f.lobe)));
      break;
    }
    case Finding::PleuralEffusion: {
      const std::string sz = sizeWord(rng, f.severity);
      const bool bi = f.side == Side::Bilateral;
      if (f.uncertain) {
        s.pleura.push_back(
            F(pick(rng, {"Possible trace {} pleural effusion.", "A small {} pleural effusion cannot be excluded.",
                         "Questionable small {} pleural effusion."}),
              bi ? "bilateral" : side));
        s.impression.push_back(fmt::format("Possible small {} pleural effusion.", bi ? "bilateral" : side));
      } else if (bi) {
        s.pleura.push_back(
            F(pick(rng, {"{0} bilateral pleural effusions.", "There are {1} bilateral pleural effusions.",
                         "Bilateral pleural effusions, {1} in size.", "{0} amount of pleural fluid bilaterally."}),
              cap(sz), sz));
        s.impression.push_back(
            F(pick(rng, {"{0} bilateral pleural effusions.", "Bilateral pleural effusions ({1})."}), cap(sz), sz));
      } else {
        s.pleura.push_back(
            F(pick(rng, {"There is a {1} {2} pleural effusion.", "{0} {2} pleural effusion.",
                         "{0} {2} pleural effusion without pneumothorax.",
                         "A {1} amount of {2} pleural fluid is noted.", "Layering {2} pleural effusion, {1} in size."}),
              cap(sz), sz, side));
        s.impression.push_back(
            F(pick(rng, {"{0} {2} pleural effusion.", "{3} pleural effusion ({1})."}), cap(sz), sz, side, cap(side)));
      }
      break;
    }
    case Finding::Pneumothorax: {
      const std::string sz = sizeWord(rng, f.severity);
      if (f.uncertain) {
        s.pleura.push_back(F(
            pick(rng, {"A tiny {} apical pneumothorax cannot be excluded.", "Possible small {} pneumothorax."}), side));
        s.impression.push_back(fmt::format("Possible small {} pneumothorax.", side));
      } else {
        s.pleura.push_back(
            F(pick(rng, {"There is a {1} {2} pneumothorax.", "{0} {2} pneumothorax, measuring up to {3} mm.",
                         "A {1} {2} anterior pneumothorax is present.", "{0} {2} apical pneumothorax."}),
              cap(sz), sz, side, mm(f.size_mm)));
        s.impression.push_back(
            F(pick(rng, {"{0} {1} pneumothorax.", "{2} pneumothorax, {3}."}), cap(sz), side, cap(side), sz));
      }
      break;
    }
    case Finding::Consolidation: {
      const std::string syn =
          pick(rng, {"consolidation", "airspace consolidation", "consolidation", "dense consolidation"});
      if (f.uncertain) {
        s.lungs.push_back(F(pick(rng, {"Subtle opacity in the {}, possibly early consolidation.",
                                       "Hazy density in the {}; consolidation cannot be excluded."}),
                            f.lobe));
        s.impression.push_back(fmt::format("Possible early consolidation in the {}.", f.lobe));
      } else {
        // Air bronchograms are named exactly when the phantom has them (FindingInstance::tubes).
        if (!f.tubes.empty())
          s.lungs.push_back(F(pick(rng, {"There is {0} in the {1} with air bronchograms.",
                                         "{2} with air bronchograms in the {1}, measuring up to {3} mm.",
                                         "Focal {0} within the {1} with air bronchograms.",
                                         "{2} in the {1}; air bronchograms are seen within it."}),
                              syn, f.lobe, cap(syn), mm(f.size_mm)));
        else
          s.lungs.push_back(F(pick(rng, {"There is {0} in the {1}.", "{2} in the {1}, measuring up to {3} mm.",
                                         "Patchy {0} in the {1}."}),
                              syn, f.lobe, cap(syn), mm(f.size_mm)));
        s.impression.push_back(F(pick(rng, {"{0} consolidation, likely pneumonia in the appropriate clinical setting.",
                                            "Consolidation in the {1}.", "{0} airspace consolidation."}),
                                 cap(f.lobe), f.lobe));
      }
      break;
    }
    case Finding::Emphysema: {
      const std::string deg = degreeWord(rng, f.severity);
      if (ct)
        s.lungs.push_back(
            F(pick(rng, {"{0} {1} emphysema, upper lobe predominant.", "There is {2} {1} emphysema.",
                         "Emphysematous changes of both upper lobes, {2}.", "{0} {1} emphysema in the upper lungs."}),
              cap(deg), f.detail, deg));
      else
        s.lungs.push_back(F(pick(rng, {"The lungs are hyperinflated, consistent with {} emphysema.",
                                       "Hyperlucent upper lungs compatible with emphysema ({})."}),
                            deg));
      s.impression.push_back(F(pick(rng, {"{0} emphysema.", "Emphysema ({1})."}), cap(deg), deg));
      break;
    }
    case Finding::Cardiomegaly: {
      const std::string deg = degreeWord(rng, f.severity);
      if (ct)
        s.heart.push_back(
            F(pick(rng, {"{0} cardiomegaly.", "The heart is {1} enlarged.",
                         "Cardiac enlargement with a cardiothoracic ratio of about {2:.2f}.", "Enlarged heart ({3})."}),
              cap(deg), degreeAdverb(rng, f.severity), f.value, deg));
      else
        s.heart.push_back(F(
            pick(rng, {"The cardiac silhouette is {0} enlarged.", "{1} cardiomegaly.", "Enlarged cardiac silhouette."}),
            degreeAdverb(rng, f.severity), cap(deg)));
      s.impression.push_back(pick(rng, {"Cardiomegaly.", cap(deg) + " cardiomegaly.", "Cardiac enlargement."}));
      break;
    }
    case Finding::PericardialEffusion: {
      const std::string sz = sizeWord(rng, f.severity);
      if (f.uncertain) {
        s.heart.push_back("Possible small pericardial effusion.");
        s.impression.push_back("Possible small pericardial effusion.");
      } else {
        s.heart.push_back(
            F(pick(rng, {"{0} pericardial effusion.", "There is a {1} pericardial effusion measuring up to {2} mm.",
                         "{0} amount of pericardial fluid.", "A {1} pericardial effusion is present."}),
              cap(sz), sz, mm(f.size_mm)));
        s.impression.push_back(F(pick(rng, {"{0} pericardial effusion.", "Pericardial effusion ({1})."}), cap(sz), sz));
      }
      break;
    }
    case Finding::Atelectasis: {
      if (f.uncertain) {
        s.lungs.push_back(fmt::format("{} dependent density, possibly atelectasis.",
                                      f.side == Side::Bilateral ? "Bibasilar" : cap(side) + " basilar"));
        s.impression.push_back("Possible atelectasis.");
      } else if (f.detail == "basal") {
        if (f.side == Side::Bilateral)
          s.lungs.push_back(pick(rng, {"Bibasilar atelectasis.", "Dependent atelectasis at both lung bases.",
                                       "Subsegmental atelectasis in both lower lobes."}));
        else
          s.lungs.push_back(F(pick(rng, {"{0} basilar atelectasis.", "Subsegmental atelectasis in the {1} lower lobe.",
                                         "Dependent atelectatic change at the {1} lung base."}),
                              cap(side), side));
        s.impression.push_back(pick(rng, {"Basilar atelectasis.", "Dependent atelectasis."}));
      } else {
        s.lungs.push_back(F(pick(rng, {"Atelectasis of the {}.", "Subsegmental atelectasis in the {}.",
                                       "Volume loss with atelectasis in the {}."}),
                            f.detail == "lingula" ? "lingula" : f.lobe));
        s.impression.push_back(fmt::format("{} atelectasis.", f.detail == "lingula" ? "Lingular" : cap(f.lobe)));
      }
      if (f.dome_raise_mm[0] > 0 || f.dome_raise_mm[1] > 0) {  // lower-lobe volume loss: raised dome(s)
        const std::string side = f.dome_raise_mm[0] > 0 ? "right" : "left";
        if (f.dome_raise_mm[0] > 0 && f.dome_raise_mm[1] > 0)
          s.lungs.push_back(pick(rng, {"Both hemidiaphragms are mildly elevated.",
                                       "Mild elevation of both hemidiaphragms, in keeping with volume loss."}));
        else
          s.lungs.push_back(F(pick(rng, {"The {0} hemidiaphragm is mildly elevated.",
                                         "Mild elevation of the {0} hemidiaphragm, in keeping with volume loss."}),
                              side));
      }
      break;
    }
    case Finding::ArterialCalcification: {
      const std::string deg = degreeWord(rng, f.severity);
      if (f.detail == "aortic")
        s.heart.push_back(F(pick(rng, {"{0} calcified atherosclerotic plaque of the thoracic aorta.",
                                       "Aortic wall calcifications ({1}).",
                                       "{0} calcification of the aortic arch and descending aorta."}),
                            cap(deg), deg));
      else if (f.detail == "coronary")
        s.heart.push_back(F(pick(rng, {"{0} coronary artery calcifications.", "Coronary artery calcification, {1}.",
                                       "Calcified coronary plaque ({1})."}),
                            cap(deg), deg));
      else
        s.heart.push_back(F(pick(rng, {"{0} atherosclerotic calcification of the aorta and coronary arteries.",
                                       "Calcifications of the thoracic aorta and coronary arteries, {1}."}),
                            cap(deg), deg));
      s.impression.push_back(f.detail == "coronary" ? "Coronary artery calcification."
                                                    : pick(rng, {"Aortic atherosclerotic calcification.",
                                                                 "Atherosclerotic calcifications."}));
      break;
    }
  }
}

/// Negative statements for absent findings (several phrasings each).
Strs negations(Finding f, Modality mod) {
  switch (f) {
    case Finding::LungNodule:
      return {"No pulmonary nodules.", "No suspicious pulmonary nodule.", "There are no nodules."};
    case Finding::LungMass:
      return {"No lung mass.", "No mass lesion is identified.", "There is no pulmonary mass."};
    case Finding::PleuralEffusion:
      return {"No pleural effusion.", "No evidence of pleural effusion.", "There is no pleural fluid."};
    case Finding::Pneumothorax:
      return {"No pneumothorax.", "No evidence of pneumothorax.", "Pneumothorax is not seen."};
    case Finding::Consolidation:
      return {"No focal consolidation.", "No airspace consolidation.", "There is no consolidation."};
    case Finding::Emphysema:
      return {"No emphysema.", "No emphysematous changes."};
    case Finding::Cardiomegaly:
      if (mod == Modality::XRay) return {"No cardiomegaly.", "The heart is not enlarged."};
      return {"No cardiomegaly.", "The heart is not enlarged."};
    case Finding::PericardialEffusion:
      return {"No pericardial effusion.", "No pericardial fluid."};
    case Finding::Atelectasis:
      return {"No atelectasis.", "No significant atelectasis."};
    case Finding::ArterialCalcification:
      return {"No vascular calcification.", "No coronary artery calcification."};
  }
  return {};
}

bool isLungFinding(Finding f) {
  return f == Finding::LungNodule || f == Finding::LungMass || f == Finding::Consolidation || f == Finding::Emphysema ||
         f == Finding::Atelectasis;
}

std::string join(const Strs& v) {
  std::string o;
  for (const auto& s : v) o += (o.empty() ? "" : " ") + s;
  return o;
}

}  // namespace

Report writeReport(Rng& rng, const std::vector<FindingInstance>& findings, Modality mod) {
  Sentences s;
  bool present[kNumFindings] = {};
  for (const auto& f : findings) present[static_cast<int>(f.type)] = true;
  // Severity order in the impression: the radiologist leads with what matters most.
  std::vector<FindingInstance> ordered = findings;
  static const int rank[kNumFindings] = {3, 0, 2, 1, 4, 7, 5, 6, 8, 9};
  std::stable_sort(ordered.begin(), ordered.end(), [](const FindingInstance& a, const FindingInstance& b) {
    return rank[static_cast<int>(a.type)] < rank[static_cast<int>(b.type)];
  });
  for (const auto& f : ordered) describe(rng, f, mod, s);

  bool anyLung = false;
  for (int i = 0; i < kNumFindings; ++i) anyLung = anyLung || (present[i] && isLungFinding(static_cast<Finding>(i)));
  const bool healthy = findings.empty();
  const double pNeg = healthy ? 0.7 : 0.45;
  // Negations, sometimes merged into one sentence.
  Strs negLungs, negPleura, negHeart;
  const bool noEff = !present[static_cast<int>(Finding::PleuralEffusion)],
             noPtx = !present[static_cast<int>(Finding::Pneumothorax)];
  bool pleuraDone = false;
  if (noEff && noPtx && rng.uniform() < 0.5) {
    negPleura.push_back(pick(rng, {"No pleural effusion or pneumothorax.", "No pneumothorax or pleural effusion.",
                                   "There is no pleural effusion or pneumothorax."}));
    pleuraDone = true;
  }
  for (int i = 0; i < kNumFindings; ++i) {
    const auto f = static_cast<Finding>(i);
    if (present[i] || ((f == Finding::PleuralEffusion || f == Finding::Pneumothorax) && pleuraDone)) continue;
    if (rng.uniform() >= pNeg) continue;
    const std::string sent = pick(rng, negations(f, mod));
    if (isLungFinding(f))
      negLungs.push_back(sent);
    else if (f == Finding::PleuralEffusion || f == Finding::Pneumothorax)
      negPleura.push_back(sent);
    else
      negHeart.push_back(sent);
  }

  Strs lungs = s.lungs;
  if (!anyLung)
    lungs.insert(lungs.begin(), pick(rng, {"The lungs are clear.", "The lungs are well aerated.",
                                           "Both lungs are clear.", "Clear lungs."}));
  for (auto& n : negLungs) lungs.push_back(n);
  Strs airways = {pick(
      rng, {"The central airways are patent.", "The trachea and main bronchi are patent.", "Airways are patent."})};
  Strs pleura = s.pleura;
  for (auto& n : negPleura) pleura.push_back(n);
  if (pleura.empty() && rng.uniform() < 0.5) pleura.push_back("The pleural spaces are clear.");
  Strs heart = s.heart;
  const bool normalHeartSaid = !present[static_cast<int>(Finding::Cardiomegaly)] && rng.uniform() < 0.6;
  if (normalHeartSaid) {
    negHeart.erase(std::remove_if(negHeart.begin(), negHeart.end(),
                                  [](const std::string& x) {
                                    return x.find("enlarged") != std::string::npos ||
                                           x.find("cardiomegaly") != std::string::npos;
                                  }),
                   negHeart.end());
    heart.insert(heart.begin(),
                 pick(rng, mod == Modality::CT ? Strs{"Heart size is normal.", "The heart is normal in size."}
                                               : Strs{"The cardiomediastinal silhouette is within normal limits.",
                                                      "Heart size is normal."}));
  }
  for (auto& n : negHeart) heart.push_back(n);
  Strs other;
  if (mod == Modality::CT) {
    if (rng.uniform() < 0.6)
      other.push_back(pick(rng, {"No mediastinal or hilar lymphadenopathy.", "Mediastinal structures are unremarkable.",
                                 "No enlarged lymph nodes."}));
    if (rng.uniform() < 0.5)
      other.push_back(pick(rng, {"The visualized upper abdomen is unremarkable.",
                                 "Limited images of the upper abdomen are unremarkable."}));
    if (rng.uniform() < 0.6)
      other.push_back(pick(
          rng, {"No acute osseous abnormality.", "The osseous structures are intact.", "Bones are unremarkable."}));
  } else if (rng.uniform() < 0.6) {
    other.push_back(pick(rng, {"No acute osseous abnormality.", "The visualized osseous structures are intact."}));
  }

  Report r;
  std::string pre =
      mod == Modality::XRay
          ? pick(rng, {"Frontal view of the chest. ", "PA view of the chest. ", "AP portable view of the chest. ", ""})
          : "";
  if (rng.uniform() < 0.3) {
    // Organ headings, as in structured reports.
    std::string t = pre + "Lungs and airways: " + join(lungs) + " " + join(airways);
    if (!pleura.empty()) t += " Pleura: " + join(pleura);
    if (!heart.empty()) t += " Heart and mediastinum: " + join(heart);
    if (!other.empty()) t += " Other: " + join(other);
    r.findings = tidy(t);
  } else {
    Strs all;
    for (auto* part : {&lungs, &airways, &pleura, &heart, &other})
      for (auto& x : *part) all.push_back(x);
    r.findings = tidy(pre + join(all));
  }
  if (healthy) {
    r.impression =
        mod == Modality::CT
            ? pick(rng, {"No acute cardiopulmonary abnormality.", "Normal chest CT.", "No acute intrathoracic process.",
                         "Unremarkable CT of the chest.", "No significant abnormality."})
            : pick(rng, {"No acute cardiopulmonary process.", "Normal chest radiograph.",
                         "No acute cardiopulmonary abnormality.", "Clear lungs. No acute process."});
  } else {
    Strs imp = s.impression;
    if (imp.size() > 1 && rng.uniform() < 0.4) {
      std::string t;
      for (size_t i = 0; i < imp.size(); ++i) t += fmt::format("{}{}. {}", i ? " " : "", i + 1, imp[i]);
      r.impression = tidy(t);
    } else {
      r.impression = tidy(join(imp));
    }
  }
  return r;
}

}  // namespace biud::synth
