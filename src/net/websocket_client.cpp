// WebSocketClient: Beast's WebSocket client side. A background reader fills a bounded inbox
// so that read() can time out without tearing the connection down.
#include "net/websocket_client.hpp"

#include "net/detail/io_error.hpp"
#include "net/detail/url.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <variant>
#include <vector>

namespace comfyfarm::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

bool slot_cancelled(const asio::cancellation_state& state) {
  return state.cancelled() != asio::cancellation_type::none;
}

}  // namespace

struct WebSocketClient::Impl : std::enable_shared_from_this<WebSocketClient::Impl> {
  Impl(asio::any_io_executor ex, detail::ParsedUrl u, WebSocketClientOptions o)
      : strand(asio::make_strand(ex)),
        ws(strand),
        url(std::move(u)),
        options(std::move(o)),
        name("ws://" + url.host_header + url.target),
        resolver(strand),
        space_signal(strand) {}

  void abort() { beast::get_lowest_layer(ws).close(); }

  void wake_reader() {
    if (read_waiter) read_waiter->cancel();
  }

  void cancel_now() {
    ++epoch;
    resolver.cancel();
    wake_reader();
    if (writing || closing || connecting) abort();
  }

  void end(const boost::system::error_code& ec) {
    if (ended) return;
    ended = true;
    open.store(false, std::memory_order_release);
    if (ec == websocket::error::closed) {
      const auto& reason = ws.reason();
      end_error = fail(Errc::kUnavailable,
                       fmt::format("{}: closed by peer (code {}: {})", name,
                                   static_cast<unsigned>(reason.code),
                                   std::string_view(reason.reason.data(), reason.reason.size())));
    } else if (ec == asio::error::operation_aborted) {
      end_error = fail(Errc::kUnavailable, name + ": connection closed");
    } else {
      end_error = detail::io_error(ec, name);
    }
    // After a close frame Beast has already torn the connection down (and a close() of ours may
    // still be finishing); otherwise make sure the socket is gone.
    if (ec != websocket::error::closed) abort();
    wake_reader();
  }

  asio::awaitable<void> read_loop() {
    co_await asio::this_coro::throw_if_cancelled(false);
    beast::flat_buffer buffer;
    for (;;) {
      while (inbox.size() >= options.max_buffered_messages && !ended) {
        space_signal.expires_at(asio::steady_timer::time_point::max());
        co_await space_signal.async_wait(kAwait);
      }
      if (ended) break;
      auto [ec, n] = co_await ws.async_read(buffer, kAwait);
      if (ec) {
        end(ec);
        break;
      }
      inbox.push_back(WebSocketMessage{beast::buffers_to_string(buffer.data()), !ws.got_text()});
      buffer.consume(buffer.size());
      wake_reader();
    }
  }

  asio::awaitable<Result<void>> do_connect() {
    using namespace asio::experimental::awaitable_operators;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto state = co_await asio::this_coro::cancellation_state;
    const auto my_epoch = epoch;
    auto cancelled = [&] { return epoch != my_epoch || slot_cancelled(state); };
    const auto deadline = Clock::now() + options.connect_timeout;
    const auto what = "connect to " + name;
    connecting = true;
    struct Done {
      bool& flag;
      ~Done() { flag = false; }
    } done{connecting};

    std::vector<tcp::endpoint> endpoints;
    boost::system::error_code aec;
    const auto address = asio::ip::make_address(url.host, aec);
    if (!aec) {
      endpoints.emplace_back(address, url.port);
    } else {
      asio::steady_timer timer(strand, deadline);
      const auto service = std::to_string(url.port);
      auto raced = co_await (resolver.async_resolve(url.host, service, kAwait) ||
                             timer.async_wait(kAwait));
      if (cancelled()) co_return fail(Errc::kCancelled, what + ": cancelled");
      if (raced.index() == 1) co_return fail(Errc::kTimeout, what + ": name resolution timed out");
      auto [rec, results] = std::get<0>(std::move(raced));
      if (rec) co_return detail::io_error(rec, what);
      for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    }

    auto& lowest = beast::get_lowest_layer(ws);
    lowest.expires_at(deadline);
    auto [cec, ep] = co_await lowest.async_connect(endpoints, kAwait);
    if (cec) {
      abort();
      if (cancelled()) co_return fail(Errc::kCancelled, what + ": cancelled");
      co_return detail::io_error(cec, what);
    }
    lowest.expires_never();
    boost::system::error_code ignored;
    lowest.socket().set_option(tcp::no_delay(true), ignored);

    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout =
        std::max<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(1));
    if (options.idle_timeout.count() > 0) {
      timeouts.idle_timeout = options.idle_timeout;
      timeouts.keep_alive_pings = true;
    } else {
      timeouts.idle_timeout = websocket::stream_base::none();
      timeouts.keep_alive_pings = false;
    }
    ws.set_option(timeouts);
    ws.set_option(websocket::stream_base::decorator(
        [agent = options.user_agent, headers = options.headers](websocket::request_type& req) {
          for (const auto& [field, value] : headers) {
            if (!iequals(field, "Origin")) req.set(field, value);
          }
          if (!agent.empty() && !headers.contains("User-Agent")) {
            req.set(http::field::user_agent, agent);
          }
          req.erase(http::field::origin);  // never, whatever else is configured
        }));
    ws.read_message_max(options.max_message_bytes);

