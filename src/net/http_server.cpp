// HttpServer and its per-connection HttpSession (the only translation unit with Beast's HTTP
// server side). A session runs two coroutines on its strand:
//
//   reader: wait for a request's first byte (idle) -> read it (request_timeout, size limits)
//           -> queue it; stop reading while pipeline_limit requests wait
//   writer: take the oldest queued request -> route + handler -> write the response
//
// so responses leave in request order while the next requests are already parsed.
#include "net/http_server.hpp"

#include "net/detail/connection_registry.hpp"
#include "net/detail/server_shared.hpp"
#include "net/detail/websocket_upgrade.hpp"
#include "net/error_response.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <optional>

namespace comfyfarm::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kLingerMaxBytes = 4 * 1024 * 1024;
constexpr auto kLingerTime = std::chrono::seconds(1);

using BeastRequest = http::request<http::string_body>;
using BeastResponse = http::response<http::string_body>;

std::string endpoint_string(const tcp::endpoint& ep) {
  return format_host_port(ep.address().to_string(), ep.port());
}

Request to_request(BeastRequest&& m, const std::string& remote) {
  Request r;
  r.method_name = std::string(m.method_string());
  r.method = parse_method(r.method_name);
  r.target = std::string(m.target());
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query_string = r.target.substr(q + 1);
  r.version = m.version();
  for (const auto& field : m) {
    r.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  r.body = std::move(m.body());
  r.remote_address = remote;
  return r;
}

BeastResponse to_beast(Response&& res, unsigned version, bool keep_alive, bool head,
                       const std::string& server_header) {
  BeastResponse msg;
  msg.version(version);
  if (res.status < 100 || res.status > 999) {
    spdlog::error("http: handler returned invalid status {}; sending 500", res.status);
    res = json_error(500, Errc::kInternal, "handler returned an invalid status");
  }
  msg.result(static_cast<unsigned>(res.status));
  bool has_server = false;
  for (const auto& [name, value] : res.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Connection") ||
        iequals(name, "Transfer-Encoding")) {
      continue;  // the server owns framing
    }
    if (iequals(name, "Server")) has_server = true;
    msg.insert(name, value);
  }
  if (!has_server && !server_header.empty()) msg.set(http::field::server, server_header);
  const auto size = res.body.size();
  msg.body() = std::move(res.body);
  msg.keep_alive(keep_alive);
  msg.prepare_payload();
  if (head) {
    msg.body().clear();
    msg.content_length(size);
  }
  return msg;
}

// A request read off the socket, or a response decided without a handler (431, 413, 400).
struct Pending {
  std::optional<Request> request;
  std::optional<Response> response;  // answer this and close
  std::unique_ptr<BeastRequest> upgrade;
  const Route* websocket_route = nullptr;
  unsigned version = 11;
  bool keep_alive = true;
};

