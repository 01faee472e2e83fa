#include "biud/retrieval/Chunked.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/tensor/Safetensors.h"

namespace biud::retrieval {

namespace stdfs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Fingerprints

void ContentHash::bytes(const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    h_ ^= b[i];
    h_ *= 0x100000001b3ULL;
  }
}

ContentHash& ContentHash::add(std::string_view s) {
  const std::uint64_t n = s.size();  // length prefix: unambiguous field boundaries
  bytes(&n, sizeof n);
  bytes(s.data(), s.size());
  return *this;
}

ContentHash& ContentHash::add(std::int64_t v) {
  bytes(&v, sizeof v);
  return *this;
}

std::string ContentHash::hex() const { return fmt::format("{:016x}", h_); }

Fingerprint& Fingerprint::set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : fields)
    if (k == key) {
      v = value;
      return *this;
    }
  fields.emplace_back(key, value);
  return *this;
}

std::string Fingerprint::json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : fields) j[k] = v;
  return j.dump(2) + "\n";
}

Fingerprint Fingerprint::parse(const std::string& text) {
  Fingerprint f;
  auto j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return f;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) return {};
    f.fields.emplace_back(it.key(), it.value().get<std::string>());
  }
  return f;
}

std::vector<std::string> Fingerprint::differences(const Fingerprint& other) const {
  std::map<std::string, std::string> a(fields.begin(), fields.end()), b(other.fields.begin(), other.fields.end());
  std::vector<std::string> out;
  for (const auto& [k, v] : fields) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) out.push_back(k);
  }
  for (const auto& [k, v] : other.fields)
    if (!a.count(k)) out.push_back(k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chunked passes

namespace {

std::string chunkFile(const std::string& prefix, std::int64_t c) {
  return fmt::format("{}_{:06d}.safetensors", prefix, c);
}

/// Remove what an earlier run left in `dir` (only plain files directly in it: the folder is ours,
/// but never recurse into something a user may have put there).
void clearWorkDir(const stdfs::path& dir) {
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec))
    if (e.is_regular_file()) stdfs::remove(e.path(), ec);
}

/// Shared state of one runChunked() call: stop logic and counters.
struct Runner {
  const ChunkedJob& job;
  stdfs::path dir;
  std::int64_t computed = 0, resumed = 0;

  bool stopNow() const { return job.stop && job.stop(computed); }

  /// One pass over `nItems` items in chunks. `compute(begin, end, bar)` returns the chunk's
  /// tensors, or nullopt when a stop interrupted it; `valid(tensors, begin, end)` says whether a
  /// chunk found on disk fits (a file from other inputs would have been removed with its
  /// fingerprint, so a misfit means a damaged folder: it is recomputed with a warning).
  /// Returns the chunks in order, or nullopt when stopped.
  std::optional<std::vector<tensor::TensorMap>> pass(
      const std::string& label, const std::string& unit, const std::string& prefix, std::int64_t nItems,
      const std::function<std::optional<tensor::TensorMap>(std::int64_t, std::int64_t, Progress*)>& compute,
      const std::function<bool(const tensor::TensorMap&, std::int64_t, std::int64_t)>& valid) {
    const std::int64_t chunk = job.chunk;
    const std::int64_t nChunks = (nItems + chunk - 1) / chunk;
    std::vector<tensor::TensorMap> out(static_cast<size_t>(nChunks));
    std::vector<bool> have(static_cast<size_t>(nChunks), false);
    std::int64_t doneItems = 0, doneChunks = 0;
    for (std::int64_t c = 0; c < nChunks; ++c) {
      const auto p = dir / chunkFile(prefix, c);
      if (!stdfs::exists(p)) continue;
      const std::int64_t b = c * chunk, e = std::min(nItems, b + chunk);
      try {
        auto t = tensor::readSafetensors(p.string());
        if (valid(t, b, e)) {
          out[static_cast<size_t>(c)] = std::move(t);
          have[static_cast<size_t>(c)] = true;
          doneItems += e - b;
          ++doneChunks;
          continue;
        }
      } catch (const Error&) {
      }
      log::warn("retrieve", "work file `{}` does not fit its chunk; computing it again", p.string());
    }
    if (doneChunks > 0)
      log::info("retrieve", "{}: resuming, {} of {} chunks ({} of {} {}s) already done in `{}`", label, doneChunks,
                nChunks, doneItems, nItems, unit, dir.string());
    resumed += doneChunks;
    std::optional<Progress> bar;
    if (job.progress) {
      bar.emplace(label, static_cast<std::uint64_t>(nItems), unit);
      if (doneItems > 0) bar->set(static_cast<std::uint64_t>(doneItems));  // the bar shows resumed work
    }
    for (std::int64_t c = 0; c < nChunks; ++c) {
      if (have[static_cast<size_t>(c)]) continue;
      if (stopNow()) return std::nullopt;
      const std::int64_t b = c * chunk, e = std::min(nItems, b + chunk);
      auto t = compute(b, e, bar ? &*bar : nullptr);
      if (!t) return std::nullopt;
      tensor::writeSafetensors((dir / chunkFile(prefix, c)).string(), *t,
                               {{"begin", std::to_string(b)}, {"end", std::to_string(e)}});
      out[static_cast<size_t>(c)] = std::move(*t);
      ++computed;
    }
    if (bar) bar->finish();
    return out;
  }

