#pragma once
/// \file Tasks.h
/// The built-in tasks' registry entries (evaluate/TaskSpec.h): each task's file defines its
/// entry, and registerBuiltinTaskSpecs() (Task.cpp) registers them, one line each.
#include "biud/evaluate/TaskSpec.h"
#include "biud/train/Task.h"

namespace biud::train {

/// Stage 0: CLIP on X-ray/report pairs (data.xray_manifest, model.xray_encoder). Clip2dTask.cpp
evaluate::TaskSpec clip2dTaskSpec();
/// Stage 1: BIUD pretraining of the CT encoder (data.manifest, model.teacher, data.pairing). BiudTask.cpp
evaluate::TaskSpec biudTaskSpec();
/// Downstream: multi-label CT classification on a pretrained BIUD encoder (finetune.*). FinetuneTask.cpp
evaluate::TaskSpec finetuneTaskSpec();
/// Downstream: report generation from a pretrained BIUD encoder (report.*, model.decoder). ReportTask.cpp
evaluate::TaskSpec reportTaskSpec();
/// X2CT-CLIP (X2ctTask.h). X2ctTask.cpp
evaluate::TaskSpec x2ctTaskSpec();

}  // namespace biud::train
