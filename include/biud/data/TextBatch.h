#pragma once
/// \file TextBatch.h
/// Reports -> token tensors for the text towers, with the masks entity-focused masking needs.
#include <string>
#include <vector>

#include <torch/types.h>

#include "biud/text/Entities.h"
#include "biud/text/Tokenizer.h"

namespace biud::data {

struct TextBatch {
  torch::Tensor ids;      ///< [B, L] int64
  torch::Tensor mask;     ///< [B, L] int64, 1 = real token
  torch::Tensor special;  ///< [B, L] bool, [CLS]/[SEP]/[PAD]
  torch::Tensor
      entity;  ///< [B, L] bool, token inside a finding/anatomy/attribute mention (undefined without an extractor)
  std::vector<text::ReportLabels> labels;  ///< per report (only with an extractor)
};

/// Tokenize `texts` (padded to the longest, or to `maxLength` when `padToMax`; truncated at
/// `maxLength`). With `entities`, every report is also run through the entity extractor;
/// `findingsOnly` marks only finding mentions in `entity` (loss.efm.entities: findings), not
/// anatomy, attributes or sizes.
TextBatch tokenizeBatch(const text::Tokenizer& tok, const std::vector<std::string>& texts, int maxLength,
                        const text::EntityExtractor* entities = nullptr, bool padToMax = false,
                        bool findingsOnly = false);

/// Finding matrix [B, F] (1 = present or uncertain, 0 = absent or not mentioned) for RoCo's
/// identical-findings criterion; rows can be gathered across ranks.
torch::Tensor findingMatrix(const std::vector<text::ReportLabels>& labels);

}  // namespace biud::data
