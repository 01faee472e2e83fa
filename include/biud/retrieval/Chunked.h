#pragma once
/// \file Chunked.h
/// Resumable language-guided retrieval (METHOD §2) in chunks. At real scale (300k X-ray reports,
/// 50k CTs) the teacher passes dominate: embedding both report sets and computing the teacher
/// image features of every retrieved X-ray. runChunked() does each pass in chunks of `chunk`
/// items and writes every finished chunk atomically into a work folder, next to a fingerprint of
/// the inputs, so that an interrupted run (SIGINT/SIGTERM, a crash, a lost machine) resumes where
/// it stopped:
///
///     <work>/fingerprint.json          what the chunks were computed from (see Fingerprint)
///     <work>/db_text_000000.safetensors     database (X-ray) report embeddings, rows [0, chunk)
///     <work>/query_text_000000.safetensors  query (CT) report embeddings
///     <work>/topk_000000.safetensors        top-K of queries [0, chunk) against the whole database
///     <work>/images_000000.safetensors      teacher image features of the chunk's distinct X-rays
///
/// A chunk is either complete on disk or absent (temp file + rename), so a killed run never leaves
/// a half chunk behind. Chunks are computed in the same batches whether or not the run was
/// interrupted (batches start at chunk starts), so a resumed run is bit-identical to an
/// uninterrupted one. A work folder whose fingerprint differs from the current inputs is removed
/// with a warning naming what changed, and the run starts clean (the chunks are only a cache of
/// what the inputs determine; keeping stale ones could silently mix two corpora).
///
/// The library knows nothing of the teacher: the caller embeds through callbacks (so tests can
/// drive it with synthetic embedders, and the retrieval area does not depend on train).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

#include "biud/retrieval/TopK.h"

namespace biud::retrieval {

/// FNV-1a 64-bit hash, for fingerprinting inputs (not cryptographic: it detects changes, it does
/// not resist forgery). Fields are added with a separator so that ("ab","c") != ("a","bc").
class ContentHash {
 public:
  ContentHash& add(std::string_view s);
  ContentHash& add(std::int64_t v);
  /// 16 hex digits.
  std::string hex() const;

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
  void bytes(const void* p, std::size_t n);
};

/// What the work folder was computed from: an ordered list of (key, value) text pairs. Two
/// fingerprints match when every pair is equal; the mismatch message names the keys that differ.
struct Fingerprint {
  std::vector<std::pair<std::string, std::string>> fields;
  Fingerprint& set(const std::string& key, const std::string& value);
  std::string json() const;
  /// Parse json(); empty optional-like result (no fields) on a malformed file.
  static Fingerprint parse(const std::string& text);
  /// Keys whose values differ (or that only one side has), in order.
  std::vector<std::string> differences(const Fingerprint& other) const;
};

struct ChunkedJob {
  std::int64_t nQueries = 0;   ///< CT reports
  std::int64_t nDatabase = 0;  ///< X-ray reports
  /// Normalised text embeddings of queries / database rows [begin, end) as [end-begin, d] (end -
  /// begin <= textBatch). Called in batches that start at chunk starts.
  std::function<torch::Tensor(std::int64_t begin, std::int64_t end)> embedQueries, embedDatabase;
  /// Precomputed report features ([nQueries, d] / [nDatabase, d], CPU): when defined, used instead
  /// of embedQueries / embedDatabase and their passes are skipped (biud-retrieve --ct-report-features).
  /// The fingerprint must then identify them (e.g. file path, size and mtime).
  torch::Tensor queryFeatures, databaseFeatures;
  /// Teacher image features of database rows `rows` (at most imageBatch) as [rows, d_X]. Empty:
  /// no image pass (the caller gathers the features of ChunkedResult::keptRows itself).
  std::function<torch::Tensor(const std::vector<std::int64_t>& rows)> embedImages;
  Fingerprint fingerprint;    ///< the inputs; chunk, k and dbBlock are added by runChunked()
  std::int64_t chunk = 4096;  ///< items per chunk file
  std::int64_t textBatch = 128;
  std::int64_t imageBatch = 32;
  TopKOptions topk;  ///< k, dbBlock, queryBlock, precision (onBlock is set internally)
  /// Polled between batches with the number of chunks computed (not resumed) so far in this call;
  /// true stops the run (e.g. app::stopRequested, or biud-retrieve --stop-after-chunks). A partial
  /// chunk is discarded.
  std::function<bool(std::int64_t chunksComputed)> stop;
  /// Progress bars (off in tests that count nothing).
  bool progress = true;
};

struct ChunkedResult {
  bool complete = false;         ///< false: stopped; finished chunks are on disk
  torch::Tensor queryEmbedding;  ///< [N, d] (complete only)
  TopKResult topk;               ///< [N, K] best first
  torch::Tensor imageFeatures;   ///< [N, K, d_X]: teacher features of each kept X-ray (undefined without embedImages)
  torch::Tensor keptRows;        ///< distinct database rows in topk.indices, ascending (int64)
  std::int64_t distinctImages = 0;
  double searchSeconds = 0;  ///< time in the top-K pass (computed chunks only)
  std::int64_t chunksComputed = 0, chunksResumed = 0;
};

/// Run (or resume) the chunked retrieval with work files in `workDir` (created). See the file
/// comment. Throws ValueError/DataError on inconsistent callbacks (wrong shapes).
ChunkedResult runChunked(const ChunkedJob& job, const std::filesystem::path& workDir);

/// Write pairing.csv (ct_id, xray_id, score, rank; K rows per CT, best first) atomically.
void writePairing(const std::string& path, const std::vector<std::string>& queryIds,
                  const std::vector<std::string>& databaseIds, const TopKResult& r);

}  // namespace biud::retrieval
