// Samplers and the threaded loader: hand-worked batching, determinism, disjoint equal shards,
// patient-unique batches, cache layout in tensors, augmentation, exact resume.
#include <algorithm>
#include <cmath>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/data/CtDataset.h"
#include "biud/data/CtLoader.h"
#include "biud/data/Sampler.h"
#include "biud/image/CtCache.h"
#include "biud/image/Preprocess.h"
#include "biud/image/PreprocessJob.h"
#include "biud/image/VolumeIO.h"
#include "common/TestUtil.h"

namespace biud::test {
namespace {

using data::CtBatch;

TEST(Sampler, EpochOrderIsADeterministicPermutation) {
  auto a = data::epochOrder(50, 7, 0, true), b = data::epochOrder(50, 7, 0, true);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, data::epochOrder(50, 7, 1, true));
  EXPECT_NE(a, data::epochOrder(50, 8, 0, true));
  auto s = a;
  std::sort(s.begin(), s.end());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s[static_cast<size_t>(i)], i);
  EXPECT_EQ(data::epochOrder(4, 7, 3, false), (std::vector<std::int64_t>{0, 1, 2, 3}));
}

TEST(Sampler, UniqueGroupBatchesByHand) {
  const std::vector<std::int64_t> order{0, 1, 2, 3, 4, 5}, groups{0, 0, 1, 1, 2, 2};
  // [0 (g0), 1 waits (g0), 2 (g1)], [1, 3], [4, 5 waits] -> incomplete.
  EXPECT_EQ(data::makeBatches(order, 2, true, &groups), (std::vector<std::vector<std::int64_t>>{{0, 2}, {1, 3}}));
  EXPECT_EQ(data::makeBatches(order, 2, false, &groups),
            (std::vector<std::vector<std::int64_t>>{{0, 2}, {1, 3}, {4}, {5}}));
  EXPECT_EQ(data::makeBatches(order, 4, false, nullptr),
            (std::vector<std::vector<std::int64_t>>{{0, 1, 2, 3}, {4, 5}}));
}

TEST(Sampler, DistributedShardsAreDisjointAndEqual) {
  const std::int64_t n = 103;
  std::vector<std::int64_t> groups(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) groups[static_cast<size_t>(i)] = (i * 7919) % 37;  // ~3 items per group
  for (const char* mode : {"random", "unique_patient"}) {
    SCOPED_TRACE(mode);
    std::set<std::int64_t> seen;
    size_t count = 0, batches = 0;
    for (int rank = 0; rank < 3; ++rank) {
      data::SamplerOptions o;
      o.batchSize = 4;
      o.mode = mode;
      o.seed = 11;
      o.rank = rank;
      o.world = 3;
      auto e = data::BatchSampler(n, groups, o).epoch(2);
      if (rank == 0) batches = e.size();
      EXPECT_EQ(e.size(), batches);
      for (const auto& b : e) {
        EXPECT_EQ(b.size(), 4u);
        for (auto i : b) {
          EXPECT_TRUE(seen.insert(i).second) << "item " << i << " on two ranks";
          ++count;
        }
      }
    }
    EXPECT_GE(batches, 7u);  // 103 / 12 = 8 global batches at most
    EXPECT_EQ(count, batches * 12);
  }
  // Global batches of the unique sampler hold each group once across all ranks.
  data::SamplerOptions o;
  o.batchSize = 4;
  o.world = 3;
  o.seed = 11;
  std::vector<std::vector<std::vector<std::int64_t>>> per(3);
  for (int r = 0; r < 3; ++r) {
    o.rank = r;
    per[static_cast<size_t>(r)] = data::BatchSampler(n, groups, o).epoch(0);
  }
  for (size_t b = 0; b < per[0].size(); ++b) {
    std::set<std::int64_t> g;
    for (int r = 0; r < 3; ++r)
      for (auto i : per[static_cast<size_t>(r)][b]) EXPECT_TRUE(g.insert(groups[static_cast<size_t>(i)]).second);
  }
}

