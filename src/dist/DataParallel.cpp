#include "biud/dist/DataParallel.h"

#include <map>
#include <tuple>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/core/Log.h"

namespace biud::dist {

namespace {
/// Broadcast tensors from rank 0, packed per (dtype, device) into one flat buffer each, so that
/// a model with hundreds of small tensors costs a handful of collectives.
void broadcastPacked(Communicator& comm, const std::vector<torch::Tensor>& tensors) {
  std::map<std::pair<int, std::string>, std::vector<torch::Tensor>> groups;
  std::vector<std::pair<int, std::string>> order;
  for (const auto& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(t);
  }
  torch::NoGradGuard ng;
  for (const auto& key : order) {
    auto& group = groups[key];
    std::vector<torch::Tensor> flat;
    for (auto& t : group) flat.push_back(t.detach().reshape(-1));
    torch::Tensor buf = torch::cat(flat);
    comm.broadcast(buf, 0);
    int64_t off = 0;
    for (auto& t : group) {
      t.detach().copy_(buf.narrow(0, off, t.numel()).view_as(t));
      off += t.numel();
    }
  }
}
}  // namespace

DataParallel::DataParallel(std::shared_ptr<Communicator> comm, std::vector<torch::Tensor> params,
                           std::vector<torch::Tensor> buffers, double bucketMb)
    : comm_(std::move(comm)), params_(std::move(params)), buffers_(std::move(buffers)), bucketMb_(bucketMb) {
  BIUD_CHECK(comm_ != nullptr, ValueError,
             "DataParallel needs a communicator (dist::makeSingleProcess() for one process)");
  BIUD_CHECK(bucketMb > 0, ConfigError, "distributed.bucket_mb must be > 0 (got {})", bucketMb);
  if (!comm_->distributed()) return;
  invWorld_ = torch::scalar_tensor(1.0 / comm_->worldSize(), torch::kDouble);
  broadcastState();

  const int n = static_cast<int>(params_.size());
  readyParam_.assign(n, 0);
  std::vector<int> order;
  // Reverse registration order: the last layers' gradients come first in backward.
  for (int i = n - 1; i >= 0; --i) order.push_back(i);
  buildBuckets(order);
  for (int i = 0; i < n; ++i) {
    if (bucketOf_[i] < 0) continue;
    hookHandles_.emplace_back(i, params_[i].register_hook([this, i](const torch::Tensor& g) { onGrad(i, g); }));
  }
  log::debug("dist", "DataParallel: {} parameters in {} buckets of <= {} MiB", n, buckets_.size(), bucketMb);
}

void DataParallel::buildBuckets(const std::vector<int>& order) {
  const int n = static_cast<int>(params_.size());
  buckets_.clear();
  bucketOf_.assign(n, -1);
  slotOf_.assign(n, -1);
  const auto cap = static_cast<int64_t>(bucketMb_ * 1024.0 * 1024.0);
  std::map<std::pair<int, std::string>, int> open;  // (dtype, device) -> bucket being filled
  std::vector<int64_t> bytes;
  for (int i : order) {
    const auto& p = params_[i];
    if (!p.defined() || !p.requires_grad()) continue;
    auto key = std::make_pair(static_cast<int>(p.scalar_type()), p.device().str());
    const int64_t sz = p.numel() * static_cast<int64_t>(p.element_size());
    auto it = open.find(key);
    if (it == open.end() || (bytes[it->second] > 0 && bytes[it->second] + sz > cap)) {
      buckets_.emplace_back();
      bytes.push_back(0);
      open[key] = static_cast<int>(buckets_.size()) - 1;
      it = open.find(key);
    }
    Bucket& b = buckets_[it->second];
    bucketOf_[i] = it->second;
    slotOf_[i] = static_cast<int>(b.slots.size());
    b.slots.push_back({i, b.gradNumel, p.numel()});
    b.gradNumel += p.numel();
    bytes[it->second] += sz;
  }
  for (auto& b : buckets_) {
    const auto& p = params_[b.slots.front().param];
    const auto opts = p.options().device(comm_->commDevice(p.device())).requires_grad(false);
    b.flat = torch::zeros({b.gradNumel + static_cast<int64_t>(b.slots.size())}, opts);
  }
}

DataParallel::~DataParallel() {
  for (const auto& [i, handle] : hookHandles_) {
    try {
      params_[i].remove_hook(handle);
    } catch (...) {
    }
  }
}

void DataParallel::setSync(bool sync) {
  std::lock_guard<std::mutex> lk(mu_);
  sync_ = sync;
}

void DataParallel::broadcastState() {
  if (!comm_->distributed()) return;
  std::vector<torch::Tensor> all = params_;
  all.insert(all.end(), buffers_.begin(), buffers_.end());
  broadcastPacked(*comm_, all);
}

std::vector<std::vector<int>> DataParallel::bucketLayout() const {
  std::vector<std::vector<int>> out;
  for (const auto& b : buckets_) {
    out.emplace_back();
    for (const auto& s : b.slots) out.back().push_back(s.param);
  }
  return out;
}

void DataParallel::onGrad(int i, const torch::Tensor& g) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!sync_) return;
  BIUD_CHECK(!readyParam_[i], ValueError,
             "DataParallel: parameter #{} received a second gradient before finalize(). Call backward once per "
             "synchronised step, or setSync(false) for gradient-accumulation micro-steps",
             i);
  readyParam_[i] = 1;
  Bucket& b = buckets_[bucketOf_[i]];
  const Slot& s = b.slots[slotOf_[i]];
  torch::NoGradGuard ng;
  auto dst = b.flat.narrow(0, s.offset, s.numel);
  // The hook runs before autograd adds `g` to .grad: what this rank contributes is the sum,
  // divided by the world size on the way in (one pass; finalize() then only waits).
  const torch::Tensor& existing = params_[i].grad();
  if (existing.defined()) {
    // Last step's average, still sharing this bucket's memory (finalize()): autograd is about to
    // add `g` into .grad, which must not be the bucket being reduced.
    if (existing.is_alias_of(b.flat)) params_[i].mutable_grad() = existing.clone();
    at::add_out(dst, params_[i].grad().reshape(-1), g.reshape(-1).to(dst.device()));
    dst.mul_(invWorld());
  } else {
    at::mul_out(dst, g.reshape(-1), invWorld());
  }
  b.flat.narrow(0, b.gradNumel + slotOf_[i], 1).fill_(1);
  ++b.ready;
  while (nextLaunch_ < static_cast<int>(buckets_.size()) &&
         buckets_[nextLaunch_].ready == static_cast<int>(buckets_[nextLaunch_].slots.size())) {
    launch(buckets_[nextLaunch_++]);
    ++overlapped_;
  }
}

