#pragma once
/// \file Png.h
/// Minimal PNG writer (zlib) for X-rays and plots: grey or RGB(A), 8 or 16 bits per sample.
/// Written atomically. Reading PNG/JPEG/DICOM images goes through image/ (ITK).
#include <cstdint>
#include <string>
#include <vector>

namespace biud::png {

/// `data` holds height rows of width*channels samples, row-major, top row first. 16-bit
/// samples are given as native uint16_t and stored big-endian as PNG requires.
void write8(const std::string& path, int width, int height, int channels, const std::uint8_t* data);
void write16(const std::string& path, int width, int height, int channels, const std::uint16_t* data);
/// The encoded file in memory (tests, embedding in reports).
std::string encode(int width, int height, int channels, int bitDepth, const void* data);

}  // namespace biud::png
