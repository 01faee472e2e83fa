#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `trainer:` — the loop: length, accumulation, precision, checkpoints, validation, NaN policy.
struct TrainerConfig {
  int steps = 1000;
  int grad_accum = 1;
  double clip_grad_norm = 1.0;
  std::string precision = "auto";
  int val_every = 0;
  int save_every = 500;
  int keep_last = 3;
  int max_bad_steps = 10;
  double ema = 0;
  int ema_start = 0;
  bool ema_warmup = true;
  std::string resume;

  void visit(config::Visitor& v) {
    v.field("steps", steps, "optimizer steps to train", config::atLeast(1));
    v.field("grad_accum", grad_accum,
            "micro-batches per optimizer step (features cached: contrastive losses see the whole accumulated batch)",
            config::atLeast(1));
    v.field("clip_grad_norm", clip_grad_norm, "clip the global gradient norm (0 = off)", config::atLeast(0));
    v.field("precision", precision, "auto = bf16 autocast on CUDA, fp32 on CPU",
            config::oneOf({"auto", "fp32", "bf16"}));
    v.field("val_every", val_every, "validate every N steps (0 = only at the end)", config::atLeast(0));
    v.field("save_every", save_every, "checkpoint every N steps (0 = only at the end)", config::atLeast(0));
    v.field("keep_last", keep_last, "checkpoints kept (older ones deleted)", config::atLeast(1));
    v.field("max_bad_steps", max_bad_steps, "stop after this many NaN/Inf steps in a row", config::atLeast(1));
    v.field("ema", ema,
            "keep an exponential moving average of the trained weights with this decay per step (e.g. 0.998; "
            "0 = off): validation uses it and checkpoints hold it as ema.safetensors (Ema.h)",
            config::range(0, 1, false, true));
    v.field("ema_start", ema_start, "the average starts as a copy of the weights after this many steps",
            config::atLeast(0));
    v.field("ema_warmup", ema_warmup,
            "decay min(ema, (1 + n) / (10 + n)) over the n updates since the start (false = ema from the first)");
    v.field("resume", resume, "checkpoint folder to resume from, or `latest`");
  }
};

/// `distributed:` — multi-process training on c10d.
struct DistributedConfig {
  std::string backend = "auto";
  double timeout_s = 300;
  double bucket_mb = 25;
  bool gather_with_grad = true;
  bool local_loss = true;
  bool sync_batchnorm = true;

  void visit(config::Visitor& v) {
    v.field("backend", backend, "auto = nccl on CUDA, gloo on CPU", config::oneOf({"auto", "gloo", "nccl"}));
    v.field("timeout_s", timeout_s, "a collective that takes longer fails the job, naming the rank",
            config::positive());
    v.field("bucket_mb", bucket_mb, "gradient allreduce bucket size", config::positive());
    v.field("gather_with_grad", gather_with_grad, "all-gather contrastive features with gradient (global negatives)");
    v.field("local_loss", local_loss, "each rank computes the loss of its own rows against the global batch");
    v.field("sync_batchnorm", sync_batchnorm,
            "BatchNorm statistics over every rank's rows (SyncBatchNorm), so N ranks train like one process with the "
            "whole batch; false = each rank's own rows (DDP's default), cheaper by one small collective per layer");
  }
};

}  // namespace biud
