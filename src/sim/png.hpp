// encode_png: small real PNG files for the simulator's outputs and preview frames (solid colour,
// any size), so that clients can decode what /view and the WebSocket send.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comfyfarm::sim {

struct Rgb {
  std::uint8_t r = 128;
  std::uint8_t g = 128;
  std::uint8_t b = 128;
};

/// An 8-bit RGB PNG of width x height filled with one colour (zlib-compressed, so even large
/// images are a few kB). `text` adds tEXt chunks (keyword, value), e.g. the prompt as ComfyUI
/// stores it. width and height must be at least 1.
[[nodiscard]] std::vector<std::uint8_t> encode_png(
    std::uint32_t width, std::uint32_t height, Rgb colour,
    const std::vector<std::pair<std::string, std::string>>& text = {});

}  // namespace comfyfarm::sim
