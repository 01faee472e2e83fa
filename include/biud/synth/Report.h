#pragma once
/// \file Report.h
/// Radiology reports for synthetic studies: FINDINGS and IMPRESSION written the way radiologists
/// write them, from the findings placed in the phantom (so text, labels and image agree).
///
/// Conventions (docs/synth.md): every present finding is mentioned without negation, with
/// laterality, lobe, size in mm or severity where it has them; hedged mentions ("possible",
/// "cannot be excluded") are used only for present, mild findings and are labelled 1. Absent
/// findings are either not mentioned or negated ("no pleural effusion", "pneumothorax is not seen").
#include <string>
#include <vector>

#include "biud/core/Rng.h"
#include "biud/synth/Findings.h"

namespace biud::synth {

enum class Modality { CT, XRay };

struct Report {
  std::string findings;    ///< the FINDINGS section (without its header)
  std::string impression;  ///< the IMPRESSION section (without its header)
  /// "FINDINGS: ...\n\nIMPRESSION: ..."
  std::string text() const { return "FINDINGS: " + findings + "\n\nIMPRESSION: " + impression; }
};

Report writeReport(Rng& rng, const std::vector<FindingInstance>& findings, Modality modality);

}  // namespace biud::synth
