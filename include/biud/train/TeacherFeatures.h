#pragma once
/// \file TeacherFeatures.h
/// What biud-retrieve caches for stage 1, per CT study: the teacher features h* of its top-K
/// retrieved X-rays with their retrieval scores, and the teacher embedding of its own report (for
/// RoCo's report-similarity criterion and the semantic anchors). Stored as safetensors beside
/// pairing.csv:
///
///     h_star            [N, K, d_X] float  normalised teacher image features, best X-ray first
///     scores            [N, K]      float  retrieval scores <q_i, e_k> of those X-rays
///     report_embedding  [N, d_X]    float  normalised teacher text embeddings of the CT reports
///     metadata: ct_ids (newline-separated, row order), format = biud-teacher-features-2
///
/// Files of format 1 (h_star [N, d_X], no scores) still load, as K = 1.
///
/// Per-epoch top-K sampling (METHOD §2 option): draw() picks, for each CT, one of its first k
/// X-rays with probability softmax(score / tau), from a seed derived from (run seed, epoch, CT
/// dataset index) only — the same draw on every rank, after a resume, and whatever the batch.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace biud::train {

struct TeacherFeatures {
  std::vector<std::string> ids;  ///< CT ids, row order
  /// [N, d_X] h* of each CT's rank-1 X-ray (after load(): a view of candidates[:, 0]).
  torch::Tensor h_star;
  torch::Tensor report_embedding;  ///< [N, d_X] normalised teacher text embeddings of the CT reports
  /// [N, K, d_X] h* of the top-K X-rays, best first; undefined = K 1 (h_star only).
  torch::Tensor candidates;
  torch::Tensor scores;                     ///< [N, K] retrieval scores; undefined = K 1
  std::map<std::string, std::int64_t> row;  ///< id -> row

  /// K: how many retrieved X-rays per CT the file holds.
  std::int64_t topK() const { return candidates.defined() ? candidates.size(1) : 1; }
  void save(const std::string& path) const;
  static TeacherFeatures load(const std::string& path);
  /// Rows of `ids` (DataError naming the first id that biud-retrieve did not pair).
  torch::Tensor rowsOf(const std::vector<std::string>& ids, const std::string& source) const;
  /// ConfigError naming `source` and the fix unless the file holds at least `k` X-rays per CT.
  void requireTopK(int k, const std::string& source) const;

  struct Draw {
    torch::Tensor h_star;             ///< [n, d_X] h* of the drawn X-rays
    std::vector<std::int64_t> ranks;  ///< 0-based rank drawn per CT (0 = best)
  };
  /// The h* of `rows` for one epoch: with k = 1 the rank-1 features (exactly h_star's rows, no
  /// randomness); otherwise one of the first k candidates per CT, rank j with probability
  /// softmax(scores[:k] / tau)_j, drawn from pairingSeed(seed, epoch, datasetIndices[i]).
  Draw draw(const torch::Tensor& rows, const std::vector<std::int64_t>& datasetIndices, int k, double tau,
            std::uint64_t seed, std::int64_t epoch) const;
};

/// Seed of one CT's draw in one epoch: derived from the run seed, the epoch and the CT's index in
/// the training dataset only.
std::uint64_t pairingSeed(std::uint64_t seed, std::int64_t epoch, std::int64_t datasetIndex);
/// 0-based rank in [0, k) drawn with probability softmax(scores[0..k) / tau) from one uniform
/// number made of `seed` (53 bits of SplitMix64(seed)); computed in double, max-subtracted.
std::int64_t drawRank(const float* scores, std::int64_t k, double tau, std::uint64_t seed);

/// The file beside a pairing file: <dir>/teacher_features.safetensors.
std::string teacherFeaturesPath(const std::string& pairingCsv);

}  // namespace biud::train
