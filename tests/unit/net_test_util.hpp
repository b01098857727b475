// Helpers for the net tests: run a coroutine with a deadline, a raw blocking-with-deadline TCP
// client (so server tests do not depend on our own client), and small async test servers.
#pragma once

#include "net/http_server.hpp"
#include "net/http_types.hpp"
#include "net/io_runtime.hpp"
#include "net/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace comfyfarm::net::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// The deadline of every wait in these tests unless a test says otherwise.
inline constexpr auto kDeadline = std::chrono::seconds(10);

/// Runs `aw` on `ex` and returns its result; aborts the test binary (with a message) if it does
/// not finish within `deadline`, since the coroutine may still reference the test's locals.
template <class T>
T run_sync(asio::any_io_executor ex, asio::awaitable<T> aw,
           std::chrono::milliseconds deadline = kDeadline) {
  auto future = asio::co_spawn(ex, std::move(aw), asio::use_future);
  if (future.wait_for(deadline) != std::future_status::ready) {
    std::fprintf(stderr, "run_sync: coroutine did not finish within %lld ms\n",
                 static_cast<long long>(deadline.count()));
    std::abort();
  }
  return future.get();
}

/// Waits for a future with a deadline; false (and a test failure) when it did not come.
template <class Future>
bool wait_ready(Future& future, std::chrono::milliseconds deadline = kDeadline) {
  const bool ready = future.wait_for(deadline) == std::future_status::ready;
  EXPECT_TRUE(ready) << "a wait passed its deadline of " << deadline.count() << " ms";
  return ready;
}

