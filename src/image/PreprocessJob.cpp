#include "biud/image/PreprocessJob.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/image/CtCache.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"

namespace biud::image {

namespace stdfs = std::filesystem;

Volume readItemVolume(const ManifestItem& it, std::vector<std::string>* disagreements,
                      const std::vector<double>& spacingRange) {
  BIUD_CHECK(!it.images.empty(), DataError, "item `{}` has no image", it.id);
  VolumeReadOptions opt = VolumeReadOptions::withSpacingRange(spacingRange);
  opt.overrides = it.overrides;
  opt.disagreements = disagreements;
  return readVolume(it.images[0], opt);
}

std::string checkHu(const Volume& hu, const CtPreprocessConfig& cfg, const std::string& what) {
  if (cfg.hu_check == "off") return {};
  const double air = airFraction(hu);
  if (air >= cfg.min_air_fraction) return {};
  float lo = 0, hi = 0;
  if (!hu.data.empty()) {
    const auto [a, b] = std::minmax_element(hu.data.begin(), hu.data.end());
    lo = *a;
    hi = *b;
  }
  const std::string msg = fmt::format(
      "{}: only {:.2f} % of the voxels are in [-1100, -900] HU (air, lung; expected >= {:.2f} % in a chest CT; "
      "values {} .. {}): the HU values look wrong — a rescale intercept missing (raw values 0..4095) or applied twice. "
      "Check rescale_slope/rescale_intercept in the manifest (biud-import ct-rate --rescale), or set "
      "data.ct.hu_check=off for volumes that are not chest CTs",
      what, 100.0 * air, 100.0 * cfg.min_air_fraction, lo, hi);
  BIUD_CHECK(cfg.hu_check != "error", DataError, "{}", msg);
  return msg;
}

PreprocessSummary runPreprocess(const Manifest& manifest, const CtPreprocessConfig& cfg,
                                const PreprocessJobOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  BIUD_CHECK(!opt.out.empty(), ConfigError, "--out (the cache folder) is required");
  fs::makeDirs(opt.out);
  PreprocessSummary sum;
  sum.total = manifest.items.size();
  sum.hash = preprocessHash(cfg);
  const std::string desc = describePreprocess(cfg);

  // An existing cache must have been built with the same parameters.
  const auto [oldHash, oldDesc] = cacheHashOf(opt.out);
  BIUD_CHECK(oldHash.empty() || oldHash == sum.hash, ConfigError,
             "cache folder `{}` was built with other preprocessing parameters ({}; hash {}) than now ({}; hash {}). "
             "Use another --out folder, or delete `{}` to rebuild",
             opt.out, oldDesc, oldHash, desc, sum.hash, opt.out);

  // Resume: complete records of earlier runs count as done; partial tails are cut off.
  std::vector<std::string> shards;
  for (const auto& e : stdfs::directory_iterator(opt.out)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("shard-", 0) == 0 && e.path().extension() == ".bin") shards.push_back(n);
  }
  std::sort(shards.begin(), shards.end());
  // With verifyExisting every record is re-read and checked against its crc32 first: a record
  // damaged since it was written is redone, not skipped as done.
  std::unordered_map<std::string, CacheEntry> have;
  std::vector<std::string> damaged;
  for (const auto& s : shards) {
    std::uint64_t cut = 0;
    std::vector<std::string> bad;
    for (auto& e : scanShard(opt.out, s, sum.hash, /*repair=*/true, &cut, opt.verifyExisting, &bad))
      have[e.id] = std::move(e);
    if (cut > 0)
      log::warn("data", "cache shard `{}`: cut off a partial or damaged record ({} bytes); it is redone", s, cut);
    damaged.insert(damaged.end(), bad.begin(), bad.end());
  }
  // A damaged record is redone even when an intact copy exists in another shard (the index is
  // rebuilt from `have`, which keeps only intact records).
  for (const auto& id : damaged)
    if (!have.count(id)) ++sum.damaged;
  if (sum.damaged > 0)
    log::warn("data", "{} record(s) in `{}` fail their checksum (first: `{}`): they are redone", sum.damaged, opt.out,
              damaged.front());
  std::vector<size_t> todo;
  for (size_t i = 0; i < manifest.items.size(); ++i)
    if (!have.count(manifest.items[i].id)) todo.push_back(i);
  sum.skipped = manifest.items.size() - todo.size();
  if (sum.skipped > 0) log::info("data", "resuming: {} of {} items already in `{}`", sum.skipped, sum.total, opt.out);

  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, todo.size()))));
  const CacheDtype dtype = cfg.storage == "float16" ? CacheDtype::Float16 : CacheDtype::Int16;
  const float quant = int16Quant(cfg);
  const std::string run = fmt::format("shard-{}-{:x}", fs::timestamp(), static_cast<unsigned>(::getpid()) & 0xffffu);

  std::mutex mu;
  std::vector<CacheEntry> fresh;
  std::vector<nlohmann::json> failures;
  std::map<std::string, nlohmann::json> notes;  // id -> {id, image, notes}
  std::set<std::string> processed;              // ids read in this run
  std::atomic<size_t> next{0};
  Progress progress("preprocess", todo.size(), "vol");
  if (!opt.progress) progress.logEverySeconds = 1e9;
  std::exception_ptr fatal;
  auto worker = [&](int t) {
    try {
      CacheWriter writer(opt.out, sum.hash, dtype, quant, static_cast<std::uint64_t>(cfg.shard_mb) << 20,
                         fmt::format("{}-w{:02d}", run, t));
      for (;;) {
        if (app::stopRequested()) break;
        const size_t k = next.fetch_add(1);
        if (k >= todo.size()) break;
        const ManifestItem& it = manifest.items[todo[k]];
        std::string error;
        CacheEntry entry;
        std::vector<std::string> itemNotes;
        bool implausible = false;
        try {
          const auto ta = std::chrono::steady_clock::now();
          Volume raw = readItemVolume(it, &itemNotes, cfg.spacing_range);
          for (const auto& n : itemNotes)
            log::info("data", "{}: header and manifest disagree; manifest used: {}", it.id, n);
          const std::string hu = checkHu(raw, cfg, fmt::format("item `{}` (`{}`)", it.id, it.images[0]));
          if (!hu.empty()) {
            log::warn("data", "{}", hu);
            itemNotes.push_back(hu);
            implausible = true;
          }
          const auto tb = std::chrono::steady_clock::now();
          Volume v = preprocessCt(raw, cfg);
          const auto tc = std::chrono::steady_clock::now();
          entry = writer.write(it.id, v);
          const auto td = std::chrono::steady_clock::now();
          auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
          log::debug("data", "{}: read {:.0f} ms ({}x{}x{}), preprocess {:.0f} ms, write {:.0f} ms", it.id, ms(ta, tb),
                     raw.size[0], raw.size[1], raw.size[2], ms(tb, tc), ms(tc, td));
        } catch (const Error& e) {
          error = e.what();
          implausible =
              implausible || (cfg.hu_check == "error" && error.find("HU values look wrong") != std::string::npos);
        } catch (const std::bad_alloc&) {
          error = "out of memory while preprocessing";
        }
        std::lock_guard<std::mutex> lock(mu);
        processed.insert(it.id);
        const bool disagreed = !itemNotes.empty() && !(implausible && itemNotes.size() == 1);
        sum.disagreed += disagreed;
        sum.implausible += implausible;
        if (!itemNotes.empty())
          notes[it.id] = {{"id", it.id}, {"image", it.images.empty() ? "" : it.images[0]}, {"notes", itemNotes}};
        if (error.empty()) {
          fresh.push_back(std::move(entry));
        } else {
          log::warn("data", "item `{}` failed: {}", it.id, error);
          failures.push_back(
              {{"id", it.id}, {"image", it.images.empty() ? "" : it.images[0]}, {"line", it.line}, {"error", error}});
        }
        progress.advance(1, fmt::format("{} failed", failures.size()));
      }
      writer.close();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!fatal) fatal = std::current_exception();
      app::requestStop();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (auto& th : pool) th.join();
  progress.finish();
  if (fatal) std::rethrow_exception(fatal);

  // Index in manifest order; items of earlier runs no longer in the manifest are kept too.
  // A second signal does not interrupt these writes (the records are written; only the index
  // makes them reachable without a rescan).
  app::SaveScope saving;
  for (auto& e : fresh) have[e.id] = std::move(e);
  std::vector<CacheEntry> all;
  std::set<std::string> listed;
  for (const auto& it : manifest.items) {
    auto f = have.find(it.id);
    if (f != have.end()) {
      all.push_back(f->second);
      listed.insert(it.id);
    }
  }
  for (const auto& [id, e] : have)
    if (!listed.count(id)) all.push_back(e);
  writeCacheIndex(opt.out, sum.hash, desc, all);
  std::string fl;
  for (const auto& f : failures) fl += f.dump() + "\n";
  fs::atomicWrite(stdfs::path(opt.out) / "failures.jsonl", fl);
  // Notes of earlier runs stay for the items that were not redone now.
  const stdfs::path notesPath = stdfs::path(opt.out) / "notes.jsonl";
  std::error_code ec;
  if (stdfs::exists(notesPath, ec)) {
    std::istringstream in(fs::readFile(notesPath));
    std::string line;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        const std::string id = j.value("id", "");
        if (!id.empty() && !processed.count(id) && have.count(id)) notes[id] = std::move(j);
      } catch (const std::exception&) {
      }
    }
  }
  std::string nl;
  for (const auto& [id, j] : notes) nl += j.dump() + "\n";
  fs::atomicWrite(notesPath, nl);
  sum.done = fresh.size();
  sum.failed = failures.size();
  sum.interrupted = app::stopRequested() && sum.done + sum.failed + sum.skipped < sum.total;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

