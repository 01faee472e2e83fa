#pragma once
/// \file RunList.h
/// The one parser of repeatable `[NAME=]PATH` flag values: `--run NAME=DIR` of the apps that
/// compare trained runs (biud-zeroshot, biud-x2ct-eval, ...) and `--pred NAME=FILE` of biud-eval.
/// NAME labels the entry in the outputs (JSON keys, table rows, figure legends).
///
/// Rules, in this order:
///  1. A value that names an existing file or folder as a whole is a PATH, even when it holds `=`
///     (`runs/lr=3e-4` stays one path).
///  2. Otherwise a value holding `=` is NAME=PATH, split at the first `=`; NAME and PATH must
///     both be non-empty (ConfigError naming the flag and the value).
///  3. A PATH alone is named after its last component, trailing `/` ignored: an existing regular
///     file without its extension (`preds/model_a.csv` -> `model_a`), anything else as it is
///     (`runs/biud-0.5/` -> `biud-0.5`).
///  4. Names are distinct across the values of one flag (ConfigError naming both values).
#include <string>
#include <vector>

namespace biud::app {

struct NamedPath {
  std::string name;  ///< label in the outputs
  std::string path;  ///< the file or folder as given
};

/// One value (rules 1-3). `flag` names the flag in error messages.
NamedPath parseNamedPath(const std::string& value, const std::string& flag = "--run");

/// Every value of a repeated flag, in order (rules 1-4).
std::vector<NamedPath> parseRunList(const std::vector<std::string>& values, const std::string& flag = "--run");

}  // namespace biud::app
