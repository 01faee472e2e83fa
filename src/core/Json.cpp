#include "biud/core/Json.h"

#include <set>
#include <vector>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"

namespace biud::fs {

namespace {

std::string where(const std::string& path, std::size_t line) {
  return line > 0 ? fmt::format("`{}` line {}", path, line) : fmt::format("`{}`", path);
}

std::string fixOf(std::string_view fix) { return fix.empty() ? std::string("Fix or delete it") : std::string(fix); }

// The parser's message without its "[json.exception.parse_error.101] " tag; inside one record of
// a JSON-lines file its "line 1" is the record's line, so only the column is kept.
std::string parserMessage(const std::exception& e, std::size_t line) {
  std::string m = e.what();
  if (m.rfind("[json.exception.", 0) == 0) {
    const auto close = m.find("] ");
    if (close != std::string::npos) m.erase(0, close + 2);
  }
  if (line > 0) {
    const std::string at = "at line 1, column";
    const auto p = m.find(at);
    if (p != std::string::npos) m.replace(p, at.size(), "at column");
  }
  return m;
}

// Duplicate-key detection while parsing: one frame per open object or array.
struct Frame {
  bool object = false;
  std::set<std::string> keys;
  std::string key;        // the object's current key
  std::size_t index = 0;  // the array's current element
};

std::string keyPath(const std::vector<Frame>& frames, const std::string& last) {
  std::string p;
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
    const Frame& f = frames[i];
    if (f.object)
      p += (p.empty() ? "" : ".") + f.key;
    else
      p += fmt::format("[{}]", f.index);
  }
  return p + (p.empty() ? "" : ".") + last;
}

}  // namespace

nlohmann::json parseJson(std::string_view text, const std::string& path, std::string_view what, std::string_view fix,
                         std::size_t line) {
  const bool blank = text.find_first_not_of(" \t\r\n") == std::string_view::npos;
  BIUD_CHECK(!blank, DataError, "{}: not valid JSON ({}): {} is empty. {}", where(path, line), what,
             line > 0 ? "the line" : "the file", fixOf(fix));
  std::vector<Frame> frames;
  using Event = nlohmann::json::parse_event_t;
  auto onEvent = [&](int /*depth*/, Event event, nlohmann::json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        frames.emplace_back();
        frames.back().object = event == Event::object_start;
        break;
      case Event::key: {
        Frame& f = frames.back();
        const std::string k = parsed.get<std::string>();
        if (!f.keys.insert(k).second)
          BIUD_THROW(DataError,
                     "{}: not valid JSON ({}): key `{}` is written twice in the same object (a JSON reader keeps "
                     "only one of them, silently). {}",
                     where(path, line), what, keyPath(frames, k), fixOf(fix));
        f.key = k;
        break;
      }
      case Event::object_end:
      case Event::array_end:
        frames.pop_back();
        if (!frames.empty() && !frames.back().object) ++frames.back().index;
        break;
      case Event::value:
        if (!frames.empty() && !frames.back().object) ++frames.back().index;
        break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, onEvent);
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "{}: not valid JSON ({}): {}. {}", where(path, line), what, parserMessage(e, line),
               fixOf(fix));
  }
}

nlohmann::json readJsonFile(const std::filesystem::path& path, std::string_view what, std::string_view fix) {
  return parseJson(readFile(path), path.string(), what, fix);
}

}  // namespace biud::fs