  /// Text embeddings of items [0, n) through `embed`, batch by batch.
  std::optional<torch::Tensor> embedTexts(const std::string& label, const std::string& prefix, std::int64_t n,
                                          const std::function<torch::Tensor(std::int64_t, std::int64_t)>& embed) {
    auto chunks = pass(
        label, "report", prefix, n,
        [&](std::int64_t b, std::int64_t e, Progress* bar) -> std::optional<tensor::TensorMap> {
          std::vector<torch::Tensor> parts;
          for (std::int64_t s = b; s < e; s += job.textBatch) {
            if (s > b && stopNow()) return std::nullopt;
            const std::int64_t t = std::min(e, s + job.textBatch);
            auto x = embed(s, t).to(torch::kCPU, torch::kFloat32).contiguous();
            BIUD_CHECK(x.dim() == 2 && x.size(0) == t - s, ValueError, "{}: embedding of rows [{}, {}) has shape {}",
                       label, s, t, c10::str(x.sizes()));
            parts.push_back(x);
            if (bar) bar->advance(static_cast<std::uint64_t>(t - s));
          }
          return tensor::TensorMap{{"embedding", torch::cat(parts)}};
        },
        [&](const tensor::TensorMap& t, std::int64_t b, std::int64_t e) {
          auto it = t.find("embedding");
          return it != t.end() && it->second.dim() == 2 && it->second.size(0) == e - b;
        });
    if (!chunks) return std::nullopt;
    std::vector<torch::Tensor> parts;
    for (auto& c : *chunks) parts.push_back(c.at("embedding"));
    auto all = torch::cat(parts);
    return all;
  }
};

}  // namespace