/// A cache of `n` small volumes (value = item + voxel / 1000) and its manifest; patients
/// shared by pairs of items.
struct Fixture {
  TempDir dir{"loader"};
  std::shared_ptr<image::Manifest> manifest = std::make_shared<image::Manifest>();
  DataConfig cfg;
  explicit Fixture(int n) {
    cfg.ct.size = {6, 5, 4};
    const std::string hash = image::preprocessHash(cfg.ct);
    image::CacheWriter w(dir.str(), hash, image::CacheDtype::Float16, 1.0f, 1 << 20, "shard-t");
    std::vector<image::CacheEntry> es;
    manifest->path = "memory";
    manifest->labelNames = {"a"};
    for (int i = 0; i < n; ++i) {
      image::Volume v({6, 5, 4}, {1.5, 1.5, 3.0});
      for (size_t k = 0; k < v.data.size(); ++k)
        v.data[k] = static_cast<float>(i) * 0.01f + static_cast<float>(k) / 256.0f;
      image::ManifestItem it;
      it.id = "v" + std::to_string(i);
      it.images = {"unused"};
      it.patient = "p" + std::to_string(i / 2);
      it.findings = "finding " + std::to_string(i);
      it.labels = {static_cast<float>(i % 2)};
      manifest->items.push_back(it);
      es.push_back(w.write(it.id, v));
    }
    w.close();
    image::writeCacheIndex(dir.str(), hash, image::describePreprocess(cfg.ct), es);
  }
  std::shared_ptr<data::CtDataset> dataset() const {
    return std::make_shared<data::CtDataset>(manifest, manifest->indicesOf(""), cfg, dir.str());
  }
};

std::vector<CtBatch> drain(data::CtLoader& l) {
  std::vector<CtBatch> out;
  CtBatch b;
  while (l.next(b)) out.push_back(b);
  return out;
}

void expectSameBatches(const std::vector<CtBatch>& a, const std::vector<CtBatch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].volume, b[i].volume)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels)) << "batch " << i;
  }
}

TEST(Loader, DatasetLayoutMatchesCache) {
  Fixture f(3);
  auto ds = f.dataset();
  image::CacheReader r(f.dir.str());
  auto s = ds->get(2);
  image::Volume v = r.read("v2");
  ASSERT_EQ(s.volume.sizes(), (std::vector<std::int64_t>{1, 4, 5, 6}));
  auto acc = s.volume.accessor<float, 4>();
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 5; ++j)
      for (int i = 0; i < 6; ++i) ASSERT_EQ(acc[0][k][j][i], v.at(i, j, k));
  EXPECT_EQ(s.text, "finding 2");
  EXPECT_EQ(s.labels.item<float>(), 0.0f);
  // Other preprocessing parameters: refused.
  DataConfig other = f.cfg;
  other.ct.spacing = {1, 1, 1};
  EXPECT_THROW(data::CtDataset(f.manifest, f.manifest->indicesOf(""), other, f.dir.str()), ConfigError);
}

TEST(Loader, AugmentationIsAWindowFlipAndAffine) {
  auto vol = torch::arange(4 * 5 * 6, torch::kFloat32).reshape({1, 4, 5, 6});
  AugmentConfig a;
  a.random_crop = {3, 2, 2};  // x, y, z
  a.flip = true;
  a.intensity_scale = 0.2;
  a.intensity_shift = 0.1;
  int flips = 0;
  for (std::uint64_t seed = 1; seed < 40; ++seed) {
    auto out = data::augmentVolume(vol, a, seed);
    ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{1, 2, 2, 3}));
    EXPECT_TRUE(torch::equal(out, data::augmentVolume(vol, a, seed)));
    // Undo the affine with the two extreme values of the first row, then find the window.
    bool found = false;
    for (int z = 0; z <= 2 && !found; ++z)
      for (int y = 0; y <= 3 && !found; ++y)
        for (int x = 0; x <= 3 && !found; ++x)
          for (int fl = 0; fl < 2 && !found; ++fl) {
            auto w = vol.narrow(1, z, 2).narrow(2, y, 2).narrow(3, x, 3);
            if (fl) w = w.flip({3});
            // out = w * s + t: solve with two entries, check all.
            const double w0 = w.flatten()[0].item<double>(), w1 = w.flatten()[1].item<double>();
            const double o0 = out.flatten()[0].item<double>(), o1 = out.flatten()[1].item<double>();
            const double s = (o1 - o0) / (w1 - w0), t = o0 - s * w0;
            if (std::fabs(s) < 0.79 || std::fabs(s) > 1.21 || std::fabs(t) > 0.11) continue;
            if (torch::allclose(out, w * s + t, 1e-5, 1e-4)) {
              found = true;
              flips += fl;
            }
          }
    EXPECT_TRUE(found) << "seed " << seed;
  }
  EXPECT_GT(flips, 5);
  EXPECT_LT(flips, 34);
}

