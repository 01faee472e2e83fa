// biud-bench: micro-benchmarks of biud's own hot paths (Google Benchmark). Not a test: numbers
// for docs/ and issues, run side by side with the variants they compare.
//
//   biud-bench [--benchmark_filter=loader] [--benchmark_repetitions=5] [Google Benchmark flags]
//
// loader/*: a training item read from the preprocessed cache as CtDataset::get does it (mmap,
// int16 -> float, augmentation), at the CT-RATE recipe's size (224 x 224 x 96), with the record's
// crc32 check off, once per process (the default; steady state: every item already checked) and
// on every read (= the first epoch's cost of `once`). Items live in the page cache.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "biud/config/DataConfig.h"
#include "biud/data/CtDataset.h"
#include "biud/image/CtCache.h"
#include "biud/image/Manifest.h"
#include "biud/image/Preprocess.h"

namespace {

namespace stdfs = std::filesystem;
using namespace biud;

constexpr int kItems = 16;

/// A cache of kItems volumes at the CT-RATE recipe's size in a temporary folder (removed at exit).
struct LoaderFixture {
  DataConfig cfg;
  stdfs::path dir;
  std::shared_ptr<image::Manifest> manifest = std::make_shared<image::Manifest>();
  std::unique_ptr<data::CtDataset> dataset;

  LoaderFixture() {
    cfg.ct.size = {224, 224, 96};
    cfg.augment.flip = true;
    cfg.augment.intensity_shift = 0.05;
    dir = stdfs::temp_directory_path() / ("biud-bench-loader-" + std::to_string(::getpid()));
    stdfs::create_directories(dir);
    const std::string hash = image::preprocessHash(cfg.ct);
    std::vector<image::CacheEntry> entries;
    {
      image::CacheWriter w(dir.string(), hash, image::CacheDtype::Int16, image::int16Quant(cfg.ct), 1ull << 30,
                           "shard-b");
      image::Volume v({224, 224, 96}, {1.6, 1.6, 3.0}, -1.0f);
      for (int n = 0; n < kItems; ++n) {
        for (size_t i = 0; i < v.data.size(); ++i)
          v.data[i] = std::sin(0.001f * static_cast<float>(i) + static_cast<float>(n)) * 0.9f;
        entries.push_back(w.write("ct" + std::to_string(n), v));
        image::ManifestItem it;
        it.id = "ct" + std::to_string(n);
        it.report = "r";
        manifest->items.push_back(it);
      }
    }
    image::writeCacheIndex(dir.string(), hash, image::describePreprocess(cfg.ct), entries);
    std::vector<size_t> idx(kItems);
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    dataset = std::make_unique<data::CtDataset>(manifest, idx, cfg, dir.string());
  }
  ~LoaderFixture() {
    std::error_code ec;
    stdfs::remove_all(dir, ec);
  }
};

LoaderFixture& fixture() {
  static LoaderFixture f;
  return f;
}

void loaderGet(benchmark::State& state, image::Verify v) {
  auto& f = fixture();
  image::setDefaultVerify(v);
  std::int64_t i = 0;
  for (auto _ : state) {
    auto s = f.dataset->get(i % kItems, static_cast<std::uint64_t>(i + 1));
    benchmark::DoNotOptimize(s.volume.data_ptr<float>());
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * 224 * 224 * 96 * 2);
  image::setDefaultVerify(image::Verify::Once);
}

void BM_LoaderVerifyOff(benchmark::State& s) { loaderGet(s, image::Verify::Off); }
void BM_LoaderVerifyOnce(benchmark::State& s) { loaderGet(s, image::Verify::Once); }
void BM_LoaderVerifyAlways(benchmark::State& s) { loaderGet(s, image::Verify::Always); }
BENCHMARK(BM_LoaderVerifyOff)->Name("loader/verify:off")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoaderVerifyOnce)->Name("loader/verify:once")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoaderVerifyAlways)->Name("loader/verify:always")->Unit(benchmark::kMillisecond)->UseRealTime();

/// The crc32 alone over one record (zlib).
void BM_Crc32(benchmark::State& state) {
  std::vector<char> buf(224 * 224 * 96 * 2, 7);
  for (auto _ : state) benchmark::DoNotOptimize(image::crc32Of(buf.data(), buf.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(buf.size()));
}
BENCHMARK(BM_Crc32)->Name("loader/crc32_only")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // one loader worker's view
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
