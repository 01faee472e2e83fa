#include "biud/dist/SyncBatchNorm.h"

#include "biud/models/SyncBatchNorm.h"

namespace biud::dist {

namespace {

/// A Communicator seen as the group of a synchronised BatchNorm: tensors travel through the
/// backend's device (the CPU for Gloo) and come back where they were.
class CommunicatorGroup : public models::BatchNormGroup {
 public:
  explicit CommunicatorGroup(std::shared_ptr<Communicator> comm) : comm_(std::move(comm)) {}
  int worldSize() const override { return comm_->worldSize(); }
  torch::Tensor allGather(const torch::Tensor& t) override {
    const auto dev = t.device();
    return comm_->allGather(t.to(comm_->commDevice(dev)).contiguous()).to(dev);
  }
  void allreduceSum(torch::Tensor& t) override {
    const auto dev = t.device();
    auto c = t.to(comm_->commDevice(dev));
    comm_->allreduce(c, ReduceOp::Sum);
    if (!c.is_same(t)) t.copy_(c);
  }

 private:
  std::shared_ptr<Communicator> comm_;
};

}  // namespace

int syncBatchNorm(torch::nn::Module& root, const std::shared_ptr<Communicator>& comm) {
  if (!comm || !comm->distributed()) return 0;
  return models::setBatchNormGroup(root, std::make_shared<CommunicatorGroup>(comm));
}

}  // namespace biud::dist
