// HttpClient: requests to one HTTP origin over one reused keep-alive connection, with connect
// and request deadlines and cancellation. Never sends an Origin header.
#pragma once

#include "core/error.hpp"
#include "net/http_types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace comfyfarm::net {

struct HttpClientOptions {
  // A declared constructor keeps this a non-aggregate: GCC 12 destroys an aggregate temporary
  // (`{}` as an argument) inside a co_await expression twice.
  HttpClientOptions() = default;

  /// Name resolution plus TCP connect (also bounded by the request's own deadline).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  /// The whole request: connect (when needed), write, and reading the full response.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::uint64_t max_response_body_bytes = 512ull * 1024 * 1024;
  std::string user_agent = "comfyfarm";
  /// Reuse the connection between requests (reconnects when the server closed it).
  bool keep_alive = true;
};

/// One request. `target` is a path with an optional query ("/history/abc?max_items=1"); it is
/// appended to the client's base path.
struct HttpRequest {
  HttpRequest() = default;  // non-aggregate on purpose, see HttpClientOptions

  Method method = Method::kGet;
  std::string target = "/";
  Headers headers;  ///< any Origin field is dropped
  std::string body;
  std::optional<std::chrono::milliseconds> timeout;  ///< overrides options.request_timeout
};

/// A client of one origin ("http://127.0.0.1:8188"). Holds at most one connection, reused
/// while the server keeps it alive; a request that finds the kept connection closed by the
/// server before any response byte is retried once on a fresh one.
///
/// Requests on one client run one at a time in call order (later calls wait their turn; the
/// wait counts against their deadline). Any thread may call request() from any coroutine; the
/// work runs on the client's own strand. Status codes (404, 500...) are results, not errors.
/// Errors: refused -> kUnavailable "connection refused"; reset/EOF -> kUnavailable
/// "connection reset"; a deadline -> kTimeout; cancel() or the awaiting coroutine's
/// cancellation slot (terminal) -> kCancelled; an unparsable response -> kProtocol; a response
/// over max_response_body_bytes -> kResourceExhausted.
class HttpClient {
 public:
  /// An empty client; every request fails with kFailedPrecondition.
  HttpClient() = default;
  /// `base_url` is "http://host[:port][/base/path]"; https is refused (kInvalidArgument).
  [[nodiscard]] static Result<HttpClient> create(boost::asio::any_io_executor executor,
                                                 std::string_view base_url,
                                                 HttpClientOptions options = {});
  HttpClient(HttpClient&&) noexcept = default;
  HttpClient& operator=(HttpClient&& other) noexcept;
  /// Drops the connection once no request is in flight (a request in flight finishes).
  ~HttpClient();

  boost::asio::awaitable<Result<Response>> request(HttpRequest request);
  boost::asio::awaitable<Result<Response>> request(Method method, std::string target,
                                                   Headers headers = {}, std::string body = {});

  /// Cancels the request in flight and those waiting their turn (they end with kCancelled);
  /// the connection is dropped. Thread-safe, non-blocking. Later requests are not affected.
  void cancel();
  /// Drops the kept connection (thread-safe).
  void close();

  /// "http://host:port" as given to create().
  const std::string& base_url() const;

  struct Impl;

 private:
  explicit HttpClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

/// One request to an absolute URL on a fresh connection ("http://host:port/path?query").
boost::asio::awaitable<Result<Response>> http_request(boost::asio::any_io_executor executor,
                                                      Method method, std::string_view url,
                                                      Headers headers = {}, std::string body = {},
                                                      HttpClientOptions options = {});

}  // namespace comfyfarm::net
