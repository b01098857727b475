#include "net/listen_address.hpp"

#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>

#include <charconv>

namespace comfyfarm::net {

namespace {

bool is_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return host.front() != '.' && host.front() != '-';
}

Error bad(std::string_view text, std::string_view why) {
  std::string message = "invalid listen address '";
  message += text;
  message += "': ";
  message += why;
  message += " (expected HOST:PORT, e.g. 127.0.0.1:8188 or [::1]:0)";
  return fail(Errc::kInvalidArgument, std::move(message));
}

}  // namespace

std::string format_host_port(std::string_view host, std::uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string ListenAddress::to_string() const { return format_host_port(host, port); }

Result<ListenAddress> parse_listen_address(std::string_view text) {
  if (text.empty()) return bad(text, "empty");
  std::string_view host;
  std::string_view rest;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad(text, "unclosed '['");
    host = text.substr(1, close - 1);
    if (host.empty()) return bad(text, "empty host");
    if (!boost::urls::parse_ipv6_address(host)) return bad(text, "not an IPv6 address in brackets");
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return bad(text, "missing ':PORT' after ']'");
    rest.remove_prefix(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad(text, "missing ':PORT'");
    host = text.substr(0, colon);
    rest = text.substr(colon + 1);
    if (host.empty()) return bad(text, "empty host");
    if (host.find(':') != std::string_view::npos) {
      return bad(text, "an IPv6 host must be in brackets");
    }
    const bool numeric = host.find_first_not_of("0123456789.") == std::string_view::npos;
    if (!boost::urls::parse_ipv4_address(host) && (numeric || !is_dns_name(host))) {
      return bad(text, "not an IPv4 address or host name");
    }
  }
  if (rest.empty()) return bad(text, "empty port");
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
  if (ec != std::errc{} || end != rest.data() + rest.size()) return bad(text, "port is not a number");
  if (port > 65535) return bad(text, "port is out of range 0..65535");
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

}  // namespace comfyfarm::net
