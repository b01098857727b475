// Router: maps a method and a path ("/history/{prompt_id}") to a handler coroutine or a
// WebSocket handler. Built once before the server starts, then shared read-only by all threads.
#pragma once

#include "core/error.hpp"
#include "net/http_types.hpp"
#include "net/websocket_session.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::net {

/// A handler: a coroutine that answers one request. It runs on the connection's strand (another
/// request of the same connection waits for it; other connections do not), may co_await other
/// work, and may move things out of the request. An exception that escapes it becomes a 500 JSON
/// error and one log line. The std::function (and what it captures) must outlive the server.
using Handler = std::function<boost::asio::awaitable<Response>(Request& request)>;

/// Called on the session's strand right after a WebSocket handshake on a WebSocket route, with
/// the upgrade request (path params and query available). Set the session's callbacks here,
/// register it with a hub, send a greeting. Messages are read only after this returns.
using WebSocketHandler =
    std::function<void(const Request& request, const std::shared_ptr<WebSocketSession>& session)>;

/// One registered route.
struct Route {
  Method method = Method::kGet;
  std::string pattern;
  Handler handler;                    ///< set for HTTP routes
  WebSocketHandler websocket;         ///< set for WebSocket routes (method GET)
  WebSocketOptions websocket_options;

  bool is_websocket() const { return static_cast<bool>(websocket); }
};

/// Routes requests by method and path.
///
/// Patterns are absolute paths of '/'-separated segments. A segment is a literal, a parameter
/// `{name}` (one non-empty segment), or, as the last segment only, a tail `{name...}` (the rest of
/// the path, possibly empty, '/' included). Matching is on the raw path; captured values are
/// percent-decoded. A path matched by several patterns goes to the one with the most literal
/// segments, then the one registered first. A HEAD request falls back to the GET route (the
/// server sends the headers without the body).
class Router {
 public:
  /// The outcome of matching one request.
  struct Match {
    enum class Kind { kFound, kNotFound, kMethodNotAllowed, kBadPath };
    Kind kind = Kind::kNotFound;
    const Route* route = nullptr;
    std::vector<std::pair<std::string, std::string>> params;
    std::string allow;    ///< for kMethodNotAllowed: the Allow header value ("GET, HEAD, POST")
    std::string message;  ///< for kBadPath: what is wrong with the path
  };

  /// Checks a pattern; kInvalidArgument says what is wrong.
  [[nodiscard]] static Result<void> validate_pattern(std::string_view pattern);

  /// Registers an HTTP route. An invalid pattern is a programming error (asserts; ignored in
  /// release builds with a log line).
  Router& add(Method method, std::string_view pattern, Handler handler);
  /// Registers the route under `pattern` and under "/api" + pattern, as ComfyUI does for every
  /// route of its main table.
  Router& add_with_api_alias(Method method, std::string_view pattern, Handler handler);
  /// Registers the route under each prefix + pattern ("" for the bare pattern).
  Router& add_with_prefixes(Method method, std::string_view pattern,
                            const std::vector<std::string>& prefixes, Handler handler);

  /// Registers a WebSocket route (GET with Upgrade: websocket). A GET without the upgrade gets
  /// 426 with a JSON error.
  Router& add_websocket(std::string_view pattern, WebSocketHandler handler,
                        WebSocketOptions options = {});
  Router& add_websocket_with_api_alias(std::string_view pattern, WebSocketHandler handler,
                                       WebSocketOptions options = {});

  /// Finds the route for `method` and the raw `path` (no query). Thread-safe once built.
  Match match(Method method, std::string_view path) const;

  std::size_t size() const { return routes_.size(); }

 private:
  struct Segment {
    enum class Kind { kLiteral, kParam, kTail };
    Kind kind = Kind::kLiteral;
    std::string text;  ///< the literal, or the parameter name
  };
  struct Entry {
    Route route;
    std::vector<Segment> segments;
    std::size_t literals = 0;
  };

  Router& add_route(Route route);
  static std::vector<Segment> compile(std::string_view pattern);
  static bool match_segments(const Entry& entry, const std::vector<std::string_view>& path,
                             std::vector<std::pair<std::string_view, std::string_view>>& raw);

  std::vector<std::unique_ptr<Entry>> routes_;
};

}  // namespace comfyfarm::net
