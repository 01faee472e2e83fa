#pragma once
/// \file CheckpointSync.h
/// Distributed side of checkpoints: rank 0 writes, everybody learns whether it worked, and a
/// resume refuses a world size different from the one the checkpoint was trained with (the
/// per-rank batch, data sharding and learning-rate schedule all depend on it).
#include <functional>
#include <string>

#include "biud/dist/Communicator.h"

namespace biud::dist {

/// Run `write` on rank 0 only; then all ranks agree on the outcome: if rank 0 threw, every rank
/// throws DistError with rank 0's message (so no rank goes on training past a failed save).
/// Collective: every rank must call it.
void writeOnMain(Communicator& comm, const std::function<void()>& write);

/// Refuse a resume at another world size. `savedWorld` is what the checkpoint recorded,
/// `what` names the checkpoint (its folder) for the message. Throws ConfigError.
void checkResumeWorldSize(int savedWorld, int currentWorld, const std::string& what);

/// The same, reading `world_size` from a checkpoint's JSON metadata text (e.g. meta.json);
/// a metadata without the key is accepted only for world size 1 (older single-process runs).
void checkResumeWorldSize(const std::string& metaJson, int currentWorld, const std::string& what);

/// JSON object text with what checkResumeWorldSize needs: {"world_size": N, "backend": "..."}.
std::string distMetaJson(const Communicator& comm);

}  // namespace biud::dist
