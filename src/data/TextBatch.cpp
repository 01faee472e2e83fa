#include "biud/data/TextBatch.h"

#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::data {

TextBatch tokenizeBatch(const text::Tokenizer& tok, const std::vector<std::string>& texts, int maxLength,
                        const text::EntityExtractor* entities, bool padToMax, bool findingsOnly) {
  BIUD_CHECK(!texts.empty(), ValueError, "tokenizeBatch: no texts");
  text::EncodeOptions o;
  o.maxLength = maxLength;
  o.truncation = true;
  o.padding = padToMax ? text::Padding::MaxLength : text::Padding::Longest;
  const auto enc = tok.encodeBatch(texts, o);
  const auto b = static_cast<std::int64_t>(enc.size());
  const auto l = static_cast<std::int64_t>(enc.front().ids.size());
  TextBatch out;
  out.ids = torch::empty({b, l}, torch::kInt64);
  out.mask = torch::empty({b, l}, torch::kInt64);
  out.special = torch::zeros({b, l}, torch::kBool);
  auto ids = out.ids.accessor<std::int64_t, 2>();
  auto mask = out.mask.accessor<std::int64_t, 2>();
  auto special = out.special.accessor<bool, 2>();
  for (std::int64_t i = 0; i < b; ++i) {
    const auto& e = enc[static_cast<size_t>(i)];
    for (std::int64_t j = 0; j < l; ++j) {
      ids[i][j] = e.ids[static_cast<size_t>(j)];
      mask[i][j] = e.attentionMask[static_cast<size_t>(j)];
      special[i][j] = e.specialMask[static_cast<size_t>(j)] != 0;
    }
  }
  if (entities) {
    out.entity = torch::zeros({b, l}, torch::kBool);
    auto ent = out.entity.accessor<bool, 2>();
    out.labels.reserve(static_cast<size_t>(b));
    for (std::int64_t i = 0; i < b; ++i) {
      out.labels.push_back(entities->extract(texts[static_cast<size_t>(i)]));
      for (int p : text::entityTokenPositions(enc[static_cast<size_t>(i)], out.labels.back().entities, findingsOnly))
        if (p < l) ent[i][p] = true;
    }
  }
  return out;
}

torch::Tensor findingMatrix(const std::vector<text::ReportLabels>& labels) {
  const auto b = static_cast<std::int64_t>(labels.size());
  const auto f = b ? static_cast<std::int64_t>(labels.front().status.size()) : 0;
  auto out = torch::zeros({b, f}, torch::kFloat32);
  auto a = out.accessor<float, 2>();
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t k = 0; k < f; ++k) {
      const auto s = labels[static_cast<size_t>(i)].status[static_cast<size_t>(k)];
      a[i][k] = (s == text::FindingStatus::Present || s == text::FindingStatus::Uncertain) ? 1.0f : 0.0f;
    }
  return out;
}

}  // namespace biud::data