EvalCache prepareEvalCache(const Manifest& m, const std::vector<std::string>& splits, const CtPreprocessConfig& cfg,
                           const std::string& cacheDir, const std::string& fallbackDir, int threads, bool progress) {
  EvalCache out;
  out.manifest.path = m.path;
  out.manifest.labelNames = m.labelNames;
  Manifest want;
  want.path = m.path;
  want.labelNames = m.labelNames;
  for (const auto& it : m.items)
    if (splits.empty() || std::find(splits.begin(), splits.end(), it.split) != splits.end()) want.items.push_back(it);
  const std::string hash = preprocessHash(cfg);
  std::error_code ec;
  std::string dir;
  if (!cacheDir.empty() && stdfs::exists(stdfs::path(cacheDir) / "index.json", ec)) {
    const auto [have, desc] = cacheHashOf(cacheDir);
    if (have == hash)
      dir = cacheDir;
    else
      log::warn("data",
                "cache `{}` was built with other preprocessing parameters ({}) than this model's ({}); preprocessing "
                "the evaluated items into `{}` instead",
                cacheDir, desc, describePreprocess(cfg), fallbackDir);
  }
  std::map<std::string, std::string> errors;  // id -> why it is not in the cache
  if (!dir.empty()) {
    // The given cache serves only if it holds every evaluated item (or records why it could not):
    // another manifest (an external set) gets a cache of its own.
    errors = readCacheFailures(dir);
    CacheReader given(dir, hash, describePreprocess(cfg));
    size_t absent = 0;
    for (const auto& it : want.items) absent += !given.find(it.id) && !errors.count(it.id);
    if (absent > 0) {
      log::info("data", "cache `{}` lacks {} of the {} evaluated CTs; preprocessing them into `{}`", dir, absent,
                want.items.size(), fallbackDir);
      dir.clear();
    }
  }
  if (dir.empty()) {
    PreprocessJobOptions o;
    o.out = fallbackDir;
    o.threads = threads;
    o.progress = progress;
    log::info("data",
              "no cache with this model's preprocessing holds the {} evaluated CTs: preprocessing them into `{}`",
              want.items.size(), fallbackDir);
    const auto sum = runPreprocess(want, cfg, o);
    BIUD_CHECK(!sum.interrupted, DataError, "interrupted while preprocessing into `{}`", fallbackDir);
    out.built = sum.done;
    dir = fallbackDir;
  }
  // Why an item is missing: the cache's own failures.jsonl, when it says.
  errors = readCacheFailures(dir);
  CacheReader cache(dir, hash, describePreprocess(cfg));
  for (const auto& it : want.items) {
    if (cache.find(it.id)) {
      out.manifest.items.push_back(it);
      continue;
    }
    auto e = errors.find(it.id);
    const std::string why = e != errors.end() && !e->second.empty()
                                ? e->second
                                : fmt::format("not in the cache `{}`; run biud-preprocess on this manifest", dir);
    log::warn("data", "item `{}` skipped: {}", it.id, why);
    out.failures.push_back(nlohmann::json{
        {"id", it.id},
        {"image", it.images.empty() ? "" : it.images[0]},
        {"line", it.line},
        {"error", why}}.dump());
  }
  out.cacheDir = dir;
  return out;
}

}  // namespace biud::image
