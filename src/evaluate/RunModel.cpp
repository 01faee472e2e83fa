#include "biud/evaluate/RunModel.h"

#include "biud/core/Error.h"

namespace biud::evaluate {

std::string describe(Capability c) {
  switch (c) {
    case Capability::kText:
      return "text encoder";
    case Capability::kCt:
      return "CT encoder in the shared embedding space";
    case Capability::kXray:
      return "X-ray encoder";
    case Capability::kCtEncoder:
      return "CT backbone";
  }
  return "?";
}

void RunModel::lacks(Capability c) const {
  BIUD_THROW(ConfigError, "`{}` is a {} run: it has no {}", run_, task_, describe(c));
}

void RunModel::require(Capability c) const {
  if (!can(c)) lacks(c);
}

torch::Tensor RunModel::encodeText(const torch::Tensor&, const torch::Tensor&) { lacks(Capability::kText); }
CtEmbedding RunModel::encodeCt(const torch::Tensor&) { lacks(Capability::kCt); }
torch::Tensor RunModel::encodeXray(const torch::Tensor&) { lacks(Capability::kXray); }
std::shared_ptr<models::VisualEncoderImpl> RunModel::ctEncoder() const { lacks(Capability::kCtEncoder); }
double RunModel::temperature() { lacks(Capability::kText); }
TextTower RunModel::textTower() const { lacks(Capability::kText); }

namespace {

/// clip2d and x2ct: an X-ray tower and a report tower.
class ClipRunModel final : public RunModel {
 public:
  ClipRunModel(models::ClipModel m, std::string run, std::string task)
      : RunModel(std::move(run), std::move(task)), m_(std::move(m)) {}
  torch::nn::Module& module() override { return *m_; }
  bool can(Capability c) const override { return c == Capability::kText || c == Capability::kXray; }
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask) override {
    return m_->encodeText(ids, mask);
  }
  torch::Tensor encodeXray(const torch::Tensor& images) override { return m_->encodeImage(images); }
  double temperature() override { return m_->temperature->forward().item<double>(); }
  TextTower textTower() const override { return {m_->text_encoder, m_->text_proj}; }

 private:
  models::ClipModel m_;
};

/// biud: a CT tower (with the distillation adapter) and a report tower.
class BiudRunModel final : public RunModel {
 public:
  BiudRunModel(models::BiudModel m, std::string run, std::string task)
      : RunModel(std::move(run), std::move(task)), m_(std::move(m)) {}
  torch::nn::Module& module() override { return *m_; }
  bool can(Capability c) const override { return c != Capability::kXray; }
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask) override {
    return m_->encodeText(ids, mask);
  }
  CtEmbedding encodeCt(const torch::Tensor& volume) override {
    auto o = m_->encodeCt(volume);
    return {o.ct, o.adapted, o.tokens};
  }
  std::shared_ptr<models::VisualEncoderImpl> ctEncoder() const override { return m_->ct_encoder; }
  double temperature() override { return m_->temperature->forward().item<double>(); }
  TextTower textTower() const override { return {m_->text_encoder, m_->text_proj}; }

 private:
  models::BiudModel m_;
};

/// finetune and report: a CT backbone under a label head or a report decoder (neither is an
/// embedding space).
template <class M>
class BackboneRunModel final : public RunModel {
 public:
  BackboneRunModel(M m, std::string run, std::string task)
      : RunModel(std::move(run), std::move(task)), m_(std::move(m)) {}
  torch::nn::Module& module() override { return *m_; }
  bool can(Capability c) const override { return c == Capability::kCtEncoder; }
  std::shared_ptr<models::VisualEncoderImpl> ctEncoder() const override { return m_->ct_encoder; }

 private:
  M m_;
};

/// An imported CT-CLIP: its CT and report towers (CT-CLIP multiplies the similarities by
/// exp(temperature): tau = 1 / exp(temperature)).
class CtClipRunModel final : public RunModel {
 public:
  CtClipRunModel(models::CtClip m, std::string run, std::string task)
      : RunModel(std::move(run), std::move(task)), m_(std::move(m)) {}
  torch::nn::Module& module() override { return *m_; }
  bool can(Capability c) const override { return c == Capability::kText || c == Capability::kCt; }
  torch::Tensor encodeText(const torch::Tensor& ids, const torch::Tensor& mask) override {
    return m_->encodeText(ids, mask);
  }
  CtEmbedding encodeCt(const torch::Tensor& volume) override { return {m_->encodeImage(volume), {}, {}}; }
  double temperature() override { return 1.0 / m_->logitScale(); }

 private:
  models::CtClip m_;
};

}  // namespace

std::unique_ptr<RunModel> clipRunModel(models::ClipModel m, std::string run, std::string task) {
  return std::make_unique<ClipRunModel>(std::move(m), std::move(run), std::move(task));
}
std::unique_ptr<RunModel> biudRunModel(models::BiudModel m, std::string run, std::string task) {
  return std::make_unique<BiudRunModel>(std::move(m), std::move(run), std::move(task));
}
std::unique_ptr<RunModel> finetuneRunModel(models::FinetuneModel m, std::string run, std::string task) {
  return std::make_unique<BackboneRunModel<models::FinetuneModel>>(std::move(m), std::move(run), std::move(task));
}
std::unique_ptr<RunModel> reportRunModel(models::ReportModel m, std::string run, std::string task) {
  return std::make_unique<BackboneRunModel<models::ReportModel>>(std::move(m), std::move(run), std::move(task));
}
std::unique_ptr<RunModel> ctClipRunModel(models::CtClip m, std::string run, std::string task) {
  return std::make_unique<CtClipRunModel>(std::move(m), std::move(run), std::move(task));
}

}  // namespace biud::evaluate
