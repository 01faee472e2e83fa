#pragma once
/// \file Json.h
/// Reading JSON files with errors that name the file. Every JSON file biud reads (a checkpoint's
/// `state.json`, a model's `config.json`, `drr.json`, a manifest's JSONL records) goes through
/// these, so that a damaged file says which file it is and where it breaks:
///
///     `runs/a/step_40/state.json`: not valid JSON (training state of a checkpoint): parse error
///     at line 3, column 1: syntax error while parsing value - unexpected end of input; expected
///     '[', '{', or a literal. Fix or delete it
///
/// A key written twice in one object is an error too: nlohmann::json (like Python's json module)
/// keeps the last one silently, so `{"label": 1, "label": 0}` would read as 0.
/// Kept out of Fs.h so that the files including it do not all parse nlohmann/json.hpp.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace biud::fs {

/// Parse `text` read from `path` (a file name, for messages). `what` says what the file is
/// ("training state of a checkpoint"); `fix` what to do about it (default "Fix or delete it").
/// `line` > 0 marks one record of a JSON-lines file: messages then say "`path` line N".
/// DataError on a syntax error (with the parser's line and column), on an empty text and on an
/// object with the same key twice (with the key's path, e.g. `items[3].id`).
nlohmann::json parseJson(std::string_view text, const std::string& path, std::string_view what,
                         std::string_view fix = {}, std::size_t line = 0);

/// Read the file and parseJson() it: IoError naming the file when it cannot be read.
nlohmann::json readJsonFile(const std::filesystem::path& path, std::string_view what, std::string_view fix = {});

}  // namespace biud::fs
