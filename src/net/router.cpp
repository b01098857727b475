#include "net/router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

namespace comfyfarm::net {

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  // "/a/b" -> {"a","b"}; "/" -> {""}; the leading '/' is required by the caller.
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_param_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

}  // namespace

Result<void> Router::validate_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return fail(Errc::kInvalidArgument, "route pattern must start with '/': '" + std::string(pattern) + "'");
  }
  const auto segments = split_path(pattern);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto s = segments[i];
    const bool open = s.find('{') != std::string_view::npos;
    const bool close = s.find('}') != std::string_view::npos;
    if (!open && !close) continue;
    if (s.size() < 3 || s.front() != '{' || s.back() != '}') {
      return fail(Errc::kInvalidArgument,
                  "a parameter must be a whole segment '{name}': '" + std::string(pattern) + "'");
    }
    auto name = s.substr(1, s.size() - 2);
    if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
      if (i + 1 != segments.size()) {
        return fail(Errc::kInvalidArgument,
                    "a tail parameter '{name...}' must be last: '" + std::string(pattern) + "'");
      }
      name.remove_suffix(3);
    }
    if (!is_param_name(name)) {
      return fail(Errc::kInvalidArgument, "bad parameter name in '" + std::string(pattern) + "'");
    }
  }
  return {};
}

std::vector<Router::Segment> Router::compile(std::string_view pattern) {
  std::vector<Segment> out;
  for (auto s : split_path(pattern)) {
    Segment seg;
    if (s.size() >= 3 && s.front() == '{' && s.back() == '}') {
      auto name = s.substr(1, s.size() - 2);
      if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
        seg.kind = Segment::Kind::kTail;
        name.remove_suffix(3);
      } else {
        seg.kind = Segment::Kind::kParam;
      }
      seg.text = std::string(name);
    } else {
      seg.text = std::string(s);
    }
    out.push_back(std::move(seg));
  }
  return out;
}

Router& Router::add_route(Route route) {
  auto valid = validate_pattern(route.pattern);
  if (!valid) {
    spdlog::error("router: ignoring route: {}", valid.error().message);
    assert(false && "invalid route pattern");
    return *this;
  }
  auto entry = std::make_unique<Entry>();
  entry->segments = compile(route.pattern);
  entry->literals = static_cast<std::size_t>(std::count_if(
      entry->segments.begin(), entry->segments.end(),
      [](const Segment& s) { return s.kind == Segment::Kind::kLiteral; }));
  entry->route = std::move(route);
  routes_.push_back(std::move(entry));
  return *this;
}

Router& Router::add(Method method, std::string_view pattern, Handler handler) {
  Route route;
  route.method = method;
  route.pattern = std::string(pattern);
  route.handler = std::move(handler);
  return add_route(std::move(route));
}

Router& Router::add_with_prefixes(Method method, std::string_view pattern,
                                  const std::vector<std::string>& prefixes, Handler handler) {
  for (const auto& prefix : prefixes) add(method, prefix + std::string(pattern), handler);
  return *this;
}

Router& Router::add_with_api_alias(Method method, std::string_view pattern, Handler handler) {
  return add_with_prefixes(method, pattern, {"", "/api"}, std::move(handler));
}

Router& Router::add_websocket(std::string_view pattern, WebSocketHandler handler,
                              WebSocketOptions options) {
  Route route;
  route.method = Method::kGet;
  route.pattern = std::string(pattern);
  route.websocket = std::move(handler);
  route.websocket_options = options;
  return add_route(std::move(route));
}

Router& Router::add_websocket_with_api_alias(std::string_view pattern, WebSocketHandler handler,
                                             WebSocketOptions options) {
  add_websocket(pattern, handler, options);
  return add_websocket("/api" + std::string(pattern), std::move(handler), options);
}

bool Router::match_segments(const Entry& entry, const std::vector<std::string_view>& path,
                            std::vector<std::pair<std::string_view, std::string_view>>& raw) {
  raw.clear();
  const auto& segs = entry.segments;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& seg = segs[i];
    if (seg.kind == Segment::Kind::kTail) {
      if (path.size() < i) return false;
      if (i == path.size()) {
        raw.emplace_back(seg.text, std::string_view());
        return true;
      }
      // The rest of the path, slashes included: from the start of path[i] to the end of the last.
      const char* begin = path[i].data();
      const char* end = path.back().data() + path.back().size();
      raw.emplace_back(seg.text, std::string_view(begin, static_cast<std::size_t>(end - begin)));
      return true;
    }
    if (i >= path.size()) return false;
    if (seg.kind == Segment::Kind::kLiteral) {
      if (path[i] != seg.text) return false;
    } else {
      if (path[i].empty()) return false;
      raw.emplace_back(seg.text, path[i]);
    }
  }
  return segs.size() == path.size();
}

Router::Match Router::match(Method method, std::string_view path) const {
  Match result;
  if (path.empty() || path.front() != '/') {
    result.kind = Match::Kind::kBadPath;
    result.message = "the request target must be an absolute path";
    return result;
  }
  const auto segments = split_path(path);
  const Entry* best = nullptr;
  const Entry* best_get = nullptr;  // HEAD falls back to GET
  std::vector<std::pair<std::string_view, std::string_view>> raw;
  std::vector<std::pair<std::string_view, std::string_view>> best_raw;
  std::vector<std::pair<std::string_view, std::string_view>> best_get_raw;
  std::vector<Method> allowed;
  for (const auto& entry : routes_) {
    if (!match_segments(*entry, segments, raw)) continue;
    const Method m = entry->route.method;
    if (std::find(allowed.begin(), allowed.end(), m) == allowed.end()) allowed.push_back(m);
    if (m == method && (!best || entry->literals > best->literals)) {
      best = entry.get();
      best_raw = raw;
    }
    if (method == Method::kHead && m == Method::kGet &&
        (!best_get || entry->literals > best_get->literals)) {
      best_get = entry.get();
      best_get_raw = raw;
    }
  }
  if (!best && best_get) {
    best = best_get;
    best_raw = std::move(best_get_raw);
  }
  if (!best) {
    if (allowed.empty()) {
      result.kind = Match::Kind::kNotFound;
      return result;
    }
    if (std::find(allowed.begin(), allowed.end(), Method::kGet) != allowed.end() &&
        std::find(allowed.begin(), allowed.end(), Method::kHead) == allowed.end()) {
      allowed.push_back(Method::kHead);
    }
    result.kind = Match::Kind::kMethodNotAllowed;
    for (auto m : allowed) {
      if (!result.allow.empty()) result.allow += ", ";
      result.allow += to_string(m);
    }
    return result;
  }
  for (const auto& [name, value] : best_raw) {
    auto decoded = decode_path_segment(value);
    if (!decoded) {
      result.kind = Match::Kind::kBadPath;
      result.message = decoded.error().message;
      return result;
    }
    result.params.emplace_back(std::string(name), std::move(*decoded));
  }
  result.kind = Match::Kind::kFound;
  result.route = &best->route;
  return result;
}

}  // namespace comfyfarm::net
