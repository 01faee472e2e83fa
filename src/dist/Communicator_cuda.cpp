// NCCL backend (built only with CUDA: files named *_cuda.cpp).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "C10dCommunicator.h"

namespace biud::dist::detail {

c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                                  std::chrono::milliseconds timeout, int localRank) {
  (void)localRank;  // the caller selected the device (runtime::selectDevice); NCCL follows the tensors
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
}

}  // namespace biud::dist::detail
