#include "biud/data/XraySet.h"

#include <atomic>
#include <cmath>
#include <thread>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"
#include "biud/core/Progress.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"

namespace biud::data {

XraySet loadXraySet(const image::Manifest& manifest, const std::string& split, const DataConfig& cfg, int threads) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < manifest.items.size(); ++i)
    if (split.empty() || manifest.items[i].split == split) idx.push_back(i);
  BIUD_CHECK(!idx.empty(), DataError, "`{}` has no items in split `{}`", manifest.path, split);
  const int s = cfg.xray.size;
  const auto n = static_cast<std::int64_t>(idx.size());
  auto images = torch::zeros({n, 1, s, s}, torch::kFloat32);
  std::vector<char> ok(idx.size(), 0);
  std::vector<std::string> errors(idx.size());
  std::atomic<size_t> next{0};
  std::atomic<std::uint64_t> done{0};
  const int nt = std::max(1, threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  Progress bar("load X-rays", idx.size(), "img");
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < idx.size();) {
      try {
        const auto& it = manifest.items[idx[k]];
        BIUD_CHECK(!it.images.empty(), DataError, "no image");
        auto img = image::preprocessXray(image::readImage2D(it.images.front()), cfg.xray);
        std::memcpy(images[static_cast<std::int64_t>(k)].data_ptr<float>(), img.data.data(), sizeof(float) * s * s);
        ok[k] = 1;
      } catch (const std::exception& e) {
        errors[k] = e.what();
      }
      ++done;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < nt; ++t) pool.emplace_back(work);
  while (done.load() < idx.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    bar.set(done.load());
  }
  for (auto& t : pool) t.join();
  bar.finish();

  XraySet out;
  out.labelNames = manifest.labelNames;
  std::vector<std::int64_t> keep;
  int failed = 0;
  for (size_t k = 0; k < idx.size(); ++k) {
    const auto& it = manifest.items[idx[k]];
    if (!ok[k]) {
      if (failed++ < 5) log::warn("data", "skipping X-ray `{}` ({}): {}", it.id, manifest.path, errors[k]);
      continue;
    }
    keep.push_back(static_cast<std::int64_t>(k));
    out.ids.push_back(it.id);
    out.texts.push_back(it.text(cfg.report_sections));
    out.groups.push_back(it.group());
  }
  if (failed) log::warn("data", "{} of {} X-rays could not be read and were skipped", failed, idx.size());
  BIUD_CHECK(!keep.empty(), DataError, "no readable X-ray in `{}` (split `{}`)", manifest.path, split);
  auto sel = torch::tensor(keep);
  out.images = images.index_select(0, sel);
  const auto l = static_cast<std::int64_t>(manifest.labelNames.size());
  out.labels = torch::full({static_cast<std::int64_t>(keep.size()), l}, NAN);
  for (size_t r = 0; r < keep.size(); ++r) {
    const auto& it = manifest.items[idx[static_cast<size_t>(keep[r])]];
    for (std::int64_t j = 0; j < l && j < static_cast<std::int64_t>(it.labels.size()); ++j)
      out.labels[static_cast<std::int64_t>(r)][j] = it.labels[static_cast<size_t>(j)];
  }
  log::info("data", "{} X-rays of split `{}` from {} ({}x{} px)", out.size(), split.empty() ? "all" : split,
            manifest.path, s, s);
  return out;
}

}  // namespace biud::data