class HttpSession final : public detail::Connection,
                          public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, std::shared_ptr<detail::ServerShared> shared)
      : stream_(std::move(socket)),
        buffer_(shared->options.max_header_bytes + 64 * 1024),
        shared_(std::move(shared)),
        options_(shared_->options),
        id_(detail::next_connection_id()),
        queue_signal_(stream_.get_executor()),
        space_signal_(stream_.get_executor()),
        idle_timer_(stream_.get_executor()) {
    boost::system::error_code ec;
    const auto ep = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? std::string("?") : endpoint_string(ep);
    queue_signal_.expires_at(asio::steady_timer::time_point::max());
    space_signal_.expires_at(asio::steady_timer::time_point::max());
  }

  ~HttpSession() override { shared_->registry.remove(id_); }

  std::uint64_t id() const { return id_; }

  // Called on the acceptor's strand before any other use; nothing else touches the socket yet.
  void close_unstarted() {
    boost::system::error_code ec;
    stream_.socket().close(ec);
  }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->closed_) return;
      self->reader_running_ = true;
      self->writer_running_ = true;
      asio::co_spawn(self->stream_.get_executor(), self->read_loop(),
                     asio::bind_cancellation_slot(self->reader_cancel_.slot(),
                                                  [self](std::exception_ptr e) {
                                                    self->log_exception("reader", e);
                                                  }));
      asio::co_spawn(self->stream_.get_executor(), self->write_loop(),
                     asio::bind_cancellation_slot(self->writer_cancel_.slot(),
                                                  [self](std::exception_ptr e) {
                                                    self->log_exception("writer", e);
                                                  }));
    });
  }

  void shutdown(bool force) override {
    asio::dispatch(stream_.get_executor(),
                   [self = shared_from_this(), force] { self->on_shutdown(force); });
  }

 private:
  void log_exception(const char* which, std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("http: connection {} {} failed: {}", remote_, which, ex.what());
    } catch (...) {
      spdlog::error("http: connection {} {} failed with an unknown exception", remote_, which);
    }
  }

  static void notify(asio::steady_timer& signal) { signal.cancel(); }

  static asio::awaitable<void> wait(asio::steady_timer& signal) {
    signal.expires_at(asio::steady_timer::time_point::max());
    co_await signal.async_wait(kAwait);
  }

  void on_shutdown(bool force) {
    if (closed_) return;
    stopping_ = true;
    if (force) {
      if (writer_running_) writer_cancel_.emit(asio::cancellation_type::terminal);
      close_socket();
      return;
    }
    // Stop reading new requests; the writer finishes what was already read, then closes.
    if (reader_running_) reader_cancel_.emit(asio::cancellation_type::terminal);
    if (!busy_ && queue_.empty()) close_socket();
    notify(queue_signal_);
    notify(space_signal_);
  }

  void close_socket() {
    if (closed_) return;
    closed_ = true;
    disarm_idle();
    if (!upgraded_) {
      boost::system::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.close();
    }
    notify(queue_signal_);
    notify(space_signal_);
  }

  void maybe_arm_idle() {
    if (!reader_idle_ || busy_ || !queue_.empty() || closed_) return;
    if (stopping_) {
      close_socket();
      return;
    }
    const auto generation = ++idle_generation_;
    idle_timer_.expires_after(options_.idle_timeout);
    idle_timer_.async_wait([self = shared_from_this(), generation](boost::system::error_code ec) {
      if (ec || generation != self->idle_generation_) return;
      if (self->reader_idle_ && !self->busy_ && self->queue_.empty()) self->close_socket();
    });
  }

  void disarm_idle() {
    ++idle_generation_;
    idle_timer_.cancel();
  }

  // A response for a failed read, or nullopt when the connection simply ends.
  std::optional<Response> rejection(const boost::system::error_code& ec) const {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return json_error(431, Errc::kResourceExhausted,
                        fmt::format("request header fields exceed {} bytes", options_.max_header_bytes));
    }
    if (ec == http::error::body_limit) {
      return json_error(413, Errc::kResourceExhausted,
                        fmt::format("request body exceeds {} bytes", options_.max_body_bytes));
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return json_error(400, Errc::kInvalidArgument, "malformed request: " + ec.message());
    }
    return std::nullopt;  // EOF, reset, timeout (socket already closed), cancelled
  }

  void push(Pending pending) {
    queue_.push_back(std::move(pending));
    notify(queue_signal_);
  }

  asio::awaitable<void> read_loop() {
    co_await asio::this_coro::throw_if_cancelled(false);
    while (!stopping_ && !closed_) {
      if (buffer_.size() == 0) {
        // Between requests: no request timeout; the idle timer closes the connection when
        // nothing is in flight either.
        reader_idle_ = true;
        maybe_arm_idle();
        stream_.expires_never();
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), kAwait);
        reader_idle_ = false;
        disarm_idle();
        if (ec || stopping_ || closed_) break;
        buffer_.commit(n);
      }

      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      parser.body_limit(options_.max_body_bytes);
      stream_.expires_after(options_.request_timeout);
      auto [hec, hn] = co_await http::async_read_header(stream_, buffer_, parser, kAwait);
      if (stopping_ || closed_) break;
      if (hec) {
        if (auto res = rejection(hec)) {
          Pending p;
          p.response = std::move(*res);
          p.keep_alive = false;
          push(std::move(p));
        }
        break;
      }

      auto& head = parser.get();
      if (beast::websocket::is_upgrade(head)) {
        const auto target = std::string_view(head.target());
        const auto match = shared_->router->match(Method::kGet, target.substr(0, target.find('?')));
        if (match.kind == Router::Match::Kind::kFound && match.route->is_websocket()) {
          Pending p;
          p.upgrade = std::make_unique<BeastRequest>(parser.release());
          p.request = to_request(BeastRequest(*p.upgrade), remote_);
          p.request->path_params = match.params;
          p.websocket_route = match.route;
          p.version = p.upgrade->version();
          push(std::move(p));
          break;  // the connection now belongs to the WebSocket
        }
      }

      if (head[http::field::expect] == "100-continue" && !busy_ && queue_.empty()) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [cec, cn] = co_await asio::async_write(stream_, asio::buffer(kContinue), kAwait);
        if (cec || stopping_ || closed_) break;
      }

      auto [bec, bn] = co_await http::async_read(stream_, buffer_, parser, kAwait);
      if (stopping_ || closed_) break;
      if (bec) {
        if (auto res = rejection(bec)) {
          Pending p;
          p.response = std::move(*res);
          p.keep_alive = false;
          push(std::move(p));
        }
        break;
      }

      Pending p;
      auto message = parser.release();
      p.version = message.version();
      p.keep_alive = message.keep_alive();
      p.request = to_request(std::move(message), remote_);
      const bool keep_alive = p.keep_alive;
      push(std::move(p));
      if (!keep_alive) break;
      while (queue_.size() >= options_.pipeline_limit && !stopping_ && !closed_) {
        co_await wait(space_signal_);
      }
    }
    reader_running_ = false;
    reader_done_ = true;
    notify(queue_signal_);
  }

  asio::awaitable<Response> handle(Request& request) {
    const auto match = shared_->router->match(request.method, request.path);
    switch (match.kind) {
      case Router::Match::Kind::kNotFound:
        co_return error_response(
            fail(Errc::kNotFound, fmt::format("no route for {} {}", request.method_name, request.path)));
      case Router::Match::Kind::kBadPath:
        co_return json_error(400, Errc::kInvalidArgument, match.message);
      case Router::Match::Kind::kMethodNotAllowed: {
        auto res = json_error(405, Errc::kInvalidArgument,
                              fmt::format("method {} is not allowed for {} (allowed: {})",
                                          request.method_name, request.path, match.allow));
        res.headers.set("Allow", match.allow);
        co_return res;
      }
      case Router::Match::Kind::kFound:
        break;
    }
    if (match.route->is_websocket()) {
      auto res = json_error(426, Errc::kInvalidArgument,
                            fmt::format("{} is a WebSocket endpoint; send an upgrade request",
                                        request.path));
      res.headers.set("Upgrade", "websocket");
      co_return res;
    }
    request.path_params = match.params;

    Response response;
    std::string failure;
    try {
      response = co_await match.route->handler(request);
    } catch (const std::exception& e) {
      failure = e.what();
      if (failure.empty()) failure = "exception";
    } catch (...) {
      failure = "unknown exception";
    }
    if (!failure.empty()) {
      if (stopping_ && closed_) {
        spdlog::warn("http: {} {} from {} cancelled by shutdown: {}", request.method_name,
                     request.path, remote_, failure);
      } else {
        spdlog::error("http: handler for {} {} from {} threw: {}", request.method_name,
                      request.path, remote_, failure);
      }
      response = error_response(fail(Errc::kInternal, "handler failed: " + failure));
    }
    co_return response;
  }

  // After an error response: stop sending, then read and drop what the client is still sending
  // (bounded) so that closing does not reset the connection before it has read the response.
  asio::awaitable<void> linger_close() {
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTime);
    std::size_t drained = 0;
    while (!closed_ && drained < kLingerMaxBytes) {
      buffer_.consume(buffer_.size());
      auto [rec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), kAwait);
      if (rec) break;
      drained += n;
    }
  }

  asio::awaitable<void> write_loop() {
    co_await asio::this_coro::throw_if_cancelled(false);
    for (;;) {
      while (queue_.empty() && !reader_done_ && !closed_) co_await wait(queue_signal_);
      if (closed_ || queue_.empty()) break;
      Pending item = std::move(queue_.front());
      queue_.pop_front();
      notify(space_signal_);
      busy_ = true;

      if (item.upgrade) {
        if (stopping_) {
          item.response = json_error(503, Errc::kUnavailable, "server is shutting down");
          item.keep_alive = false;
        } else {
          upgraded_ = true;
          closed_ = true;
          disarm_idle();
          detail::start_websocket_session(std::move(stream_), std::move(*item.upgrade),
                                          std::move(*item.request), *item.websocket_route,
                                          shared_);
          break;
        }
      }

      const bool error_reply = item.response.has_value();
      bool head = false;
      Response response;
      if (item.response) {
        response = std::move(*item.response);
      } else {
        head = item.request->method == Method::kHead;
        response = co_await handle(*item.request);
      }
      if (closed_) break;  // forced shut while the handler ran
      bool keep_alive = item.keep_alive && !error_reply;
      if (stopping_ && queue_.empty()) keep_alive = false;

      auto message = to_beast(std::move(response), item.version, keep_alive, head,
                              options_.server_header);
      stream_.expires_after(options_.request_timeout);
      auto [ec, n] = co_await http::async_write(stream_, message, kAwait);
      busy_ = false;
      if (ec || closed_) break;
      if (!keep_alive) {
        if (error_reply) co_await linger_close();
        break;
      }
      maybe_arm_idle();
    }
    writer_running_ = false;
    close_socket();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<detail::ServerShared> shared_;
  const HttpServerOptions& options_;
  const std::uint64_t id_;
  std::string remote_;

  std::deque<Pending> queue_;
  asio::steady_timer queue_signal_;  // wakes the writer
  asio::steady_timer space_signal_;  // wakes the reader
  asio::steady_timer idle_timer_;
  std::uint64_t idle_generation_ = 0;
  asio::cancellation_signal reader_cancel_;
  asio::cancellation_signal writer_cancel_;

  bool reader_running_ = false;
  bool writer_running_ = false;
  bool reader_idle_ = false;  // waiting for the first byte of a request
  bool reader_done_ = false;
  bool busy_ = false;         // the writer is handling a request or writing its response
  bool stopping_ = false;
  bool closed_ = false;
  bool upgraded_ = false;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& ctx, std::shared_ptr<detail::ServerShared> s)
      : context(ctx), strand(asio::make_strand(ctx)), acceptor(strand), grace_timer(strand),
        shared(std::move(s)) {}

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    asio::steady_timer backoff(strand);
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(context), kAwait);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
        spdlog::warn("http: accept on {} failed: {}", address, ec.message());
        if (ec == asio::error::no_descriptors) {
          backoff.expires_after(std::chrono::milliseconds(100));
          co_await backoff.async_wait(kAwait);
        }
        continue;
      }
      // Responses and WebSocket events are small writes that must leave at once: without
      // TCP_NODELAY, Nagle's algorithm holds a write until the previous one is acknowledged,
      // which a peer's delayed ACK turns into tens of milliseconds.
      boost::system::error_code nodelay_ec;
      socket.set_option(tcp::no_delay(true), nodelay_ec);
      auto session = std::make_shared<HttpSession>(tcp::socket(std::move(socket)), shared);
      if (!shared->registry.add(session->id(), session)) {
        session->close_unstarted();
        continue;
      }
      session->start();
    }
    shared->registry.set_acceptor_closed();
  }

  void stop_on_strand(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
    const bool first = !stop_requested;
    stop_requested = true;
    boost::system::error_code ec;
    acceptor.close(ec);
    if (!started) shared->registry.set_acceptor_closed();
    auto self = shared_from_this();
    std::weak_ptr<Impl> weak = self;
    shared->registry.begin_stop([weak, cb = std::move(on_stopped)] {
      if (auto impl = weak.lock()) {
        asio::dispatch(impl->strand, [impl] { impl->grace_timer.cancel(); });
      }
      if (cb) cb();
    });
    if (first) {
      grace_timer.expires_after(grace);
      grace_timer.async_wait([self](boost::system::error_code wec) {
        if (wec) return;
        if (!self->shared->registry.stopped()) {
          spdlog::warn("http: {} grace period over, closing {} connection(s)", self->address,
                       self->shared->registry.size());
          self->shared->registry.force_all();
        }
      });
    }
  }

  asio::io_context& context;
  asio::strand<asio::io_context::executor_type> strand;
  tcp::acceptor acceptor;
  asio::steady_timer grace_timer;
  std::shared_ptr<detail::ServerShared> shared;
  std::string address;
  std::uint16_t port = 0;
  bool started = false;         // strand
  bool stop_requested = false;  // strand
};