    websocket::response_type response;
    auto [hec] = co_await ws.async_handshake(response, url.host_header, url.target, kAwait);
    if (hec) {
      abort();
      if (cancelled()) co_return fail(Errc::kCancelled, what + ": cancelled");
      if (hec == websocket::error::upgrade_declined) {
        const auto status = response.result_int();
        co_return fail(status == 404 ? Errc::kNotFound : Errc::kRejected,
                       fmt::format("{}: upgrade refused with HTTP {}", what, status));
      }
      co_return detail::io_error(hec, "websocket handshake with " + name);
    }
    if (cancelled()) {
      abort();
      co_return fail(Errc::kCancelled, what + ": cancelled");
    }
    open.store(true, std::memory_order_release);
    auto self = shared_from_this();
    asio::co_spawn(strand, self->read_loop(), [self](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("websocket client {}: reader failed: {}", self->name, ex.what());
      }
      self->end(asio::error::operation_aborted);
    });
    co_return Result<void>{};
  }

  asio::awaitable<Result<WebSocketMessage>> do_read(std::chrono::milliseconds timeout) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto state = co_await asio::this_coro::cancellation_state;
    if (reading) co_return fail(Errc::kFailedPrecondition, name + ": a read is already pending");
    reading = true;
    const auto my_epoch = epoch;
    const auto deadline = Clock::now() + timeout;
    Result<WebSocketMessage> out = fail(Errc::kInternal, "unreachable");
    for (;;) {
      if (!inbox.empty()) {
        out = std::move(inbox.front());
        inbox.pop_front();
        space_signal.cancel();
        break;
      }
      if (ended) {
        out = end_error;
        break;
      }
      if (epoch != my_epoch || slot_cancelled(state)) {
        out = fail(Errc::kCancelled, name + ": read cancelled");
        break;
      }
      if (Clock::now() >= deadline) {
        out = fail(Errc::kTimeout,
                   fmt::format("{}: no message within {} ms", name, timeout.count()));
        break;
      }
      asio::steady_timer wait(strand, deadline);
      read_waiter = &wait;
      co_await wait.async_wait(kAwait);
      read_waiter = nullptr;
    }
    reading = false;
    co_return out;
  }

  asio::awaitable<Result<void>> do_write(std::string data, bool binary) {
    using namespace asio::experimental::awaitable_operators;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto state = co_await asio::this_coro::cancellation_state;
    if (writing) co_return fail(Errc::kFailedPrecondition, name + ": a write is already pending");
    if (ended || closing || !open.load()) co_return fail(Errc::kUnavailable, name + ": not open");
    writing = true;
    const auto my_epoch = epoch;
    ws.binary(binary);
    asio::steady_timer timer(strand, Clock::now() + options.write_timeout);
    auto raced = co_await (ws.async_write(asio::buffer(data), kAwait) || timer.async_wait(kAwait));
    writing = false;
    if (epoch != my_epoch || slot_cancelled(state)) {
      abort();  // a cancelled write leaves the stream undefined
      co_return fail(Errc::kCancelled, name + ": write cancelled");
    }
    if (raced.index() == 1) {
      abort();
      co_return fail(Errc::kTimeout, fmt::format("{}: write took longer than {} ms", name,
                                                 options.write_timeout.count()));
    }
    auto [ec, n] = std::get<0>(raced);
    if (ec) {
      abort();
      co_return detail::io_error(ec, "write to " + name);
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> do_close(CloseCode code, std::string reason) {
    using namespace asio::experimental::awaitable_operators;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto state = co_await asio::this_coro::cancellation_state;
    if (ended || !open.load()) co_return Result<void>{};
    if (closing) co_return fail(Errc::kFailedPrecondition, name + ": close already in progress");
    closing = true;
    open.store(false, std::memory_order_release);
    const auto my_epoch = epoch;
    if (reason.size() > 120) reason.resize(120);
    websocket::close_reason cr(static_cast<websocket::close_code>(code), reason);
    asio::steady_timer timer(strand, Clock::now() + options.close_timeout);
    auto raced = co_await (ws.async_close(cr, kAwait) || timer.async_wait(kAwait));
    closing = false;
    if (epoch != my_epoch || slot_cancelled(state)) {
      abort();
      co_return fail(Errc::kCancelled, name + ": close cancelled");
    }
    if (raced.index() == 1) {
      abort();
      co_return fail(Errc::kTimeout, name + ": close handshake timed out");
    }
    auto [ec] = std::get<0>(raced);
    // The background reader may see the peer's close frame first and end the stream, which
    // completes our close op with operation_aborted although the handshake happened (a
    // cancellation of ours was handled above).
    if (ec && ec != websocket::error::closed && ec != asio::error::operation_aborted &&
        !detail::is_connection_closed(ec) && !ended) {
      abort();
      co_return detail::io_error(ec, "close " + name);
    }
    co_return Result<void>{};
  }

  asio::any_io_executor strand;
  websocket::stream<beast::tcp_stream> ws;
  detail::ParsedUrl url;
  WebSocketClientOptions options;
  std::string name;  // "ws://host:port/path?query", for messages

  // Strand-only.
  tcp::resolver resolver;
  asio::steady_timer space_signal;  // wakes the background reader when the inbox has room
  asio::steady_timer* read_waiter = nullptr;
  std::deque<WebSocketMessage> inbox;
  Error end_error;
  std::uint64_t epoch = 0;
  bool ended = false;
  bool reading = false;
  bool writing = false;
  bool closing = false;
  bool connecting = false;

  std::atomic<bool> open{false};
};

WebSocketClient& WebSocketClient::operator=(WebSocketClient&& other) noexcept {
  if (this != &other) {
    if (impl_) asio::post(impl_->strand, [impl = impl_] { impl->abort(); });
    impl_ = std::move(other.impl_);
  }
  return *this;
}

WebSocketClient::~WebSocketClient() {
  if (impl_) asio::post(impl_->strand, [impl = impl_] { impl->abort(); });
}

asio::awaitable<Result<WebSocketClient>> WebSocketClient::connect(asio::any_io_executor executor,
                                                                  std::string_view url,
                                                                  WebSocketClientOptions options) {
  auto parsed = detail::parse_url(url, "ws", 80);
  if (!parsed) co_return parsed.error();
  auto impl = std::make_shared<Impl>(std::move(executor), std::move(*parsed), std::move(options));
  auto connected = co_await asio::co_spawn(impl->strand, impl->do_connect(), asio::use_awaitable);
  if (!connected) co_return connected.error();
  co_return WebSocketClient(std::move(impl));
}

asio::awaitable<Result<WebSocketMessage>> WebSocketClient::read(std::chrono::milliseconds timeout) {
  if (!impl_) co_return fail(Errc::kFailedPrecondition, "read on an empty WebSocketClient");
  auto impl = impl_;
  co_return co_await asio::co_spawn(impl->strand, impl->do_read(timeout), asio::use_awaitable);
}

asio::awaitable<Result<void>> WebSocketClient::write_text(std::string text) {
  if (!impl_) co_return fail(Errc::kFailedPrecondition, "write on an empty WebSocketClient");
  auto impl = impl_;
  co_return co_await asio::co_spawn(impl->strand, impl->do_write(std::move(text), false),
                                    asio::use_awaitable);
}

asio::awaitable<Result<void>> WebSocketClient::write_binary(std::string bytes) {
  if (!impl_) co_return fail(Errc::kFailedPrecondition, "write on an empty WebSocketClient");
  auto impl = impl_;
  co_return co_await asio::co_spawn(impl->strand, impl->do_write(std::move(bytes), true),
                                    asio::use_awaitable);
}

asio::awaitable<Result<void>> WebSocketClient::close(CloseCode code, std::string reason) {
  if (!impl_) co_return fail(Errc::kFailedPrecondition, "close on an empty WebSocketClient");
  auto impl = impl_;
  co_return co_await asio::co_spawn(impl->strand, impl->do_close(code, std::move(reason)),
                                    asio::use_awaitable);
}

void WebSocketClient::cancel() {
  if (!impl_) return;
  asio::post(impl_->strand, [impl = impl_] { impl->cancel_now(); });
}

bool WebSocketClient::is_open() const { return impl_ && impl_->open.load(std::memory_order_acquire); }

}  // namespace comfyfarm::net
