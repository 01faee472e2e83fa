#pragma once
/// \file SyncBatchNorm.h
/// Batch statistics over the global batch: attach a job's ranks to the SyncBatchNorm layers of a
/// model (models/SyncBatchNorm.h). The trainer does this when `distributed.sync_batchnorm` is on
/// (the default) and the world has more than one rank:
///
///     const int layers = dist::syncBatchNorm(task.module(), comm);   // 0: no BatchNorm
///
/// Each synced layer adds one all-gather (forward) and one allreduce (backward) of 2C+1 and 2C
/// doubles per training step. A single-process communicator attaches nothing.
#include <memory>

#include <torch/nn/module.h>

#include "biud/dist/Communicator.h"

namespace biud::dist {

/// Number of BatchNorm layers now normalising over every rank's rows.
int syncBatchNorm(torch::nn::Module& root, const std::shared_ptr<Communicator>& comm);

}  // namespace biud::dist
