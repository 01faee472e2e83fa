#include "biud/image/ProjectionJob.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/image/PreprocessJob.h"
#include "biud/image/Projection.h"
#include "biud/image/VolumeIO.h"

namespace biud::image {

namespace stdfs = std::filesystem;

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// File name stem without the volume extension, or "" when `name` is not a volume file.
std::string volumeStem(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* ext : {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"})
    if (endsWith(name, ext)) return name.substr(0, name.size() - std::string(ext).size());
  return "";
}

std::string safeId(const std::string& id) {
  std::string s = id;
  for (auto& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  return s;
}

}  // namespace

std::string drrImagePath(const std::string& id) { return "images/" + safeId(id) + ".png"; }

Manifest scanVolumeFolder(const std::string& dir) {
  BIUD_CHECK(stdfs::is_directory(dir), IoError, "--input `{}`: not a folder", dir);
  Manifest m;
  m.path = dir;
  std::set<std::string> dicomDirs;
  std::vector<std::pair<std::string, std::string>> found;  // id, path
  for (auto it = stdfs::recursive_directory_iterator(dir, stdfs::directory_options::skip_permission_denied);
       it != stdfs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    const auto p = it->path();
    const std::string name = p.filename().string();
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (endsWith(lower, ".dcm")) {
      dicomDirs.insert(p.parent_path().string());
      continue;
    }
    const std::string stem = volumeStem(name);
    if (stem.empty() || endsWith(lower, ".raw")) continue;
    auto rel = stdfs::relative(p.parent_path(), dir).string();
    std::string id =
        (rel == "." || rel.empty()) ? name.substr(0, stem.size()) : rel + "/" + name.substr(0, stem.size());
    std::replace(id.begin(), id.end(), '/', '_');
    found.emplace_back(id, p.string());
  }
  for (const auto& d : dicomDirs) {
    auto rel = stdfs::relative(d, dir).string();
    std::string id = (rel == "." || rel.empty()) ? stdfs::path(dir).filename().string() : rel;
    std::replace(id.begin(), id.end(), '/', '_');
    found.emplace_back(id, d);
  }
  std::sort(found.begin(), found.end());
  std::set<std::string> ids;
  for (auto& [id, path] : found) {
    BIUD_CHECK(ids.insert(id).second, DataError, "--input `{}`: two volumes map to the id `{}` ({}); rename one", dir,
               id, path);
    ManifestItem it;
    it.id = id;
    it.images = {path};
    it.line = static_cast<int>(m.items.size()) + 1;
    m.items.push_back(std::move(it));
  }
  BIUD_CHECK(!m.items.empty(), DataError,
             "--input `{}`: no CT volume found (.nii, .nii.gz, .mha, .mhd, .nrrd, .nhdr files, or folders of "
             ".dcm files)",
             dir);
  return m;
}

DrrSummary runDrr(const Manifest& manifest, const DrrConfig& cfg, const DrrJobOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  BIUD_CHECK(!opt.out.empty(), ConfigError, "--out (the output folder) is required");
  const stdfs::path out(opt.out);
  fs::makeDirs(out / "images");
  DrrSummary sum;
  sum.total = manifest.items.size();
  sum.hash = drrHash(cfg);
  const std::string desc = describeDrr(cfg);

  // An existing output folder must have been made with the same parameters.
  const auto paramsFile = out / "drr.json";
  if (stdfs::exists(paramsFile)) {
    const nlohmann::json old =
        fs::readJsonFile(paramsFile, "DRR parameters of an output folder", "Delete it (and the images) to start over");
    const std::string oldHash = old.value("hash", "");
    BIUD_CHECK(oldHash == sum.hash, ConfigError,
               "output folder `{}` holds X-rays made with other parameters ({}; hash {}) than now ({}; hash {}). Use "
               "another --out folder, or delete `{}` to redo them",
               opt.out, old.value("description", "?"), oldHash, desc, sum.hash, opt.out);
  }
  fs::atomicWrite(paramsFile, nlohmann::json{{"hash", sum.hash}, {"description", desc}}.dump(2) + "\n");

  std::set<std::string> seen;
  for (const auto& it : manifest.items)
    BIUD_CHECK(seen.insert(drrImagePath(it.id)).second, DataError,
               "`{}` line {}: id `{}` maps to the image `{}` of another item; ids must differ in more than "
               "punctuation",
               manifest.path, it.line, it.id, drrImagePath(it.id));

  std::vector<size_t> todo;
  for (size_t i = 0; i < manifest.items.size(); ++i)
    if (!stdfs::exists(out / drrImagePath(manifest.items[i].id))) todo.push_back(i);
  sum.skipped = manifest.items.size() - todo.size();
  if (sum.skipped > 0) log::info("drr", "resuming: {} of {} X-rays already in `{}`", sum.skipped, sum.total, opt.out);

  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, todo.size()))));
  const bool syncEach = fs::syncEachFile();
  fs::setSyncEachFile(false);  // thousands of small files: one sync at the end

  std::mutex mu;
  std::vector<char> ok(manifest.items.size(), 1);  // 1 = has an X-ray (from an earlier run, or made now)
  for (size_t i : todo) ok[i] = 0;
  std::vector<nlohmann::json> failures;
  std::atomic<size_t> next{0};
  Progress progress("drr", todo.size(), "vol");
  if (!opt.progress) progress.logEverySeconds = 1e9;
  std::exception_ptr fatal;
  auto worker = [&] {
    try {
      for (;;) {
        if (app::stopRequested()) break;
        const size_t k = next.fetch_add(1);
        if (k >= todo.size()) break;
        const ManifestItem& it = manifest.items[todo[k]];
        std::string error;
        try {
          BIUD_CHECK(!it.images.empty(), DataError, "item `{}` has no image", it.id);
          const Image2D x = simulateXray(readItemVolume(it), cfg);  // with the manifest's overrides
          writeImage2D((out / drrImagePath(it.id)).string(), x, cfg.bits);
        } catch (const Error& e) {
          error = e.what();
        } catch (const std::bad_alloc&) {
          error = "out of memory while projecting";
        }
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) {
          ok[todo[k]] = 1;
          ++sum.done;
        } else {
          log::warn("drr", "item `{}` failed: {}", it.id, error);
          failures.push_back(
              {{"id", it.id}, {"image", it.images.empty() ? "" : it.images[0]}, {"line", it.line}, {"error", error}});
        }
        progress.advance(1, fmt::format("{} failed", failures.size()));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!fatal) fatal = std::current_exception();
      app::requestStop();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  progress.finish();
  fs::syncAll();
  fs::setSyncEachFile(syncEach);
  if (fatal) std::rethrow_exception(fatal);

  // The paired manifest: the CT manifest's columns, the X-ray as `image`, in manifest order.
  Manifest xm;
  xm.labelNames = manifest.labelNames;
  for (size_t i = 0; i < manifest.items.size(); ++i) {
    if (!ok[i]) continue;
    ManifestItem it = manifest.items[i];
    it.images = {drrImagePath(it.id)};
    xm.items.push_back(std::move(it));
  }
  writeManifestCsv((out / "manifest.csv").string(), xm);
  std::string fl;
  for (const auto& f : failures) fl += f.dump() + "\n";
  fs::atomicWrite(out / "failures.jsonl", fl);
  sum.failed = failures.size();
  sum.interrupted = app::stopRequested() && sum.done + sum.failed + sum.skipped < sum.total;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace biud::image
