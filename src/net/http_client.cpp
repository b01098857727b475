// HttpClient: Beast's HTTP client side. All connection state lives on the client's strand.
#include "net/http_client.hpp"

#include "net/detail/io_error.hpp"
#include "net/detail/url.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <variant>
#include <vector>

namespace comfyfarm::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

}  // namespace

struct HttpClient::Impl : std::enable_shared_from_this<HttpClient::Impl> {
  Impl(asio::any_io_executor ex, detail::ParsedUrl u, std::string base, HttpClientOptions o)
      : strand(asio::make_strand(ex)),
        url(std::move(u)),
        base_url(std::move(base)),
        options(std::move(o)),
        resolver(strand),
        timer(strand) {
    // The URL's path, without a trailing '/', prefixes every target.
    base_path = url.target.substr(0, url.target.find('?'));
    while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
  }

  void drop_connection() {
    if (stream) {
      boost::system::error_code ec;
      stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      stream->close();
      stream.reset();
    }
    buffer.consume(buffer.size());
  }

  void cancel_now() {
    ++epoch;
    resolver.cancel();
    timer.cancel();
    for (auto* waiter : waiters) waiter->cancel();
    drop_connection();
  }

  // Who may cancel one request: cancel() (bumps the epoch) and the awaiting coroutine's slot.
  struct Attempt {
    std::uint64_t epoch = 0;
    asio::cancellation_state state;
  };

  bool cancelled(const Attempt& a) const {
    return epoch != a.epoch || a.state.cancelled() != asio::cancellation_type::none;
  }

  // kCancelled when this request was cancelled, else the mapped I/O error.
  Error failure(const boost::system::error_code& ec, const Attempt& a, std::string_view what) const {
    if (cancelled(a)) return fail(Errc::kCancelled, std::string(what) + ": cancelled");
    return detail::io_error(ec, what);
  }

  asio::awaitable<Result<void>> connect(Clock::time_point deadline, const Attempt& a) {
    using namespace asio::experimental::awaitable_operators;
    const auto what = "connect to " + url.host_header;
    const auto connect_deadline = std::min(deadline, Clock::now() + options.connect_timeout);

    std::vector<tcp::endpoint> endpoints;
    boost::system::error_code aec;
    const auto address = asio::ip::make_address(url.host, aec);
    if (!aec) {
      endpoints.emplace_back(address, url.port);
    } else {
      timer.expires_at(connect_deadline);
      const auto service = std::to_string(url.port);
      auto raced = co_await (resolver.async_resolve(url.host, service, kAwait) ||
                             timer.async_wait(kAwait));
      if (raced.index() == 1) {
        if (cancelled(a)) co_return fail(Errc::kCancelled, what + ": cancelled");
        co_return fail(Errc::kTimeout, what + ": name resolution timed out");
      }
      auto [rec, results] = std::get<0>(std::move(raced));
      if (rec) co_return failure(rec, a, what);
      for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    }
    if (cancelled(a)) co_return fail(Errc::kCancelled, what + ": cancelled");

    stream.emplace(strand);
    stream->expires_at(connect_deadline);
    auto [cec, ep] = co_await stream->async_connect(endpoints, kAwait);
    if (cec) {
      auto error = failure(cec, a, what);
      drop_connection();
      co_return error;
    }
    boost::system::error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);
    co_return Result<void>{};
  }

  http::request<http::string_body> build(HttpRequest& req, http::verb verb) const {
    http::request<http::string_body> msg;
    msg.method(verb);
    msg.target(base_path + req.target);
    msg.version(11);
    bool has_host = false;
    bool has_agent = false;
    for (const auto& [name, value] : req.headers) {
      if (iequals(name, "Origin") || iequals(name, "Content-Length") ||
          iequals(name, "Connection") || iequals(name, "Transfer-Encoding")) {
        continue;  // never send Origin (ComfyUI answers 403 on loopback); framing is ours
      }
      if (iequals(name, "Host")) has_host = true;
      if (iequals(name, "User-Agent")) has_agent = true;
      msg.insert(name, value);
    }
    if (!has_host) msg.set(http::field::host, url.host_header);
    if (!has_agent && !options.user_agent.empty()) msg.set(http::field::user_agent, options.user_agent);
    msg.body() = std::move(req.body);
    msg.keep_alive(options.keep_alive);
    if (!msg.body().empty() || verb == http::verb::post || verb == http::verb::put ||
        verb == http::verb::patch) {
      msg.prepare_payload();
    }
    return msg;
  }

  asio::awaitable<Result<Response>> exchange(HttpRequest req, Clock::time_point deadline,
                                             const Attempt& a) {
    const auto verb = http::string_to_verb(to_string(req.method));
    if (req.method == Method::kOther || verb == http::verb::unknown) {
      co_return fail(Errc::kInvalidArgument, "unsupported HTTP method");
    }
    const auto what = fmt::format("{} {}{}{}", to_string(req.method), url.host_header, base_path,
                                  req.target);
    auto message = build(req, verb);

    for (int attempt = 0;; ++attempt) {
      const bool reused = stream.has_value();
      if (!reused) {
        auto connected = co_await connect(deadline, a);
        if (!connected) co_return connected.error();
      }
      if (cancelled(a)) co_return fail(Errc::kCancelled, what + ": cancelled");

      stream->expires_at(deadline);
      auto [wec, wn] = co_await http::async_write(*stream, message, kAwait);
      if (wec) {
        drop_connection();
        if (reused && attempt == 0 && detail::is_connection_closed(wec) && !cancelled(a)) {
          continue;  // the server closed the idle connection; try once on a fresh one
        }
        co_return failure(wec, a, what);
      }

      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_response_body_bytes);
      if (req.method == Method::kHead) parser.skip(true);
      auto [rec, rn] = co_await http::async_read(*stream, buffer, parser, kAwait);
      if (rec) {
        const bool nothing = !parser.got_some();
        drop_connection();
        if (reused && attempt == 0 && nothing && detail::is_connection_closed(rec) &&
            !cancelled(a)) {
          continue;
        }
        co_return failure(rec, a, what);
      }
      auto res = parser.release();
      if (!res.keep_alive() || !options.keep_alive) drop_connection();

      Response out;
      out.status = static_cast<int>(res.result_int());
      for (const auto& field : res) {
        out.headers.add(std::string(field.name_string()), std::string(field.value()));
      }
      out.body = std::move(res.body());
      co_return out;
    }
  }

  asio::awaitable<Result<Response>> run(HttpRequest req) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const Attempt a{epoch, co_await asio::this_coro::cancellation_state};
    const auto deadline = Clock::now() + req.timeout.value_or(options.request_timeout);
    while (busy) {
      // Wait for our turn on a timer of our own (expiring at our deadline), woken by the
      // request that finishes before us.
      asio::steady_timer my_turn(strand, deadline);
      waiters.push_back(&my_turn);
      auto [ec] = co_await my_turn.async_wait(kAwait);
      waiters.erase(std::find(waiters.begin(), waiters.end(), &my_turn));
      if (cancelled(a)) {
        co_return fail(Errc::kCancelled, "request cancelled while waiting for the connection");
      }
      if (!ec) co_return fail(Errc::kTimeout, "request timed out waiting for the connection");
    }
    busy = true;
    auto result = co_await exchange(std::move(req), deadline, a);
    busy = false;
    if (!waiters.empty()) waiters.front()->cancel();  // the next request's turn
    co_return result;
  }

  asio::any_io_executor strand;
  detail::ParsedUrl url;
  std::string base_url;
  std::string base_path;
  HttpClientOptions options;

  // Strand-only.
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  tcp::resolver resolver;
  asio::steady_timer timer;  // races name resolution
  std::deque<asio::steady_timer*> waiters;  // requests waiting for their turn, oldest first
  std::uint64_t epoch = 0;
  bool busy = false;
};

