#pragma once
#include "biud/core/Schema.h"

namespace biud {

/// `logging:` — what a run writes about itself.
struct LoggingConfig {
  std::string level = "info";
  bool file = true;
  int every_steps = 10;
  bool jsonl = true;
  bool tensorboard = true;
  bool progress = true;

  void visit(config::Visitor& v) {
    v.field("level", level, "console log level", config::oneOf({"trace", "debug", "info", "warn", "error", "off"}));
    v.field("file", file, "also log to <run>/log.txt");
    v.field("every_steps", every_steps, "log metrics every N optimizer steps", config::atLeast(1));
    v.field("jsonl", jsonl, "write <run>/metrics.jsonl");
    v.field("tensorboard", tensorboard, "write TensorBoard event files to <run>/tensorboard");
    v.field("progress", progress, "show a progress bar (plain log lines when not on a terminal)");
  }
};

}  // namespace biud
