#include "sim/png.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace comfyfarm::sim {

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_chunk(std::vector<std::uint8_t>& out, const char (&type)[5],
               const std::vector<std::uint8_t>& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  const auto crc = crc32(0L, out.data() + type_at, static_cast<uInt>(4 + data.size()));
  put_u32(out, static_cast<std::uint32_t>(crc));
}

}  // namespace

std::vector<std::uint8_t> encode_png(std::uint32_t width, std::uint32_t height, Rgb colour,
                                     const std::vector<std::pair<std::string, std::string>>& text) {
  width = std::max<std::uint32_t>(1, width);
  height = std::max<std::uint32_t>(1, height);
  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

  std::vector<std::uint8_t> ihdr;
  put_u32(ihdr, width);
  put_u32(ihdr, height);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit, truecolour, deflate, no filter, no interlace
  put_chunk(out, "IHDR", ihdr);

  for (const auto& [keyword, value] : text) {
    std::vector<std::uint8_t> t(keyword.begin(), keyword.end());
    t.push_back(0);
    t.insert(t.end(), value.begin(), value.end());
    put_chunk(out, "tEXt", t);
  }

  // Stream the scanlines through deflate one row at a time: memory stays O(width).
  std::vector<std::uint8_t> row(1 + static_cast<std::size_t>(width) * 3);
  row[0] = 0;  // filter: none
  for (std::uint32_t x = 0; x < width; ++x) {
    row[1 + x * 3] = colour.r;
    row[2 + x * 3] = colour.g;
    row[3 + x * 3] = colour.b;
  }
  z_stream zs{};
  deflateInit(&zs, Z_BEST_SPEED);
  std::vector<std::uint8_t> idat;
  std::vector<std::uint8_t> buffer(16384);
  for (std::uint32_t y = 0; y < height; ++y) {
    zs.next_in = row.data();
    zs.avail_in = static_cast<uInt>(row.size());
    const int flush = y + 1 == height ? Z_FINISH : Z_NO_FLUSH;
    int rc = Z_OK;
    do {
      zs.next_out = buffer.data();
      zs.avail_out = static_cast<uInt>(buffer.size());
      rc = deflate(&zs, flush);
      idat.insert(idat.end(), buffer.data(), buffer.data() + (buffer.size() - zs.avail_out));
    } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
  }
  deflateEnd(&zs);
  put_chunk(out, "IDAT", idat);
  put_chunk(out, "IEND", {});
  return out;
}

}  // namespace comfyfarm::sim
