// The server side of a WebSocket connection (Beast's websocket::stream lives only here).
// One reader coroutine, one writer coroutine, both on the connection's strand; the outbound
// queue is bounded by atomically reserved counters so that send_* from any thread never lets
// memory grow past the limits.
#include "net/websocket_session.hpp"

#include "net/detail/connection_registry.hpp"
#include "net/detail/io_error.hpp"
#include "net/detail/server_shared.hpp"
#include "net/detail/websocket_upgrade.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>

namespace comfyfarm::net::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

void log_exception(std::string_view what, const std::string& remote, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("websocket: {} {} failed: {}", remote, what, ex.what());
  } catch (...) {
    spdlog::error("websocket: {} {} failed with an unknown exception", remote, what);
  }
}

class WebSocketSessionImpl final : public WebSocketSession,
                                   public Connection,
                                   public std::enable_shared_from_this<WebSocketSessionImpl> {
 public:
  WebSocketSessionImpl(beast::tcp_stream stream, const WebSocketOptions& options,
                       std::shared_ptr<ServerShared> shared, std::string remote)
      : ws_(std::move(stream)),
        strand_(ws_.get_executor()),
        options_(options),
        shared_(std::move(shared)),
        id_(next_connection_id()),
        remote_(std::move(remote)),
        write_signal_(strand_),
        close_timer_(strand_) {}

  // ---- WebSocketSession (any thread unless noted) ----

  void on_message(MessageHandler handler) override { on_message_ = std::move(handler); }
  void on_close(CloseHandler handler) override { on_close_ = std::move(handler); }

  bool send_text(std::string text) override {
    return send_shared(std::make_shared<const std::string>(std::move(text)), false);
  }
  bool send_binary(std::string bytes) override {
    return send_shared(std::make_shared<const std::string>(std::move(bytes)), true);
  }

  bool send_shared(std::shared_ptr<const std::string> payload, bool binary) override {
    if (!payload || !accepting_.load(std::memory_order_acquire)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const std::size_t size = payload->size();
    if (!reserve(size)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      overflow();
      return false;
    }
    asio::post(strand_, [self = shared_from_this(), payload = std::move(payload), binary]() mutable {
      self->enqueue(std::move(payload), binary);
    });
    return true;
  }

  void close(CloseCode code, std::string reason) override {
    asio::dispatch(strand_, [self = shared_from_this(), code, reason = std::move(reason)]() mutable {
      self->begin_close(code, std::move(reason), false);
    });
  }

  bool is_open() const override { return accepting_.load(std::memory_order_acquire); }

  WebSocketStats stats() const override {
    WebSocketStats s;
    s.queued_messages = queued_messages_.load(std::memory_order_relaxed);
    s.queued_bytes = queued_bytes_.load(std::memory_order_relaxed);
    s.peak_queued_bytes = peak_queued_bytes_.load(std::memory_order_relaxed);
    s.sent_messages = sent_.load(std::memory_order_relaxed);
    s.dropped_messages = dropped_.load(std::memory_order_relaxed);
    s.closed_for_slow_reader = slow_reader_.load(std::memory_order_relaxed);
    return s;
  }

  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return remote_; }
  asio::any_io_executor get_executor() const override { return strand_; }

  // ---- Connection ----

  void shutdown(bool force) override {
    asio::dispatch(strand_, [self = shared_from_this(), force] {
      if (force) {
        self->force_close();
      } else {
        self->begin_close(CloseCode::kGoingAway, "server shutting down", false);
      }
    });
  }

  // ---- life cycle (strand) ----

  bool register_with_server() {
    registered_ = shared_->registry.add(id_, weak_from_this());
    return registered_;
  }

  void run(http::request<http::string_body> upgrade, Request request, const Route& route) {
    auto self = shared_from_this();
    asio::co_spawn(strand_, self->main(std::move(upgrade), std::move(request), &route),
                   [self](std::exception_ptr e) {
                     log_exception("session", self->remote_, e);
                     self->finish();
                   });
  }

 private:
  enum class State { kHandshake, kOpen, kClosing, kClosed };

  struct Outgoing {
    std::shared_ptr<const std::string> payload;
    bool binary = false;
  };

  bool reserve(std::size_t size) {
    std::size_t bytes = queued_bytes_.load(std::memory_order_relaxed);
    do {
      if (size > options_.max_queued_bytes || bytes > options_.max_queued_bytes - size) return false;
    } while (!queued_bytes_.compare_exchange_weak(bytes, bytes + size, std::memory_order_acq_rel));
    std::size_t messages = queued_messages_.load(std::memory_order_relaxed);
    do {
      if (messages >= options_.max_queued_messages) {
        queued_bytes_.fetch_sub(size, std::memory_order_acq_rel);
        return false;
      }
    } while (!queued_messages_.compare_exchange_weak(messages, messages + 1,
                                                     std::memory_order_acq_rel));
    std::size_t peak = peak_queued_bytes_.load(std::memory_order_relaxed);
    const std::size_t now = bytes + size;
    while (now > peak &&
           !peak_queued_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return true;
  }

  void release(std::size_t size) {
    queued_bytes_.fetch_sub(size, std::memory_order_acq_rel);
    queued_messages_.fetch_sub(1, std::memory_order_acq_rel);
  }

  void overflow() {
    if (!accepting_.exchange(false, std::memory_order_acq_rel)) return;
    slow_reader_.store(true, std::memory_order_relaxed);
    asio::post(strand_, [self = shared_from_this()] {
      spdlog::warn("websocket: closing slow reader {} (outbound queue full: {} messages, {} bytes)",
                   self->remote_, self->queued_messages_.load(), self->queued_bytes_.load());
      self->begin_close(CloseCode::kPolicyViolation, "slow reader: outbound queue full", true);
    });
  }

  void enqueue(std::shared_ptr<const std::string> payload, bool binary) {
    if (state_ != State::kOpen) {
      release(payload->size());
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(Outgoing{std::move(payload), binary});
    write_signal_.cancel();
  }

  void drop_queue() {
    for (auto& item : queue_) {
      release(item.payload->size());
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    queue_.clear();
  }

  asio::awaitable<void> main(http::request<http::string_body> upgrade, Request request,
                             const Route* route) {
    co_await asio::this_coro::throw_if_cancelled(false);
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = options_.idle_timeout;
    timeouts.keep_alive_pings = options_.keep_alive_pings;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [server = shared_->options.server_header](websocket::response_type& res) {
          if (!server.empty()) res.set(http::field::server, server);
        }));
    ws_.read_message_max(options_.max_incoming_message_bytes);

    auto [ec] = co_await ws_.async_accept(upgrade, kAwait);
    if (ec) {
      spdlog::debug("websocket: handshake with {} failed: {}", remote_, ec.message());
      co_return;
    }
    if (state_ != State::kHandshake) co_return;  // force-closed meanwhile
    state_ = State::kOpen;
    accepting_.store(true, std::memory_order_release);
    if (stop_requested_) {
      begin_close(CloseCode::kGoingAway, "server shutting down", false);
    } else {
      try {
        route->websocket(request, shared_from_this());
      } catch (const std::exception& e) {
        spdlog::error("websocket: handler for {} from {} threw: {}", request.path, remote_, e.what());
        begin_close(CloseCode::kInternalError, "handler failed", false);
      }
    }

    auto self = shared_from_this();
    asio::co_spawn(strand_, self->write_loop(), [self](std::exception_ptr e) {
      log_exception("writer", self->remote_, e);
    });
    co_await read_loop();
  }

  asio::awaitable<void> read_loop() {
    beast::flat_buffer buffer;
    for (;;) {
      auto [ec, n] = co_await ws_.async_read(buffer, kAwait);
      if (ec) {
        record_end(ec);
        break;
      }
      WebSocketMessage message{beast::buffers_to_string(buffer.data()), !ws_.got_text()};
      buffer.consume(buffer.size());
      if (state_ != State::kOpen || !on_message_) continue;
      try {
        on_message_(std::move(message));
      } catch (const std::exception& e) {
        spdlog::error("websocket: on_message for {} threw: {}", remote_, e.what());
        begin_close(CloseCode::kInternalError, "message handler failed", false);
      }
    }
  }

  void record_end(const boost::system::error_code& ec) {
    if (state_ == State::kClosing) {
      // We started the close; keep our code and reason. Our close completing reads as `closed`.
      return;
    }
    if (ec == websocket::error::closed) {
      close_info_.code = static_cast<std::uint16_t>(ws_.reason().code);
      const auto& text = ws_.reason().reason;
      close_info_.reason = std::string(text.data(), text.size());
      close_info_.by_peer = true;
    } else if (ec == websocket::error::message_too_big) {
      close_info_.code = static_cast<std::uint16_t>(CloseCode::kMessageTooBig);
      close_info_.reason = "incoming message too big";
    } else if (ec == beast::error::timeout) {
      close_info_.reason = "idle timeout";
    } else {
      close_info_.reason = ec.message();
      close_info_.by_peer = is_connection_closed(ec);
    }
  }

  asio::awaitable<void> write_loop() {
    co_await asio::this_coro::throw_if_cancelled(false);
    for (;;) {
      while (queue_.empty() && state_ == State::kOpen) {
        write_signal_.expires_at(asio::steady_timer::time_point::max());
        co_await write_signal_.async_wait(kAwait);
      }
      if (state_ != State::kOpen) break;
      Outgoing item = std::move(queue_.front());
      queue_.pop_front();
      ws_.binary(item.binary);
      auto [ec, n] = co_await ws_.async_write(asio::buffer(*item.payload), kAwait);
      release(item.payload->size());
      if (ec) {
        if (state_ == State::kOpen) {
          spdlog::debug("websocket: write to {} failed: {}", remote_, ec.message());
          close_info_.reason = ec.message();
          force_close();
        }
        break;
      }
      sent_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void begin_close(CloseCode code, std::string reason, bool slow_reader) {
    if (state_ == State::kHandshake) {
      stop_requested_ = true;
      return;
    }
    if (state_ != State::kOpen) return;
    state_ = State::kClosing;
    accepting_.store(false, std::memory_order_release);
    close_info_.code = static_cast<std::uint16_t>(code);
    close_info_.reason = reason;
    close_info_.by_peer = false;
    close_info_.slow_reader = slow_reader;
    if (reason.size() > 120) reason.resize(120);  // a close frame holds at most 123 bytes
    drop_queue();
    write_signal_.cancel();

    close_timer_.expires_after(options_.close_timeout);
    close_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->state_ == State::kClosed) return;
      spdlog::debug("websocket: close handshake with {} timed out", self->remote_);
      self->force_close();
    });
    auto self = shared_from_this();
    asio::co_spawn(strand_, self->close_handshake(code, std::move(reason)),
                   [self](std::exception_ptr e) { log_exception("close", self->remote_, e); });
  }

  asio::awaitable<void> close_handshake(CloseCode code, std::string reason) {
    co_await asio::this_coro::throw_if_cancelled(false);
    websocket::close_reason cr(static_cast<websocket::close_code>(code), reason);
    auto [ec] = co_await ws_.async_close(cr, kAwait);
    if (ec) spdlog::debug("websocket: close with {}: {}", remote_, ec.message());
  }

  void force_close() {
    if (state_ == State::kClosed || socket_closed_) return;
    socket_closed_ = true;
    accepting_.store(false, std::memory_order_release);
    if (state_ == State::kOpen || state_ == State::kHandshake) {
      if (close_info_.reason.empty()) close_info_.reason = "closed by server";
    }
    beast::get_lowest_layer(ws_).close();
  }

  // Runs once, when the session's main coroutine has ended (the reader saw the end).
  void finish() {
    if (state_ == State::kClosed) return;
    const bool was_open = state_ != State::kHandshake;
    state_ = State::kClosed;
    accepting_.store(false, std::memory_order_release);
    close_timer_.cancel();
    drop_queue();
    write_signal_.cancel();
    if (!socket_closed_) {
      socket_closed_ = true;
      beast::get_lowest_layer(ws_).close();
    }
    if (registered_) {
      registered_ = false;
      shared_->registry.remove(id_);
    }
    auto on_close = std::move(on_close_);
    on_close_ = nullptr;
    on_message_ = nullptr;  // handlers often capture the session; break the cycle
    if (was_open && on_close) {
      try {
        on_close(close_info_);
      } catch (const std::exception& e) {
        spdlog::error("websocket: on_close for {} threw: {}", remote_, e.what());
      }
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  asio::any_io_executor strand_;
  const WebSocketOptions options_;
  std::shared_ptr<ServerShared> shared_;
  const std::uint64_t id_;
  const std::string remote_;

  // Strand-only state.
  State state_ = State::kHandshake;
  bool stop_requested_ = false;
  bool registered_ = false;
  bool socket_closed_ = false;
  std::deque<Outgoing> queue_;
  asio::steady_timer write_signal_;
  asio::steady_timer close_timer_;
  MessageHandler on_message_;
  CloseHandler on_close_;
  WebSocketCloseInfo close_info_;

  // Any thread.
  std::atomic<bool> accepting_{false};
  std::atomic<bool> slow_reader_{false};
  std::atomic<std::size_t> queued_bytes_{0};
  std::atomic<std::size_t> queued_messages_{0};
  std::atomic<std::size_t> peak_queued_bytes_{0};
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace

void start_websocket_session(beast::tcp_stream stream, http::request<http::string_body> upgrade,
                             Request request, const Route& route,
                             std::shared_ptr<ServerShared> shared) {
  auto remote = request.remote_address;
  auto session = std::make_shared<WebSocketSessionImpl>(std::move(stream), route.websocket_options,
                                                        std::move(shared), std::move(remote));
  if (!session->register_with_server()) {
    // The server began stopping after the upgrade request was read; the socket just closes.
    return;
  }
  session->run(std::move(upgrade), std::move(request), route);
}

}  // namespace comfyfarm::net::detail
