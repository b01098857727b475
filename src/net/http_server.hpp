// HttpServer: the HTTP/1.1 + WebSocket listener. Accepts connections, reads requests (bounded
// pipelining, size limits, timeouts), routes them and writes the responses in order.
#pragma once

#include "core/error.hpp"
#include "net/listen_address.hpp"
#include "net/router.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace comfyfarm::net {

struct HttpServerOptions {
  // A declared constructor keeps this a non-aggregate: GCC 12 destroys an aggregate temporary
  // (`{}` as an argument) inside a co_await expression twice.
  HttpServerOptions() = default;

  ListenAddress listen{"127.0.0.1", 0};
  /// Request line + header fields; more gives 431 and closes the connection.
  std::size_t max_header_bytes = 8 * 1024;
  /// Body (Content-Length or chunked); more gives 413 and closes the connection. ComfyUI's
  /// default --max-upload-size is 100 MB.
  std::uint64_t max_body_bytes = 100ull * 1024 * 1024;
  /// Requests read ahead of the one being answered on one connection (HTTP pipelining). When
  /// that many wait, the server stops reading the socket until one is answered.
  std::size_t pipeline_limit = 8;
  /// From the first byte of a request to its last one, and for writing one response. A client
  /// that stalls mid-request is disconnected.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  /// How long a keep-alive connection may sit idle between requests.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  std::string server_header = "comfyfarm";
  int backlog = 1024;
};

/// An HTTP/1.1 server on one io_context (run by any number of threads), a strand per
/// connection.
///
///   auto router = std::make_shared<Router>();
///   router->add(Method::kGet, "/history/{prompt_id}", handler);
///   auto server = HttpServer::create(io.context(), router, options);   // binds and listens
///   (*server)->start();                                                // accepts
///   write_ready_file(path, (*server)->local_address());
///   ...
///   (*server)->stop(std::chrono::seconds(10), [&] { io.stop(); });
///
/// Life cycle: created (listening, not accepting) --start()--> accepting --stop()--> stopping
/// (acceptor closed, idle connections closed, in-flight requests finish; WebSockets get
/// 1001) --all connections gone, or grace expired and the rest force-closed--> stopped.
class HttpServer {
 public:
  /// Binds and listens on options.listen. kInvalidArgument for a host that does not resolve,
  /// kUnavailable when the address cannot be bound (in use, not local, no permission).
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> create(
      boost::asio::io_context& context, std::shared_ptr<const Router> router,
      HttpServerOptions options = {});

  /// Force-stops (grace 0) if still running. The server's internals live on until the last
  /// connection has finished, on the io_context; destroy it before the io_context.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Starts accepting connections. Call once.
  void start();

  /// Starts a graceful stop and returns at once (any thread). `on_stopped` runs once on the
  /// io_context when the last connection has ended: idle ones are closed now; in-flight requests
  /// (including those already read ahead on the same connection) finish and their responses get
  /// "Connection: close"; after `grace` the remaining connections are closed and their handlers
  /// cancelled (terminal cancellation of what they co_await). Later calls only add nothing.
  void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped = {});

  /// The bound address as "HOST:PORT" (with the actual port when listening on port 0).
  std::string local_address() const;
  std::uint16_t port() const;
  /// Open connections (HTTP and WebSocket).
  std::size_t connection_count() const;

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace comfyfarm::net
