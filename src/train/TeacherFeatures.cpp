#include "biud/train/TeacherFeatures.h"

#include <torch/torch.h>

#include <filesystem>

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::train {

void TeacherFeatures::save(const std::string& path) const {
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) joined += (i ? "\n" : "") + ids[i];
  tensor::writeSafetensors(path, {{"h_star", h_star.contiguous().cpu()}, {"report_embedding", report_embedding.contiguous().cpu()}},
                           {{"ct_ids", joined}, {"format", "biud-teacher-features-1"}});
}

TeacherFeatures TeacherFeatures::load(const std::string& path) {
  std::map<std::string, std::string> meta;
  auto t = tensor::readSafetensors(path, &meta);
  BIUD_CHECK(t.count("h_star") && t.count("report_embedding") && meta.count("ct_ids"), DataError,
             "`{}` is not a teacher-features file written by biud-retrieve (needs h_star, report_embedding, ct_ids)", path);
  TeacherFeatures f;
  f.h_star = t.at("h_star");
  f.report_embedding = t.at("report_embedding");
  std::string cur;
  for (char c : meta.at("ct_ids") + "\n") {
    if (c == '\n') {
      if (!cur.empty()) f.ids.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  BIUD_CHECK(static_cast<std::int64_t>(f.ids.size()) == f.h_star.size(0), DataError,
             "`{}`: {} ids but {} feature rows", path, f.ids.size(), f.h_star.size(0));
  for (size_t i = 0; i < f.ids.size(); ++i) f.row[f.ids[i]] = static_cast<std::int64_t>(i);
  return f;
}

torch::Tensor TeacherFeatures::rowsOf(const std::vector<std::string>& want, const std::string& source) const {
  std::vector<std::int64_t> r;
  r.reserve(want.size());
  for (const auto& id : want) {
    auto it = row.find(id);
    BIUD_CHECK(it != row.end(), DataError,
               "CT `{}` has no teacher features in `{}`: re-run biud-retrieve on the same manifest", id, source);
    r.push_back(it->second);
  }
  return torch::tensor(r);
}

std::string teacherFeaturesPath(const std::string& pairingCsv) {
  return (std::filesystem::path(pairingCsv).parent_path() / "teacher_features.safetensors").string();
}

}  // namespace biud::train
