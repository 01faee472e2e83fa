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
///
/// Label columns find their prompts by name (`matchLabels`): a column matches the finding whose
/// `id` or `name` equals it, or equals it once both are normalised (`labelKey`: lower case, every
/// run of other characters than a-z and 0-9 becomes one `_`). So CT-RATE's column
/// `Medical material`, `medical_material` and `MEDICAL-MATERIAL` all find the finding
/// `{id: medical_material, name: Medical material}`.
#include <cstdint>
#include <string>
#include <vector>

namespace biud::text {

struct FindingPrompts {
  std::string id;
  std::string name;
  std::vector<std::string> positive, negative;
};

/// The label columns of a data set that have prompts (see PromptSet::matchLabels).
struct LabelMatch {
  std::vector<std::string> findings;   ///< the matched label columns' names, in column order
  std::vector<std::int64_t> columns;   ///< their column indices
  std::vector<std::string> unmatched;  ///< label columns without prompts, in column order
};

/// `Medical material` -> `medical_material`: lower case ASCII, each run of characters other than
/// a-z and 0-9 one `_`, none at either end.
std::string labelKey(const std::string& name);

struct PromptSet {
  std::string name;
  std::string file;  ///< where it was read from (for messages)
  std::vector<FindingPrompts> findings;

  /// Load and expand. ConfigError naming the file, line and key on unknown keys, a finding with
  /// no positive or no negative prompt, templates without "{}", or duplicate ids.
  static PromptSet load(const std::string& path);
  static PromptSet fromString(const std::string& yaml, const std::string& file = "<string>");
  /// The prompts of a finding, found by id or name like a label column (`match`); ConfigError
  /// listing the known ids and names when absent.
  const FindingPrompts& at(const std::string& id) const;
  /// The finding a label column named `label` matches (id or name, exactly, else by labelKey);
  /// nullptr when none.
  const FindingPrompts* match(const std::string& label) const;
  /// Which of `labelNames` have prompts. ConfigError when none has: the message lists both sides
  /// (every label column and every finding's id and name) and names `labelsFrom` (e.g. the manifest).
  LabelMatch matchLabels(const std::vector<std::string>& labelNames,
                         const std::string& labelsFrom = "the label columns") const;
  /// "id (name), ..." of every finding, for messages.
  std::string describe() const;
  /// Finding ids in file order.
  std::vector<std::string> ids() const;
};

}  // namespace biud::text
