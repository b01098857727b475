// Random identifiers: hex strings and uuid4s (prompt ids, socket ids, multipart boundaries).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace comfyfarm {

/// `digits` lowercase hex digits from `rng`.
inline std::string random_hex(std::mt19937_64& rng, std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digits);
  while (out.size() < digits) {
    std::uint64_t x = rng();
    for (int i = 0; i < 16 && out.size() < digits; ++i, x >>= 4) out += kHex[x & 0xF];
  }
  return out;
}

/// Python's str(uuid.uuid4()): 8-4-4-4-12 hex digits, version 4, variant 10.
inline std::string uuid4(std::mt19937_64& rng) {
  std::string h = random_hex(rng, 32);
  h[12] = '4';
  h[16] = "89ab"[rng() & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20);
}

/// A generator per thread, seeded from std::random_device, for callers without their own.
inline std::mt19937_64& thread_rng() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

inline std::string random_hex(std::size_t digits) { return random_hex(thread_rng(), digits); }
inline std::string uuid4() { return uuid4(thread_rng()); }

}  // namespace comfyfarm
