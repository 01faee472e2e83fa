#pragma once
/// \file Join.h
/// One-line lists for messages: "a, b, c, ... (9 more)".
#include <cstddef>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace biud {

/// The first `max` names joined with ", ", then ", ... (N more)" for the rest.
inline std::string joinFirst(const std::vector<std::string>& names, std::size_t max) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < max; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > max) s += fmt::format(", ... ({} more)", names.size() - max);
  return s;
}

}  // namespace biud