void DataParallel::launch(Bucket& b) {
  b.work = comm_->allreduceAsync({b.flat});
  b.launched = true;
}

void DataParallel::fillMissing(Bucket& b) {
  torch::NoGradGuard ng;
  for (size_t k = 0; k < b.slots.size(); ++k) {
    const Slot& s = b.slots[k];
    if (readyParam_[s.param]) continue;
    auto dst = b.flat.narrow(0, s.offset, s.numel);
    auto used = b.flat.narrow(0, b.gradNumel + static_cast<int64_t>(k), 1);
    const torch::Tensor& existing = params_[s.param].grad();
    if (existing.defined()) {
      if (existing.is_alias_of(b.flat) && existing.data_ptr() == dst.data_ptr())
        dst.mul_(invWorld());  // .grad is this slot already (shared by finalize())
      else
        at::mul_out(dst, existing.reshape(-1).to(dst.device()), invWorld());
      used.fill_(1);
    } else {
      dst.zero_();
      used.fill_(0);
    }
  }
}

void DataParallel::finalize() {
  if (!comm_->distributed()) return;
  std::lock_guard<std::mutex> lk(mu_);
  for (int k = nextLaunch_; k < static_cast<int>(buckets_.size()); ++k) {
    fillMissing(buckets_[k]);
    launch(buckets_[k]);
  }
  torch::NoGradGuard ng;
  std::vector<int> unused;  // parameters no rank had a gradient for (identical on all ranks)
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
    auto counts = b.flat.narrow(0, b.gradNumel, static_cast<int64_t>(b.slots.size())).to(torch::kCPU, torch::kDouble);
    auto grads = b.flat.narrow(0, 0, b.gradNumel);  // already divided by the world size on the way in
    const double* used = counts.data_ptr<double>();
    for (size_t k = 0; k < b.slots.size(); ++k) {
      const Slot& s = b.slots[k];
      auto& p = params_[s.param];
      if (used[k] <= 0) {  // no rank has a gradient: keep .grad undefined (as without DataParallel)
        unused.push_back(s.param);
        continue;
      }
      auto avg = grads.narrow(0, s.offset, s.numel).view(p.sizes());
      if (avg.device() == p.device() && p.is_contiguous()) {
        // .grad shares the bucket's memory (DDP's gradient_as_bucket_view): no copy. It is made
        // with set_, not as an autograd view, because LibTorch's Optimizer::zero_grad() calls
        // detach_(), which a view refuses. The next backward writes the bucket again, so a .grad
        // kept across steps is cloned out first (onGrad); the trainer sets gradients to none each
        // step. A channels-last parameter keeps a copy in its own layout (fused optimizers read
        // gradient and parameter in the same memory order).
        auto g = torch::empty({0}, grads.options());
        g.set_(grads.storage(), grads.storage_offset() + s.offset, p.sizes(), p.strides());
        p.mutable_grad() = g;
      } else if (p.grad().defined()) {
        p.mutable_grad().copy_(avg);
      } else {
        p.mutable_grad() = avg.to(p.device()).clone();
      }
    }
    b.ready = 0;
    b.launched = false;
  }
  std::fill(readyParam_.begin(), readyParam_.end(), 0);
  nextLaunch_ = 0;
  lastOverlapped_ = overlapped_;
  overlapped_ = 0;
  // After the first step, move the parameters that no rank used to the last buckets, so that
  // they no longer hold back the launch of the others during backward (like DDP's bucket
  // rebuild). Every rank sees the same reduced counters, hence builds the same buckets. If such
  // a parameter is used later, it is still reduced correctly (its bucket launches in finalize()).
  if (!rebuilt_) {
    rebuilt_ = true;
    if (!unused.empty()) {
      std::vector<char> isUnused(params_.size(), 0);
      for (int i : unused) isUnused[i] = 1;
      std::vector<int> order;
      for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i)
        if (!isUnused[i]) order.push_back(i);
      for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i)
        if (isUnused[i]) order.push_back(i);
      buildBuckets(order);
      log::debug("dist", "DataParallel: {} parameter(s) without gradient moved to the last bucket(s)", unused.size());
    }
  }
}

}  // namespace biud::dist
