#pragma once
/// \file TeacherFeatures.h
/// What biud-retrieve caches for stage 1, per CT study: the teacher features h* of its paired
/// X-ray and the teacher embedding of its own report (for RoCo's report-similarity criterion and
/// the semantic anchors). Stored as safetensors (`h_star`, `report_embedding`, CT ids in the
/// metadata) beside pairing.csv.
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace biud::train {

struct TeacherFeatures {
  std::vector<std::string> ids;    ///< CT ids, row order
  torch::Tensor h_star;            ///< [N, d_X] normalised teacher image features of the paired X-rays
  torch::Tensor report_embedding;  ///< [N, d_X] normalised teacher text embeddings of the CT reports
  std::map<std::string, std::int64_t> row;  ///< id -> row

  void save(const std::string& path) const;
  static TeacherFeatures load(const std::string& path);
  /// Rows of `ids` (DataError naming the first id that biud-retrieve did not pair).
  torch::Tensor rowsOf(const std::vector<std::string>& ids, const std::string& source) const;
};

/// The file beside a pairing file: <dir>/teacher_features.safetensors.
std::string teacherFeaturesPath(const std::string& pairingCsv);

}  // namespace biud::train