Result<std::unique_ptr<HttpServer>> HttpServer::create(asio::io_context& context,
                                                       std::shared_ptr<const Router> router,
                                                       HttpServerOptions options) {
  const auto listen = options.listen;
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(listen.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, listen.port);
  } else {
    // A host name: resolving once at startup may block briefly, which is fine here.
    tcp::resolver resolver(context);
    auto results = resolver.resolve(listen.host, std::to_string(listen.port),
                                    tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return fail(Errc::kInvalidArgument,
                  fmt::format("cannot resolve listen host '{}': {}", listen.host,
                              ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }

  auto shared = std::make_shared<detail::ServerShared>(std::move(router), std::move(options),
                                                       context.get_executor());
  auto impl = std::make_shared<Impl>(context, shared);
  auto cannot = [&](std::string_view step) -> Error {
    return fail(Errc::kUnavailable,
                fmt::format("cannot listen on {}: {} failed: {}", listen.to_string(), step, ec.message()));
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return cannot("open");
  impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return cannot("setsockopt");
  if (endpoint.address().is_v6()) {
    // "[::]" should not silently take IPv4 as well; ask for "0.0.0.0" separately.
    impl->acceptor.set_option(asio::ip::v6_only(true), ec);
    if (ec) return cannot("setsockopt");
  }
  impl->acceptor.bind(endpoint, ec);
  if (ec) return cannot("bind");
  impl->acceptor.listen(shared->options.backlog, ec);
  if (ec) return cannot("listen");
  const auto bound = impl->acceptor.local_endpoint(ec);
  if (ec) return cannot("getsockname");
  impl->port = bound.port();
  impl->address = endpoint_string(bound);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

void HttpServer::start() {
  asio::dispatch(impl_->strand, [impl = impl_] {
    if (impl->started || impl->stop_requested) return;
    impl->started = true;
    spdlog::info("http: listening on {}", impl->address);
    asio::co_spawn(impl->strand, impl->accept_loop(), [impl](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("http: accept loop on {} failed: {}", impl->address, ex.what());
      }
      impl->shared->registry.set_acceptor_closed();
    });
  });
}

void HttpServer::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
  asio::dispatch(impl_->strand, [impl = impl_, grace, cb = std::move(on_stopped)]() mutable {
    impl->stop_on_strand(grace, std::move(cb));
  });
}

std::string HttpServer::local_address() const { return impl_->address; }

std::uint16_t HttpServer::port() const { return impl_->port; }

std::size_t HttpServer::connection_count() const { return impl_->shared->registry.size(); }

}  // namespace comfyfarm::net
