#include "biud/dist/GlobalBatch.h"

#include <algorithm>

#include <torch/torch.h>

#include "biud/dist/Contrastive.h"

namespace biud::dist {

GlobalBatch::GlobalBatch(std::shared_ptr<Communicator> comm, bool gatherWithGrad)
    : comm_(std::move(comm)), gatherWithGrad_(gatherWithGrad) {}

torch::Tensor GlobalBatch::withGrad(const torch::Tensor& local) const {
  if (!distributed()) return {};
  return gatherWithGrad_ ? allGatherWithGrad(comm_, local) : allGatherLocalGrad(comm_, local);
}

torch::Tensor GlobalBatch::constant(const torch::Tensor& local) const {
  if (!distributed()) return {};
  return comm_->allGather(local.detach());
}

torch::Tensor GlobalBatch::allRows(const torch::Tensor& local) const {
  if (!distributed()) return local;
  return comm_->allGather(local.detach());
}

torch::Tensor GlobalBatch::globalMean(const torch::Tensor& localMean, double localCount) const {
  if (!distributed()) return localMean;
  auto n = torch::full({1}, localCount, torch::kFloat64);
  comm_->allreduce(n, ReduceOp::Sum);
  // localMean = sum_here / max(count_here, 1); DataParallel averages over `world` ranks, so
  // world * sum_here / global count per rank averages to sum_all / global count.
  const double scale = world() * std::max(localCount, 1.0) / std::max(n.item<double>(), 1.0);
  return localMean * scale;
}

torch::Tensor GlobalBatch::globalMean(const torch::Tensor& localMean, const torch::Tensor& localCount) const {
  if (!distributed()) return localMean;
  return globalMean(localMean, localCount.item<double>());
}

}  // namespace biud::dist