ChunkedResult runChunked(const ChunkedJob& job, const stdfs::path& workDir) {
  BIUD_CHECK(job.nQueries > 0, ValueError, "retrieval needs at least one query report, got none");
  BIUD_CHECK(job.nDatabase > 0, ValueError, "retrieval needs at least one database report, got none");
  BIUD_CHECK(job.chunk >= 1 && job.textBatch >= 1 && job.imageBatch >= 1, ValueError,
             "chunk ({}), text batch ({}) and image batch ({}) must be >= 1", job.chunk, job.textBatch, job.imageBatch);
  BIUD_CHECK((job.embedQueries || job.queryFeatures.defined()) && (job.embedDatabase || job.databaseFeatures.defined()),
             ValueError, "runChunked: report embedder or features missing");
  for (const auto& [f, n, what] : {std::tuple{&job.queryFeatures, job.nQueries, "query"},
                                   std::tuple{&job.databaseFeatures, job.nDatabase, "database"}})
    BIUD_CHECK(!f->defined() || (f->dim() == 2 && f->size(0) == n), ValueError,
               "runChunked: {} features have shape {}, expected [{}, d]", what, c10::str(f->sizes()), n);

  // Fingerprint: the caller's inputs plus everything here that shapes the chunk files (batches
  // start at chunk starts and pad to their longest report, so the batch sizes are part of it).
  Fingerprint fp = job.fingerprint;
  fp.set("work_format", "biud-retrieve-work-1")
      .set("n_queries", std::to_string(job.nQueries))
      .set("n_database", std::to_string(job.nDatabase))
      .set("chunk", std::to_string(job.chunk))
      .set("text_batch", std::to_string(job.textBatch))
      .set("image_batch", std::to_string(job.imageBatch))
      .set("top_k", std::to_string(job.topk.k))
      .set("db_block", std::to_string(job.topk.dbBlock))
      .set("query_block", std::to_string(job.topk.queryBlock))
      .set("precision", precisionName(job.topk.precision));
  fs::makeDirs(workDir);
  const auto fpPath = workDir / "fingerprint.json";
  if (stdfs::exists(fpPath)) {
    const auto old = Fingerprint::parse(fs::readFile(fpPath));
    const auto diff = old.differences(fp);
    if (old.fields.empty()) {
      log::warn("retrieve",
                "work folder `{}`: fingerprint.json is unreadable; discarding the chunks and starting clean",
                workDir.string());
      clearWorkDir(workDir);
    } else if (!diff.empty()) {
      std::string changed;
      for (const auto& d : diff) changed += (changed.empty() ? "" : ", ") + d;
      log::warn("retrieve",
                "work folder `{}` holds chunks of different inputs (changed: {}); discarding them and starting clean",
                workDir.string(), changed);
      clearWorkDir(workDir);
    }
  } else if (!stdfs::is_empty(workDir)) {
    log::warn("retrieve", "work folder `{}` has no fingerprint.json; discarding its files and starting clean",
              workDir.string());
    clearWorkDir(workDir);
  }
  fs::atomicWrite(fpPath, fp.json());

  Runner run{job, workDir};
  ChunkedResult res;
  auto finish = [&](ChunkedResult r) {
    r.chunksComputed = run.computed;
    r.chunksResumed = run.resumed;
    return r;
  };

  std::optional<torch::Tensor> db, q;
  if (job.databaseFeatures.defined())
    db = job.databaseFeatures;
  else
    db = run.embedTexts("embed X-ray reports", "db_text", job.nDatabase, job.embedDatabase);
  if (!db) return finish(std::move(res));
  if (job.queryFeatures.defined())
    q = job.queryFeatures;
  else
    q = run.embedTexts("embed CT reports", "query_text", job.nQueries, job.embedQueries);
  if (!q) return finish(std::move(res));
  BIUD_CHECK(q->size(1) == db->size(1), ValueError, "CT report embeddings have {} dims but X-ray report embeddings {}",
             q->size(1), db->size(1));
  // The database is held in the search precision (bf16/fp16 halve it); blockedTopK rounds the
  // queries the same way and scores in fp32.
  if (const auto dt = precisionDtype(job.topk.precision); db->scalar_type() != dt) db = db->to(dt);

  // Top-K, one chunk of queries against the whole database at a time.
  const std::int64_t k = std::min<std::int64_t>(job.topk.k, job.nDatabase);
  const auto searchStart = std::chrono::steady_clock::now();
  auto topChunks = run.pass(
      "retrieve", "CT", "topk", job.nQueries,
      [&](std::int64_t b, std::int64_t e, Progress* bar) -> std::optional<tensor::TensorMap> {
        TopKOptions o = job.topk;
        const auto n = static_cast<double>(job.nDatabase);
        o.onBlock = [&](std::int64_t done) {
          if (bar) bar->set(static_cast<std::uint64_t>(b + static_cast<double>(e - b) * static_cast<double>(done) / n));
        };
        auto r = blockedTopK(q->slice(0, b, e), *db, o);
        return tensor::TensorMap{{"scores", r.scores.contiguous()}, {"indices", r.indices.contiguous()}};
      },
      [&](const tensor::TensorMap& t, std::int64_t b, std::int64_t e) {
        auto s = t.find("scores"), i = t.find("indices");
        return s != t.end() && i != t.end() && s->second.sizes() == torch::IntArrayRef{e - b, k} &&
               i->second.sizes() == torch::IntArrayRef{e - b, k} && i->second.scalar_type() == torch::kInt64;
      });
  res.searchSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - searchStart).count();
  if (!topChunks) return finish(std::move(res));
  std::vector<torch::Tensor> sc, ix;
  for (auto& c : *topChunks) {
    sc.push_back(c.at("scores"));
    ix.push_back(c.at("indices"));
  }
  TopKResult top{torch::cat(sc), torch::cat(ix)};
  BIUD_CHECK(top.indices.min().item<std::int64_t>() >= 0 && top.indices.max().item<std::int64_t>() < job.nDatabase,
             DataError, "work folder `{}`: top-K indices outside the database of {} rows", workDir.string(),
             job.nDatabase);

  // Teacher image features of every X-ray kept by some CT (each distinct X-ray once), in
  // ascending row order so that the chunking depends only on the top-K result.
  auto needed = std::get<0>(torch::unique_consecutive(std::get<0>(top.indices.flatten().sort()))).contiguous();
  const std::int64_t nNeeded = needed.size(0);
  res.keptRows = needed;
  res.distinctImages = nNeeded;
  res.queryEmbedding = *q;
  res.topk = top;
  if (!job.embedImages) {
    res.complete = true;
    return finish(std::move(res));
  }
  const auto* nd = needed.data_ptr<std::int64_t>();
  auto imgChunks = run.pass(
      "teacher features", "X-ray", "images", nNeeded,
      [&](std::int64_t b, std::int64_t e, Progress* bar) -> std::optional<tensor::TensorMap> {
        std::vector<torch::Tensor> parts;
        for (std::int64_t s = b; s < e; s += job.imageBatch) {
          if (s > b && run.stopNow()) return std::nullopt;
          const std::int64_t t = std::min(e, s + job.imageBatch);
          std::vector<std::int64_t> rows(nd + s, nd + t);
          auto x = job.embedImages(rows).to(torch::kCPU, torch::kFloat32).contiguous();
          BIUD_CHECK(x.dim() == 2 && x.size(0) == t - s, ValueError,
                     "teacher image features of {} X-rays have shape {}", t - s, c10::str(x.sizes()));
          parts.push_back(x);
          if (bar) bar->advance(static_cast<std::uint64_t>(t - s));
        }
        return tensor::TensorMap{{"rows", needed.slice(0, b, e).clone()}, {"features", torch::cat(parts)}};
      },
      [&](const tensor::TensorMap& t, std::int64_t b, std::int64_t e) {
        auto r = t.find("rows"), f = t.find("features");
        return r != t.end() && f != t.end() && f->second.dim() == 2 && f->second.size(0) == e - b &&
               r->second.scalar_type() == torch::kInt64 && torch::equal(r->second, needed.slice(0, b, e));
      });
  if (!imgChunks) return finish(std::move(res));
  std::vector<torch::Tensor> feats;
  for (auto& c : *imgChunks) feats.push_back(c.at("features"));
  auto features = torch::cat(feats);  // [nNeeded, d_X], row j = X-ray needed[j]
  auto pos = torch::searchsorted(needed, top.indices.flatten());
  res.imageFeatures = features.index_select(0, pos).view({top.indices.size(0), top.indices.size(1), features.size(1)});
  res.complete = true;
  return finish(std::move(res));
}

