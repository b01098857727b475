// Splitting a client URL (http://host:port/path?q, ws://...) into what a connection needs.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace comfyfarm::net::detail {

struct ParsedUrl {
  std::string scheme;       ///< lowercase: "http" or "ws"
  std::string host;         ///< for connecting: a name or an IP literal without brackets
  std::uint16_t port = 0;   ///< explicit or the scheme's default
  std::string host_header;  ///< for the Host header: "host", "host:port", "[::1]:port"
  std::string target;       ///< path and query, "/" when the URL has no path
};

/// Parses an absolute URL whose scheme is `scheme` (or `scheme` + "s", which gives
/// kInvalidArgument "TLS is not supported"). Fragments and user info are refused.
[[nodiscard]] Result<ParsedUrl> parse_url(std::string_view url, std::string_view scheme,
                                          std::uint16_t default_port);

}  // namespace comfyfarm::net::detail
