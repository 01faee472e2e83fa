#include "biud/dist/Contrastive.h"

#include <torch/torch.h>

#include "biud/core/Error.h"

namespace biud::dist {

torch::Tensor allGatherWithGrad(const std::shared_ptr<Communicator>& comm, const torch::Tensor& local) {
  BIUD_CHECK(comm != nullptr, ValueError, "allGatherWithGrad: no communicator");
  if (!comm->distributed()) return local;
  const int64_t rows = local.size(0);
  torch::Tensor gathered = comm->allGather(local.detach());
  if (!local.requires_grad() || !torch::GradMode::is_enabled()) return gathered;
  // out = [g_0 .. local .. g_{W-1}] with the other ranks' rows as constants. Its gradient is
  // summed over all ranks before it reaches `local` (the hook below), so `local` receives
  // sum_q dL_q/d(rows of this rank): open_clip's gather_with_grad backward.
  std::vector<torch::Tensor> parts;
  if (comm->rank() > 0) parts.push_back(gathered.narrow(0, 0, comm->rank() * rows));
  parts.push_back(local);
  const int64_t after = (comm->worldSize() - comm->rank() - 1) * rows;
  if (after > 0) parts.push_back(gathered.narrow(0, (comm->rank() + 1) * rows, after));
  torch::Tensor out = torch::cat(parts, 0);
  std::shared_ptr<Communicator> c = comm;
  out.register_hook([c](const torch::Tensor& g) {
    torch::Tensor s = g.contiguous().clone();
    c->allreduce(s, ReduceOp::Sum);
    return s;
  });
  return out;
}

torch::Tensor allGatherLocalGrad(const std::shared_ptr<Communicator>& comm, const torch::Tensor& local) {
  BIUD_CHECK(comm != nullptr, ValueError, "allGatherLocalGrad: no communicator");
  if (!comm->distributed()) return local;
  const int64_t rows = local.size(0);
  torch::Tensor gathered = comm->allGather(local.detach());
  std::vector<torch::Tensor> parts;
  if (comm->rank() > 0) parts.push_back(gathered.narrow(0, 0, comm->rank() * rows));
  parts.push_back(local);
  const int64_t after = (comm->worldSize() - comm->rank() - 1) * rows;
  if (after > 0) parts.push_back(gathered.narrow(0, (comm->rank() + 1) * rows, after));
  return torch::cat(parts, 0);
}

torch::Tensor globalRowIndices(const Communicator& comm, int64_t localRows, const c10::Device& device) {
  BIUD_CHECK(localRows >= 0, ValueError, "globalRowIndices: negative row count {}", localRows);
  return torch::arange(localRows, torch::TensorOptions().dtype(torch::kLong).device(device)) +
         static_cast<int64_t>(comm.rank()) * localRows;
}

}  // namespace biud::dist