/// Polls `predicate` until true or the deadline; for conditions no event reports.
inline bool wait_until(const std::function<bool()>& predicate,
                       std::chrono::milliseconds deadline = kDeadline) {
  const auto end = Clock::now() + deadline;
  while (Clock::now() < end) {
    if (predicate()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return predicate();
}

/// A port that was free a moment ago (bound, then closed): connecting to it is refused.
inline std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// A plain TCP client on POSIX sockets; every read takes a deadline.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port, const char* host = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, host, &addr.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  /// Shrinks the kernel receive buffer (call before reading anything) for slow-reader tests.
  void set_receive_buffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  bool send(std::string_view data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  /// Reads more bytes into the buffer: >0 bytes read, 0 on EOF/reset, -1 on deadline.
  int fill(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r == 0) return -1;
    char chunk[16384];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return static_cast<int>(n);
  }

  /// Reads one HTTP response (Content-Length framed); nullopt on EOF or deadline.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end = std::string::npos;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (fill(deadline) <= 0) return std::nullopt;
    }
    RawResponse res;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return std::nullopt;
    res.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const auto start = line_end + 2;
      line_end = head.find("\r\n", start);
      const auto line = head.substr(start, line_end == std::string::npos ? std::string::npos
                                                                         : line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      res.headers[name] = value;
    }
    if (res.status == 101 || res.status == 100) return res;
    const auto length = res.header("content-length");
    const std::size_t size = length.empty() ? 0 : std::stoul(length);
    while (buffer_.size() < size) {
      if (fill(deadline) <= 0) return std::nullopt;
    }
    res.body = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return res;
  }

  /// Waits for the peer to close; true on EOF/reset, false when the deadline passed first.
  bool wait_closed(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const int r = fill(deadline);
      if (r == 0) return true;
      if (r < 0) return false;
    }
  }

  std::string& buffer() { return buffer_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

/// "GET /path HTTP/1.1" with a Host header and optional extra header lines.
inline std::string http_get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

/// An event a test thread waits for with a deadline (set from any thread, once or more).
/// The state is shared so that set() never touches freed memory when the waiter returns and
/// destroys the Signal while set() is still finishing.
class Signal {
 public:
  void set() {
    auto state = state_;
    std::lock_guard lock(state->mutex);
    state->set = true;
    state->cv.notify_all();
  }
  bool wait(std::chrono::milliseconds deadline = kDeadline) {
    auto state = state_;
    std::unique_lock lock(state->mutex);
    const bool ok = state->cv.wait_for(lock, deadline, [&] { return state->set; });
    EXPECT_TRUE(ok) << "a wait passed its deadline of " << deadline.count() << " ms";
    return ok;
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    bool set = false;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

/// A gate handlers co_await until the test opens it (from any thread). Pending operations
/// hold the shared state, so the gate may go away before them.
class AsyncGate {
 public:
  explicit AsyncGate(asio::any_io_executor ex) : state_(std::make_shared<State>(ex)) {}

  asio::awaitable<void> wait() {
    auto state = state_;
    // A named coroutine, not a capturing lambda: GCC 12 destroys a capturing lambda passed to
    // co_spawn inside a co_await expression twice.
    auto waiting = wait_on(state);
    co_await asio::co_spawn(state->strand, std::move(waiting), asio::use_awaitable);
  }

  void open() {
    asio::post(state_->strand, [state = state_] {
      state->open = true;
      state->timer.cancel();
    });
  }

 private:
  struct State;
  static asio::awaitable<void> wait_on(std::shared_ptr<State> state) {
    if (!state->open) co_await state->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  struct State {
    explicit State(asio::any_io_executor ex)
        : strand(asio::make_strand(ex)), timer(strand, asio::steady_timer::time_point::max()) {}
    asio::any_io_executor strand;
    asio::steady_timer timer;
    bool open = false;
  };
  std::shared_ptr<State> state_;
};

/// A TCP server that accepts connections and then does what `on_accept` says (nothing: the
/// client waits forever). Keeps the sockets open until destroyed.
class SilentServer {
 public:
  using OnAccept = std::function<void(asio::ip::tcp::socket&)>;

  explicit SilentServer(asio::any_io_executor ex, OnAccept on_accept = {})
      : strand_(asio::make_strand(ex)),
        acceptor_(strand_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        on_accept_(std::move(on_accept)) {
    port_ = acceptor_.local_endpoint().port();
    accept();
  }
  ~SilentServer() {
    Signal done;
    asio::post(strand_, [this, done]() mutable {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto& s : sockets_) s->close(ec);
      done.set();
    });
    done.wait();
  }

  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  Signal& accepted_signal() { return accepted_signal_; }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      auto s = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
      sockets_.push_back(s);
      if (on_accept_) on_accept_(*s);
      accepted_.fetch_add(1);
      accepted_signal_.set();
      accept();
    });
  }

  asio::any_io_executor strand_;
  asio::ip::tcp::acceptor acceptor_;
  OnAccept on_accept_;
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> sockets_;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  Signal accepted_signal_;
};

/// An HttpServer on 127.0.0.1:0 for one test; stops it (with a deadline) when destroyed.
class TestServer {
 public:
  TestServer(asio::io_context& context, std::shared_ptr<const Router> router,
             HttpServerOptions options = {}) {
    options.listen = ListenAddress{"127.0.0.1", 0};
    auto created = HttpServer::create(context, std::move(router), options);
    if (!created) {
      ADD_FAILURE() << created.error().message;
      return;
    }
    server_ = std::move(*created);
    server_->start();
  }
  ~TestServer() { stop(); }

  void stop(std::chrono::milliseconds grace = std::chrono::seconds(1)) {
    if (!server_) return;
    Signal stopped;
    server_->stop(grace, [&] { stopped.set(); });
    stopped.wait();
    server_.reset();
  }

  HttpServer& operator*() { return *server_; }
  HttpServer* operator->() { return server_.get(); }
  std::uint16_t port() const { return server_ ? server_->port() : 0; }
  std::string http_url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  std::string ws_url(const std::string& path) const {
    return "ws://127.0.0.1:" + std::to_string(port()) + path;
  }

 private:
  std::unique_ptr<HttpServer> server_;
};

}  // namespace comfyfarm::net::test
