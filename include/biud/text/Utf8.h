#pragma once
/// \file Utf8.h
/// Minimal UTF-8 helpers. Invalid bytes decode as U+FFFD one byte at a time (as Python's
/// `errors="replace"` does per byte), so no input can make a decoder loop or read past the end.
#include <cstdint>
#include <string>
#include <string_view>

namespace biud::text::utf8 {

/// Decode the code point at `s[i]` and advance `i` past it.
char32_t next(std::string_view s, std::size_t& i);
/// Append the UTF-8 encoding of `cp`.
void append(std::string& out, char32_t cp);
/// Number of code points.
std::size_t length(std::string_view s);
/// True when `s` is valid UTF-8.
bool valid(std::string_view s);

}  // namespace biud::text::utf8
