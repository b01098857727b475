// WebSocketSession: one accepted server-side WebSocket, as route handlers and broadcast hubs see
// it. Beast stays in websocket_session.cpp; this header is an interface.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace comfyfarm::net {

/// One complete WebSocket message (text or binary), as received or sent.
struct WebSocketMessage {
  std::string data;
  bool binary = false;
};

/// Close codes used by comfyfarm (RFC 6455 §7.4.1).
enum class CloseCode : std::uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,          ///< server shutting down
  kProtocolError = 1002,
  kPolicyViolation = 1008,    ///< a slow reader overflowed its outbound queue
  kMessageTooBig = 1009,
  kInternalError = 1011,
};

/// Limits and timeouts of a server-side session. The outbound queue is bounded by both counts;
/// a send that would exceed either closes the session (a slow reader is closed, never allowed to
/// grow memory). A single message larger than max_queued_bytes therefore always closes it.
struct WebSocketOptions {
  // A declared constructor keeps this a non-aggregate: GCC 12 destroys an aggregate temporary
  // (`{}` as an argument) inside a co_await expression twice.
  WebSocketOptions() = default;

  std::size_t max_incoming_message_bytes = 16 * 1024 * 1024;
  std::size_t max_queued_messages = 4096;
  std::size_t max_queued_bytes = 64 * 1024 * 1024;
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  /// With keep-alive pings, a ping goes out after idle_timeout/2 of silence and the session is
  /// closed when nothing arrives within idle_timeout.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  bool keep_alive_pings = true;
  /// How long a close handshake may take before the socket is simply closed.
  std::chrono::milliseconds close_timeout{std::chrono::seconds(5)};
};

/// Why and how a session ended; given to the on_close callback once.
struct WebSocketCloseInfo {
  std::uint16_t code = 0;  ///< the close code received or sent; 0 when the TCP connection died
  std::string reason;      ///< the close reason, or a description of the failure
  bool by_peer = false;    ///< the client started the close (or the connection dropped)
  bool slow_reader = false;  ///< closed because the outbound queue overflowed
};

/// Counters of the outbound queue. queued_* include messages handed to send_* whose post to the
/// session's strand has not run yet, so the bound covers all memory held for this session.
struct WebSocketStats {
  std::size_t queued_messages = 0;
  std::size_t queued_bytes = 0;
  std::size_t peak_queued_bytes = 0;  ///< highest queued_bytes ever reached
  std::uint64_t sent_messages = 0;    ///< written to the socket
  std::uint64_t dropped_messages = 0; ///< refused by send_* (queue full or session closed)
  bool closed_for_slow_reader = false;
};

/// A server-side WebSocket session, handed to a WebSocket route's handler after the handshake.
///
/// Threads: send_*, close, stats and id may be called from any thread or strand; they never
/// block (they post to the session's strand). The on_message/on_close callbacks run on the
/// session's strand; set them inside the route handler (before the first message is read).
///
/// Life cycle:  open --(close(), server stop, slow reader)--> closing --> closed
///              open --(peer close, error, idle timeout)----------------> closed
/// on_close runs exactly once, on entering closed. Holding the shared_ptr keeps the object, not
/// the connection, alive.
class WebSocketSession {
 public:
  using MessageHandler = std::function<void(WebSocketMessage message)>;
  using CloseHandler = std::function<void(const WebSocketCloseInfo& info)>;

  virtual ~WebSocketSession() = default;

  /// Called on the session's strand for each complete incoming message.
  virtual void on_message(MessageHandler handler) = 0;
  /// Called once on the session's strand when the session has ended.
  virtual void on_close(CloseHandler handler) = 0;

  /// Queues a text frame. False when the session is not open or the queue is full (then the
  /// session is being closed with kPolicyViolation).
  virtual bool send_text(std::string text) = 0;
  /// Queues a binary frame; same contract as send_text.
  virtual bool send_binary(std::string bytes) = 0;
  /// Queues a frame whose payload is shared with other sessions (broadcast without copies).
  virtual bool send_shared(std::shared_ptr<const std::string> payload, bool binary) = 0;

  /// Starts a close handshake; queued messages not yet written are dropped.
  virtual void close(CloseCode code = CloseCode::kNormal, std::string reason = {}) = 0;

  virtual bool is_open() const = 0;
  virtual WebSocketStats stats() const = 0;
  /// A process-unique id (for logs and hub tables).
  virtual std::uint64_t id() const = 0;
  /// The peer as "HOST:PORT".
  virtual const std::string& remote_address() const = 0;
  /// The session's strand (to co_spawn work that touches state shared with the callbacks).
  virtual boost::asio::any_io_executor get_executor() const = 0;
};

}  // namespace comfyfarm::net