void writePairing(const std::string& path, const std::vector<std::string>& queryIds,
                  const std::vector<std::string>& databaseIds, const TopKResult& r) {
  BIUD_CHECK(r.indices.size(0) == static_cast<std::int64_t>(queryIds.size()), ValueError,
             "pairing `{}`: {} query ids for {} rows", path, queryIds.size(), r.indices.size(0));
  const auto idx = r.indices.contiguous();
  const auto sco = r.scores.to(torch::kFloat32).contiguous();
  const std::int64_t n = idx.size(0), k = idx.size(1);
  const auto* ip = idx.data_ptr<std::int64_t>();
  const auto* sp = sco.data_ptr<float>();
  std::vector<std::vector<std::string>> rows;
  rows.reserve(static_cast<size_t>(n * k));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      const auto x = ip[i * k + j];
      BIUD_CHECK(x >= 0 && x < static_cast<std::int64_t>(databaseIds.size()), ValueError,
                 "pairing `{}`: database row {} outside [0, {})", path, x, databaseIds.size());
      rows.push_back({queryIds[static_cast<size_t>(i)], databaseIds[static_cast<size_t>(x)],
                      fmt::format("{:.6f}", sp[i * k + j]), std::to_string(j + 1)});
    }
  csv::write(path, {"ct_id", "xray_id", "score", "rank"}, rows);
}

}  // namespace biud::retrieval
