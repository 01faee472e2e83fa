#pragma once
/// \file Teacher.h
/// What stage 1 reads from its expert (the clip2d run named by model.teacher) beyond the cached
/// features (data/TeacherFeatures.h): the fingerprint of its newest checkpoint, recorded by
/// biud-retrieve and checked by the biud task, and the semantic anchors its text encoder makes of
/// the prompts. Both need the run itself (its checkpoints, loadRun()), hence evaluate/, not data/.
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <torch/types.h>

#include "biud/data/TeacherFeatures.h"

namespace biud::evaluate {

/// Fingerprint of the expert run (a clip2d run folder: its newest checkpoint; or a checkpoint
/// folder `run/checkpoints/step_N`), as data::checkpointFingerprint computes it. DataError naming
/// the folder when it holds no checkpoint.
std::string expertFingerprint(const std::string& teacherRunOrCheckpoint);
/// All three, as biud-retrieve records them.
data::TeacherFingerprint teacherFingerprint(const std::string& teacherRunOrCheckpoint, const image::Manifest& ct,
                                            const image::Manifest& xray, const std::vector<std::string>& sections);

/// Semantic anchors of `loss.sem.anchors: prompts` (METHOD §3): the teacher text encoder g_X of
/// the expert run on every finding's prompt ensembles of `prompts` (ZeroShot.h embedPrompts: each
/// ensemble's normalised mean), positives of all findings first, then negatives: [2F, d_X].
torch::Tensor promptAnchors(const std::string& teacherRun, const std::string& promptsFile, const c10::Device& device);

}  // namespace biud::evaluate
