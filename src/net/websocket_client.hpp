// WebSocketClient: a client WebSocket connection (to a ComfyUI /ws, or any ws:// URL) with
// connect/read/write deadlines and cancellation. Never sends an Origin header.
#pragma once

#include "core/error.hpp"
#include "net/http_types.hpp"
#include "net/websocket_session.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace comfyfarm::net {

struct WebSocketClientOptions {
  // A declared constructor keeps this a non-aggregate: GCC 12 destroys an aggregate temporary
  // (`{}` as an argument) inside a co_await expression twice.
  WebSocketClientOptions() = default;

  /// Name resolution, TCP connect and the opening handshake together.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds close_timeout{std::chrono::seconds(5)};
  std::size_t max_message_bytes = 64 * 1024 * 1024;
  /// Messages read ahead of read(); while that many wait, the socket is not read (TCP
  /// backpressure), so memory stays bounded.
  std::size_t max_buffered_messages = 1024;
  /// 0 disables. Otherwise a ping goes out after idle_timeout/2 of silence and the connection
  /// fails (kTimeout on read) when nothing arrives within idle_timeout.
  std::chrono::milliseconds idle_timeout{0};
  std::string user_agent = "comfyfarm";
  Headers headers;  ///< extra handshake headers; any Origin field is dropped
};

/// A connected WebSocket client. Messages are read in the background into a bounded buffer;
/// read() takes the oldest, waiting at most its timeout (a read timeout does not harm the
/// connection). One read() and one write at a time; calls may come from any coroutine, the
/// work runs on the client's strand.
///
/// Errors: refused -> kUnavailable "connection refused"; an HTTP answer instead of the
/// upgrade -> kNotFound (404) or kRejected (other statuses, in the message); a deadline ->
/// kTimeout; cancel() or the awaiting coroutine's cancellation slot -> kCancelled; the peer
/// closed -> kUnavailable "closed by peer (code N: reason)" once the buffered messages are read.
class WebSocketClient {
 public:
  /// An empty client; every operation fails with kFailedPrecondition.
  WebSocketClient() = default;
  WebSocketClient(WebSocketClient&&) noexcept = default;
  WebSocketClient& operator=(WebSocketClient&& other) noexcept;
  /// Closes the TCP connection abruptly if still open (call close() first for a clean close).
  ~WebSocketClient();

  /// Connects to "ws://host[:port]/path?query" (wss is refused with kInvalidArgument).
  static boost::asio::awaitable<Result<WebSocketClient>> connect(
      boost::asio::any_io_executor executor, std::string_view url,
      WebSocketClientOptions options = {});

  /// The next message, waiting at most `timeout` (kTimeout; the connection stays usable).
  boost::asio::awaitable<Result<WebSocketMessage>> read(std::chrono::milliseconds timeout);
  boost::asio::awaitable<Result<void>> write_text(std::string text);
  boost::asio::awaitable<Result<void>> write_binary(std::string bytes);
  /// Sends a close frame and waits (close_timeout) for the peer's; idempotent.
  boost::asio::awaitable<Result<void>> close(CloseCode code = CloseCode::kNormal,
                                             std::string reason = {});

  /// Ends a pending read() with kCancelled (the connection stays usable) and aborts a pending
  /// write or close by closing the connection. Thread-safe, non-blocking.
  void cancel();

  /// False once the connection has ended (buffered messages may still be read).
  bool is_open() const;

  struct Impl;

 private:
  explicit WebSocketClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace comfyfarm::net
