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
///     metadata: ct_ids (newline-separated, row order), format = biud-teacher-features-2,
///               expert_fingerprint, ct_manifest_fingerprint, xray_manifest_fingerprint
///
/// Files of format 1 (h_star [N, d_X], no scores) still load, as K = 1.
///
/// Fingerprints (TeacherFingerprint): h* is matched to CTs by id, so a file made from other data
/// or another expert would silently misalign. biud-retrieve records what it read; the biud task
/// recomputes the same from its config and refuses a file that disagrees (checkFingerprint).
/// Files without fingerprints (written before they existed) load with a warning.
///
/// Per-epoch top-K sampling (METHOD §2 option): draw() picks, for each CT, one of its first k
/// X-rays with probability softmax(score / tau), from a seed derived from (run seed, epoch, CT
/// dataset index) only — the same draw on every rank, after a resume, and whatever the batch.
///
/// The file format and the draw live here (data side); the expert's fingerprint (it resolves the
/// run's newest checkpoint) and the prompt anchors (they load the run) are in evaluate/Teacher.h.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace biud::image {
struct Manifest;
}

namespace biud::data {

/// What a teacher-features file was computed from, as 16-hex-digit content hashes (empty = not
/// recorded / not checked).
struct TeacherFingerprint {
  /// The expert's newest checkpoint: crc32 and size of its model.safetensors (and ema.safetensors
  /// when present: retrieval uses the averaged weights) and the bytes of the run's
  /// config.resolved.yaml.
  std::string expert;
  std::string ct_manifest;    ///< CT manifest: every row's id, report text (report_sections) and image paths, in order
  std::string xray_manifest;  ///< X-ray corpus manifest, the same way
};

/// Fingerprint of one checkpoint folder: crc32 and size of its model.safetensors (and
/// ema.safetensors when present) and the bytes of `runDir`/config.resolved.yaml when present.
/// Finding the expert's newest checkpoint is evaluate::expertFingerprint's job (evaluate/Teacher.h).
std::string checkpointFingerprint(const std::string& checkpointDir, const std::string& runDir);
/// Fingerprint of what retrieval reads from a manifest (ids, the `sections` of the reports, image paths).
std::string manifestFingerprint(const image::Manifest& m, const std::vector<std::string>& sections);

struct TeacherFeatures {
  std::vector<std::string> ids;  ///< CT ids, row order
  /// [N, d_X] h* of each CT's rank-1 X-ray (after load(): a view of candidates[:, 0]).
  torch::Tensor h_star;
  torch::Tensor report_embedding;  ///< [N, d_X] normalised teacher text embeddings of the CT reports
  /// [N, K, d_X] h* of the top-K X-rays, best first; undefined = K 1 (h_star only).
  torch::Tensor candidates;
  torch::Tensor scores;                     ///< [N, K] retrieval scores; undefined = K 1
  std::map<std::string, std::int64_t> row;  ///< id -> row
  TeacherFingerprint fingerprint;           ///< what the file was computed from (empty fields: unknown)

  /// K: how many retrieved X-rays per CT the file holds.
  std::int64_t topK() const { return candidates.defined() ? candidates.size(1) : 1; }
  void save(const std::string& path) const;
  static TeacherFeatures load(const std::string& path);
  /// Rows of `ids` (DataError naming the first id that biud-retrieve did not pair).
  torch::Tensor rowsOf(const std::vector<std::string>& ids, const std::string& source) const;
  /// ConfigError naming `source` and the fix unless the file holds at least `k` X-rays per CT.
  void requireTopK(int k, const std::string& source) const;
  /// DataError unless every fingerprint recorded in the file equals the one in `now` (fields
  /// empty on either side are not compared). The message names `source`, each differing part
  /// with both values and the fix: re-run biud-retrieve. Returns the parts compared.
  std::vector<std::string> checkFingerprint(const TeacherFingerprint& now, const std::string& source) const;
  /// Control experiment (loss.distill.teacher_shuffle): give row i the h*, candidates and scores
  /// of row perm[i], perm a uniform random permutation drawn from `seed` (report embeddings, the
  /// CTs' own, stay). Returns perm.
  std::vector<std::int64_t> shuffleRows(std::uint64_t seed);

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

}  // namespace biud::data