Result<HttpClient> HttpClient::create(asio::any_io_executor executor, std::string_view base_url,
                                      HttpClientOptions options) {
  auto url = detail::parse_url(base_url, "http", 80);
  if (!url) return url.error();
  if (url->target.find('?') != std::string::npos) {
    return fail(Errc::kInvalidArgument, "a base URL cannot have a query: " + std::string(base_url));
  }
  return HttpClient(std::make_shared<Impl>(std::move(executor), std::move(*url),
                                           std::string(base_url), std::move(options)));
}

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

HttpClient::~HttpClient() { close(); }

asio::awaitable<Result<Response>> HttpClient::request(HttpRequest request) {
  if (!impl_) co_return fail(Errc::kFailedPrecondition, "request on an empty HttpClient");
  auto impl = impl_;
  co_return co_await asio::co_spawn(impl->strand, impl->run(std::move(request)),
                                    asio::use_awaitable);
}

asio::awaitable<Result<Response>> HttpClient::request(Method method, std::string target,
                                                      Headers headers, std::string body) {
  HttpRequest req;
  req.method = method;
  req.target = std::move(target);
  req.headers = std::move(headers);
  req.body = std::move(body);
  co_return co_await request(std::move(req));
}

void HttpClient::cancel() {
  if (!impl_) return;
  asio::post(impl_->strand, [impl = impl_] { impl->cancel_now(); });
}

void HttpClient::close() {
  if (!impl_) return;
  asio::post(impl_->strand, [impl = impl_] {
    if (!impl->busy) impl->drop_connection();
  });
}

const std::string& HttpClient::base_url() const {
  static const std::string kEmpty;
  return impl_ ? impl_->base_url : kEmpty;
}

asio::awaitable<Result<Response>> http_request(asio::any_io_executor executor, Method method,
                                               std::string_view url, Headers headers,
                                               std::string body, HttpClientOptions options) {
  auto parsed = detail::parse_url(url, "http", 80);
  if (!parsed) co_return parsed.error();
  const auto origin = "http://" + parsed->host_header;
  auto client = HttpClient::create(std::move(executor), origin, std::move(options));
  if (!client) co_return client.error();
  HttpRequest req;
  req.method = method;
  req.target = parsed->target;
  req.headers = std::move(headers);
  req.body = std::move(body);
  co_return co_await client->request(std::move(req));
}

}  // namespace comfyfarm::net
