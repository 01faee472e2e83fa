#pragma once
/// \file Prompts.h
/// Zero-shot prompt sets: per finding, positive and negative prompts (an ensemble each), read
/// from YAML (configs/prompts/*.yaml):
///
///     name: synthetic
///     templates:                       # optional; "{}" is replaced by each of a finding's terms
///       positive: ["There is {}.", "{} is present."]
///       negative: ["There is no {}.", "No {} is seen."]
///     findings:
///       - id: pleural_effusion
///         terms: [pleural effusion, fluid in the pleural space]
///         positive: ["Small pleural effusion."]     # added to the template expansions
///         negative: ["The pleural spaces are clear."]
///
/// A finding's prompts = its own lists + every template x every term (in that order, without
/// duplicates). The first letter of each expanded prompt is upper-cased.
#include <string>
#include <vector>

namespace biud::text {

struct FindingPrompts {
  std::string id;
  std::string name;
  std::vector<std::string> positive, negative;
};

struct PromptSet {
  std::string name;
  std::vector<FindingPrompts> findings;

  /// Load and expand. ConfigError naming the file, line and key on unknown keys, a finding with
  /// no positive or no negative prompt, templates without "{}", or duplicate ids.
  static PromptSet load(const std::string& path);
  static PromptSet fromString(const std::string& yaml, const std::string& file = "<string>");
  /// The prompts of a finding; ConfigError listing the known ids when absent.
  const FindingPrompts& at(const std::string& id) const;
  /// Finding ids in file order.
  std::vector<std::string> ids() const;
};

}  // namespace biud::text
