#include "biud/dist/SyncBatchNorm.h"

#include "biud/models/SyncBatchNorm.h"

namespace biud::dist {

namespace {

/// A Communicator seen as the group of a synchronised BatchNorm. The communicator already stages
/// tensors through its backend's device (the CPU for Gloo) and back.
class CommunicatorGroup : public models::BatchNormGroup {
 public:
  explicit CommunicatorGroup(std::shared_ptr<Communicator> comm) : comm_(std::move(comm)) {}
  int worldSize() const override { return comm_->worldSize(); }
  torch::Tensor allGather(const torch::Tensor& t) override { return comm_->allGather(t); }
  void allreduceSum(torch::Tensor& t) override { comm_->allreduce(t, ReduceOp::Sum); }

 private:
  std::shared_ptr<Communicator> comm_;
};

}  // namespace

int syncBatchNorm(torch::nn::Module& root, const std::shared_ptr<Communicator>& comm) {
  if (!comm || !comm->distributed()) return 0;
  return models::setBatchNormGroup(root, std::make_shared<CommunicatorGroup>(comm));
}

}  // namespace biud::dist
