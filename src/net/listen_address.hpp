// ListenAddress: the `HOST:PORT` a server binds (`--listen`), parsed and printed one way everywhere.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace comfyfarm::net {

/// A host and a port to listen on. Port 0 asks the kernel for a free port.
struct ListenAddress {
  std::string host;  ///< "127.0.0.1", "0.0.0.0", "::1", "::", "localhost"; IPv6 without brackets
  std::uint16_t port = 0;

  /// "HOST:PORT", with an IPv6 host in brackets ("[::1]:8188").
  std::string to_string() const;

  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

/// Parses `HOST:PORT` or `[IPV6]:PORT`. The host is an IPv4 literal, a bracketed IPv6 literal or a
/// DNS name; the port is 0..65535. Errors are kInvalidArgument with the offending text.
[[nodiscard]] Result<ListenAddress> parse_listen_address(std::string_view text);

/// "HOST:PORT" for any host, bracketing it when it contains ':' (an IPv6 literal).
std::string format_host_port(std::string_view host, std::uint16_t port);

}  // namespace comfyfarm::net