TEST(Loader, DeterministicAcrossThreadsAndUniquePatients) {
  Fixture f(20);
  auto ds = f.dataset();
  LoaderConfig lc;
  lc.batch_size = 3;
  lc.workers = 0;
  f.cfg.augment.flip = true;
  f.cfg.augment.intensity_shift = 0.05;
  auto dsAug = f.dataset();
  data::CtLoaderOptions o;
  o.seed = 5;
  data::CtLoader inline0(dsAug, lc, o);
  lc.workers = 3;
  lc.prefetch = 2;
  data::CtLoader threaded(dsAug, lc, o);
  auto a = drain(inline0), b = drain(threaded);
  expectSameBatches(a, b);
  EXPECT_EQ(a.size(), 6u);  // 20 items, pairs share a patient: 6 full batches of 3
  for (const auto& batch : a) {
    std::set<std::string> g(batch.groups.begin(), batch.groups.end());
    EXPECT_EQ(g.size(), batch.groups.size()) << "two items of one patient in a batch";
    EXPECT_EQ(batch.volume.sizes(), (std::vector<std::int64_t>{3, 1, 4, 5, 6}));
  }
  // Next epoch: another order.
  threaded.setEpoch(1);
  auto c = drain(threaded);
  ASSERT_EQ(c.size(), a.size());
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs = differs || a[i].ids != c[i].ids;
  EXPECT_TRUE(differs);
}

TEST(Loader, ExactResumeFromState) {
  Fixture f(20);
  f.cfg.augment.flip = true;
  f.cfg.augment.intensity_scale = 0.1;
  auto ds = f.dataset();
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.workers = 2;
  lc.sampler = "random";
  data::CtLoaderOptions o;
  o.seed = 99;
  data::CtLoader full(ds, lc, o);
  full.setEpoch(3);
  auto all = drain(full);
  ASSERT_EQ(all.size(), 10u);

  data::CtLoader first(ds, lc, o);
  first.setEpoch(3);
  CtBatch b;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(first.next(b));
  const auto state = first.stateDict();
  EXPECT_EQ(state.at("epoch"), 3);
  EXPECT_EQ(state.at("batch"), 4);

  data::CtLoader resumed(ds, lc, o);
  resumed.loadStateDict(state);
  auto rest = drain(resumed);
  expectSameBatches(rest, std::vector<CtBatch>(all.begin() + 4, all.end()));

  // A state saved with another seed or world size is refused.
  auto bad = state;
  bad["seed"] = 1;
  EXPECT_THROW(resumed.loadStateDict(bad), ConfigError);
}

}  // namespace
}  // namespace biud::test

namespace biud::test {
namespace {

TEST(Loader, RawFilesGiveTheCachedVolumes) {
  TempDir t("raw");
  auto m = std::make_shared<image::Manifest>();
  m->path = (t / "m.csv").string();
  for (int n = 0; n < 2; ++n) {
    image::Volume v({30, 26, 12}, {0.9, 1.1, 2.5}, -1000.0f);
    for (int k = 2; k < 10; ++k)
      for (int j = 3; j < 22; ++j)
        for (int i = 4; i < 26; ++i) v.at(i, j, k) = static_cast<float>((i * 13 + j * 7 + k * 3 + n * 50) % 300 - 100);
    v.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};  // RAS-like storage: canonicalised on read
    const std::string p = (t / ("v" + std::to_string(n) + ".nii.gz")).string();
    image::writeVolume(p, v);
    image::ManifestItem it;
    it.id = "v" + std::to_string(n);
    it.images = {p};
    m->items.push_back(it);
  }
  DataConfig cfg;
  cfg.ct.size = {20, 20, 8};
  cfg.ct.crop = "body";
  image::PreprocessJobOptions po;
  po.out = (t / "cache").string();
  po.threads = 2;
  po.progress = false;
  const auto sum = image::runPreprocess(*m, cfg.ct, po);
  ASSERT_EQ(sum.done, 2u);
  data::CtDataset raw(m, m->indicesOf(""), cfg, ""), cached(m, m->indicesOf(""), cfg, po.out);
  EXPECT_FALSE(raw.cached());
  EXPECT_TRUE(cached.cached());
  for (int i = 0; i < 2; ++i) {
    auto a = raw.get(i), b = cached.get(i);
    ASSERT_EQ(a.volume.sizes(), (std::vector<std::int64_t>{1, 8, 20, 20}));
    EXPECT_LE((a.volume - b.volume).abs().max().item<float>(), 0.5f / image::int16Quant(cfg.ct) + 1e-6f);
  }
}

}  // namespace
}  // namespace biud::test
