#include "net/detail/url.hpp"

#include "net/listen_address.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace comfyfarm::net::detail {

Result<ParsedUrl> parse_url(std::string_view url, std::string_view scheme,
                            std::uint16_t default_port) {
  auto bad = [&](std::string_view why) {
    return fail(Errc::kInvalidArgument, "invalid URL '" + std::string(url) + "': " + std::string(why));
  };
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return bad(parsed.error().message());
  const auto& u = *parsed;
  std::string s(u.scheme());
  for (auto& c : s) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  if (s == std::string(scheme) + "s") return bad("TLS (" + s + ") is not supported");
  if (s != scheme) return bad("the scheme must be " + std::string(scheme));
  if (!u.has_authority() || u.encoded_host().empty()) return bad("no host");
  if (u.has_userinfo()) return bad("user info is not supported");
  if (u.has_fragment()) return bad("a fragment is not allowed");

  ParsedUrl out;
  out.scheme = std::move(s);
  out.host = u.host_address();
  if (u.has_port()) {
    if (u.port().empty() || u.port_number() == 0) return bad("bad port");
    out.port = u.port_number();
  } else {
    out.port = default_port;
  }
  if (u.has_port() && out.port != default_port) {
    out.host_header = format_host_port(out.host, out.port);
  } else {
    out.host_header = out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host;
  }
  out.target = std::string(u.encoded_target());
  if (out.target.empty() || out.target.front() != '/') out.target.insert(0, "/");
  return out;
}

}  // namespace comfyfarm::net::detail
