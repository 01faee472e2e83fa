#include "biud/evaluate/Teacher.h"

#include <filesystem>

#include <torch/torch.h>

#include "biud/core/Error.h"
#include "biud/data/TextBatch.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/evaluate/ZeroShot.h"
#include "biud/image/Manifest.h"
#include "biud/text/Prompts.h"
#include "biud/train/Checkpoint.h"

namespace biud::evaluate {

std::string expertFingerprint(const std::string& teacherRunOrCheckpoint) {
  namespace stdfs = std::filesystem;
  const stdfs::path dir(teacherRunOrCheckpoint);
  if (stdfs::exists(dir / "model.safetensors"))
    return data::checkpointFingerprint(dir.string(), dir.parent_path().parent_path().string());
  train::CheckpointManager m(dir / "checkpoints", 1);
  auto latest = m.latest();
  BIUD_CHECK(latest.has_value(), DataError,
             "expert `{}` holds no checkpoint (expected {}/checkpoints/step_*/model.safetensors): train it first",
             teacherRunOrCheckpoint, teacherRunOrCheckpoint);
  return data::checkpointFingerprint(latest->string(), dir.string());
}

data::TeacherFingerprint teacherFingerprint(const std::string& teacherRunOrCheckpoint, const image::Manifest& ct,
                                            const image::Manifest& xray, const std::vector<std::string>& sections) {
  return {expertFingerprint(teacherRunOrCheckpoint), data::manifestFingerprint(ct, sections),
          data::manifestFingerprint(xray, sections)};
}

torch::Tensor promptAnchors(const std::string& teacherRun, const std::string& promptsFile, const c10::Device& device) {
  BIUD_CHECK(!teacherRun.empty(), ConfigError,
             "loss.sem.anchors = prompts embeds the prompts with the expert's text encoder: set model.teacher (the "
             "clip2d run biud-retrieve used)");
  BIUD_CHECK(!promptsFile.empty(), ConfigError,
             "loss.sem.anchors = prompts needs a prompt file: set loss.sem.prompts or eval.prompts");
  const auto prompts = text::PromptSet::load(promptsFile);
  auto t = loadRun(teacherRun, device);
  BIUD_CHECK(t.model->can(Capability::kXray) && t.model->can(Capability::kText), ConfigError,
             "model.teacher `{}` is a `{}` run; the expert is a clip2d run", teacherRun, t.model->task());
  auto pe = embedPrompts(prompts, prompts.ids(), [&](const std::vector<std::string>& texts) {
    torch::NoGradGuard ng;
    auto tb = data::tokenizeBatch(*t.tokenizer, texts, t.cfg.text.max_length);
    return t.model->encodeText(tb.ids.to(device), tb.mask.to(device)).cpu();
  });
  return torch::cat({pe.positive, pe.negative}).to(torch::kFloat32);
}

}  // namespace biud::evaluate
