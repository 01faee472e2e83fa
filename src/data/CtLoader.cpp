#include "biud/data/CtLoader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "OutOfMemory.h"
#include "biud/core/Error.h"
#include "biud/core/Rng.h"

namespace biud::data {

namespace {
SamplerOptions samplerOptions(const LoaderConfig& cfg, const CtLoaderOptions& opt) {
  SamplerOptions s;
  s.batchSize = cfg.batch_size;
  s.shuffle = cfg.shuffle;
  s.dropLast = cfg.drop_last;
  s.mode = cfg.sampler;
  s.seed = opt.seed;
  s.rank = opt.rank;
  s.world = opt.world;
  return s;
}
std::string shapeStr(const torch::Tensor& t) {
  std::string s;
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? "x" : "") + std::to_string(t.size(d));
  return s;
}
}  // namespace

CtLoader::CtLoader(std::shared_ptr<const CtDataset> dataset, LoaderConfig cfg, CtLoaderOptions opt)
    : ds_(std::move(dataset)),
      cfg_(std::move(cfg)),
      opt_(opt),
      sampler_(ds_->size(), groupIds(ds_->groups()), samplerOptions(cfg_, opt_)) {
  start(0, 0);
}

CtLoader::~CtLoader() { stop(); }

CtBatch CtLoader::makeBatch(const std::vector<std::int64_t>& indices) const {
  CtBatch b;
  std::vector<torch::Tensor> vols, labels;
  for (std::int64_t i : indices) {
    const std::uint64_t seed =
        opt_.augment ? deriveSeed(deriveSeed(deriveSeed(opt_.seed, "augment"), static_cast<std::uint64_t>(epoch_)),
                                  static_cast<std::uint64_t>(i)) |
                           1u  // never 0 (0 means "no augmentation")
                     : 0;
    CtSample s = ds_->get(i, seed);
    b.indices.push_back(i);
    b.ids.push_back(s.id);
    b.texts.push_back(std::move(s.text));
    b.groups.push_back(std::move(s.group));
    vols.push_back(s.volume);
    labels.push_back(s.labels);
  }
  for (size_t k = 1; k < vols.size(); ++k)
    BIUD_CHECK(vols[k].sizes() == vols[0].sizes(), DataError,
               "batch mixes volume shapes ({} for `{}` vs {} for `{}`); preprocess to one size (data.ct.size) or set "
               "data.augment.random_crop",
               shapeStr(vols[k]), b.ids[k], shapeStr(vols[0]), b.ids[0]);
  try {
    b.volume = torch::stack(vols);
    b.labels = torch::stack(labels);
  } catch (const std::exception& e) {
    if (!detail::isOutOfMemory(e)) throw;
    const double bytes = 4.0 * static_cast<double>(vols.size()) * static_cast<double>(vols[0].numel());
    BIUD_THROW(ConfigError,
               "out of memory stacking a batch of {} CTs of {} float32: it takes {}; lower data.loader.batch_size "
               "({}) or data.ct.size [{}] (data.loader.prefetch ({}) batches are kept ahead)",
               vols.size(), shapeStr(vols[0]), detail::bytesText(bytes), cfg_.batch_size,
               fmt::join(ds_->config().ct.size, ", "), cfg_.prefetch);
  }
  return b;
}

void CtLoader::work() {
  for (;;) {
    std::int64_t k;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stopping_ ||
               (claimed_ < static_cast<std::int64_t>(batches_.size()) && claimed_ < consumed_ + cfg_.prefetch);
      });
      if (stopping_) return;
      k = claimed_++;
    }
    CtBatch b;
    std::string err;
    try {
      b = makeBatch(batches_[static_cast<size_t>(k)]);
    } catch (const std::exception& e) {
      err = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (err.empty())
        ready_[k] = std::move(b);
      else
        errors_[k] = err;
    }
    cv_.notify_all();
  }
}

void CtLoader::start(std::int64_t epoch, std::int64_t from) {
  stop();
  epoch_ = epoch;
  batches_ = sampler_.epoch(epoch);
  BIUD_CHECK(from >= 0 && from <= static_cast<std::int64_t>(batches_.size()), ValueError,
             "loader: position {} beyond the {} batches of epoch {}", from, batches_.size(), epoch);
  consumed_ = claimed_ = from;
  ready_.clear();
  errors_.clear();
  stopping_ = false;
  for (int t = 0; t < cfg_.workers; ++t) workers_.emplace_back([this] { work(); });
}

void CtLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void CtLoader::setEpoch(std::int64_t e) { start(e, 0); }

CtBatch CtLoader::nextCycling() {
  CtBatch b;
  if (!next(b)) {
    setEpoch(epoch_ + 1);
    BIUD_CHECK(next(b), DataError, "the CT loader produced no batch in epoch {}", epoch_);
  }
  return b;
}

bool CtLoader::next(CtBatch& out) {
  if (consumed_ >= static_cast<std::int64_t>(batches_.size())) return false;
  if (workers_.empty()) {  // workers = 0: load inline
    out = makeBatch(batches_[static_cast<size_t>(consumed_)]);
    ++consumed_;
    return true;
  }
  std::unique_lock<std::mutex> lock(mu_);
  const std::int64_t k = consumed_;
  cv_.wait(lock, [&] { return ready_.count(k) || errors_.count(k); });
  if (errors_.count(k)) {
    const std::string e = errors_[k];
    BIUD_THROW(DataError, "loader: batch {} of epoch {}: {}", k, epoch_, e);
  }
  out = std::move(ready_[k]);
  ready_.erase(k);
  ++consumed_;
  lock.unlock();
  cv_.notify_all();
  return true;
}

std::map<std::string, std::int64_t> CtLoader::stateDict() const {
  return {{"epoch", epoch_},
          {"batch", consumed_},
          {"seed", static_cast<std::int64_t>(opt_.seed)},
          {"rank", opt_.rank},
          {"world", opt_.world},
          {"dataset_size", ds_->size()},
          {"batch_size", cfg_.batch_size}};
}

void CtLoader::loadStateDict(const std::map<std::string, std::int64_t>& s) {
  auto get = [&](const char* k) {
    auto f = s.find(k);
    BIUD_CHECK(f != s.end(), ValueError, "loader state: key `{}` missing", k);
    return f->second;
  };
  const auto mine = stateDict();
  for (const char* k : {"seed", "world", "dataset_size", "batch_size"})
    BIUD_CHECK(get(k) == mine.at(k), ConfigError,
               "loader state: `{}` was {} when saved but is {} now; resuming would not continue the same data order", k,
               get(k), mine.at(k));
  start(get("epoch"), get("batch"));
}

}  // namespace biud::data
