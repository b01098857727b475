// WebSocket server sessions and WebSocketClient over real sockets on 127.0.0.1:0.
#include "net/websocket_session.hpp"

#include "net/http_server.hpp"
#include "net/io_runtime.hpp"
#include "net/router.hpp"
#include "net/websocket_client.hpp"
#include "net_test_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace comfyfarm::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::RawClient;
using test::run_sync;

// Hands the session of the first connection to the test thread.
struct SessionBox {
  std::mutex mutex;
  std::shared_ptr<WebSocketSession> session;
  test::Signal ready;
  test::Signal closed;
  WebSocketCloseInfo close_info;

  void put(const std::shared_ptr<WebSocketSession>& s) {
    {
      std::lock_guard lock(mutex);
      session = s;
    }
    s->on_close([this](const WebSocketCloseInfo& info) {
      {
        std::lock_guard lock(mutex);
        close_info = info;
      }
      closed.set();
    });
    ready.set();
  }
  std::shared_ptr<WebSocketSession> get() {
    std::lock_guard lock(mutex);
    return session;
  }
  WebSocketCloseInfo info() {
    std::lock_guard lock(mutex);
    return close_info;
  }
  void clear() {
    std::lock_guard lock(mutex);
    session.reset();
  }
};

WebSocketHandler echo_route() {
  return [](const Request& req, const std::shared_ptr<WebSocketSession>& session) {
    session->send_text("hello " + req.query_param("clientId").value_or("?"));
    std::weak_ptr<WebSocketSession> weak = session;
    session->on_message([weak](WebSocketMessage message) {
      auto s = weak.lock();
      if (!s) return;
      if (message.data == "close please") {
        s->close(CloseCode::kNormal, "bye");
      } else if (message.binary) {
        s->send_binary(std::move(message.data));
      } else {
        s->send_text(std::move(message.data));
      }
    });
  };
}

class WebSocketTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    server_.emplace(io_.context(), router_, options);
    ASSERT_NE(server_->port(), 0);
  }

  Result<WebSocketClient> connect(const std::string& path, WebSocketClientOptions options = {}) {
    return run_sync(io_.executor(),
                    WebSocketClient::connect(io_.executor(), server_->ws_url(path), options));
  }

  void TearDown() override {
    server_.reset();  // sessions end and call back into box_ here
    io_.stop();
    io_.join();
    box_.clear();  // release the session while its io_context still exists
  }

  Result<WebSocketMessage> read(WebSocketClient& client, std::chrono::milliseconds timeout = 5s) {
    return run_sync(io_.executor(), client.read(timeout));
  }

  // Declared first: sessions call back into it until the io threads have stopped.
  SessionBox box_;
  IoRuntime io_{2};
  std::shared_ptr<Router> router_ = std::make_shared<Router>();
  std::optional<test::TestServer> server_;
};

TEST_F(WebSocketTest, EchoesTextAndBinary) {
  router_->add_websocket("/ws", echo_route());
  start();
  auto client = connect("/ws?clientId=c1");
  ASSERT_TRUE(client) << client.error().message;
  EXPECT_TRUE(client->is_open());

  auto hello = read(*client);
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_EQ(hello->data, "hello c1");
  EXPECT_FALSE(hello->binary);

  ASSERT_TRUE(run_sync(io_.executor(), client->write_text("ping")));
  auto text = read(*client);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->data, "ping");
  EXPECT_FALSE(text->binary);

  const std::string bytes("\x00\x01\xfe\xff", 4);
  ASSERT_TRUE(run_sync(io_.executor(), client->write_binary(bytes)));
  auto binary = read(*client);
  ASSERT_TRUE(binary);
  EXPECT_EQ(binary->data, bytes);
  EXPECT_TRUE(binary->binary);

  EXPECT_TRUE(run_sync(io_.executor(), client->close()));
  EXPECT_FALSE(client->is_open());
}

TEST_F(WebSocketTest, ApiAliasRouteAndLargeMessage) {
  router_->add_websocket_with_api_alias("/ws", echo_route());
  start();
  auto client = connect("/api/ws?clientId=a%20b");
  ASSERT_TRUE(client) << client.error().message;
  auto hello = read(*client);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->data, "hello a b");
  const std::string big(3 * 1024 * 1024, 'z');
  ASSERT_TRUE(run_sync(io_.executor(), client->write_binary(big)));
  auto echoed = read(*client);
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->data.size(), big.size());
}

TEST_F(WebSocketTest, ClientCloseReachesOnClose) {
  router_->add_websocket("/ws", [this](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    box_.put(s);
  });
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(box_.ready.wait());
  EXPECT_TRUE(box_.get()->is_open());
  ASSERT_TRUE(run_sync(io_.executor(), client->close(CloseCode::kNormal, "done")));
  ASSERT_TRUE(box_.closed.wait());
  const auto info = box_.info();
  EXPECT_TRUE(info.by_peer);
  EXPECT_EQ(info.code, 1000);
  EXPECT_EQ(info.reason, "done");
  EXPECT_FALSE(info.slow_reader);
  EXPECT_FALSE(box_.get()->is_open());
  EXPECT_FALSE(box_.get()->send_text("too late"));
}

TEST_F(WebSocketTest, ServerCloseReachesTheClient) {
  router_->add_websocket("/ws", echo_route());
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(read(*client));  // hello
  ASSERT_TRUE(run_sync(io_.executor(), client->write_text("close please")));
  auto end = read(*client);
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, Errc::kUnavailable);
  EXPECT_NE(end.error().message.find("closed by peer (code 1000: bye)"), std::string::npos)
      << end.error().message;
  EXPECT_FALSE(client->is_open());
}

TEST_F(WebSocketTest, BufferedMessagesAreReadBeforeThePeerClose) {
  router_->add_websocket("/ws", [](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    for (int i = 0; i < 3; ++i) s->send_text("m" + std::to_string(i));
    s->close(CloseCode::kGoingAway, "done");
  });
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  // The close is queued behind nothing: the messages may or may not all precede it, but what
  // arrives is delivered in order, then the close.
  std::vector<std::string> got;
  for (;;) {
    auto m = read(*client);
    if (!m) {
      EXPECT_NE(m.error().message.find("code 1001"), std::string::npos) << m.error().message;
      break;
    }
    got.push_back(m->data);
  }
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], "m" + std::to_string(i));
}

TEST_F(WebSocketTest, OversizedIncomingMessageCloses1009) {
  WebSocketOptions options;
  options.max_incoming_message_bytes = 1024;
  router_->add_websocket("/ws", [this](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    box_.put(s);
  }, options);
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(run_sync(io_.executor(), client->write_text(std::string(4096, 'a'))));
  // The server sends close 1009 and tears down. Beast 1.81's server teardown may close the
  // socket before the client's close reply is read (it stops reading after one chunk), so the
  // client sees either the close code or a reset; both end the session.
  auto end = read(*client);
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, Errc::kUnavailable) << end.error().message;
  ASSERT_TRUE(box_.closed.wait());
  EXPECT_EQ(box_.info().code, 1009);
  EXPECT_FALSE(box_.info().by_peer);
}

TEST_F(WebSocketTest, SendIsThreadSafeAndKeepsPerSenderOrder) {
  router_->add_websocket("/ws", [this](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    box_.put(s);
  });
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(box_.ready.wait());
  auto session = box_.get();
  constexpr int kThreads = 4;
  constexpr int kEach = 250;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([session, t] {
      for (int i = 0; i < kEach; ++i) {
        EXPECT_TRUE(session->send_text(std::to_string(t) + ":" + std::to_string(i)));
      }
    });
  }
  for (auto& s : senders) s.join();
  std::vector<int> next(kThreads, 0);
  for (int n = 0; n < kThreads * kEach; ++n) {
    auto m = read(*client);
    ASSERT_TRUE(m) << m.error().message;
    const auto colon = m->data.find(':');
    const int t = std::stoi(m->data.substr(0, colon));
    const int i = std::stoi(m->data.substr(colon + 1));
    EXPECT_EQ(i, next[t]) << "sender " << t;
    next[t] = i + 1;
  }
  EXPECT_TRUE(test::wait_until([&] { return session->stats().sent_messages == kThreads * kEach; }));
  const auto stats = session->stats();
  EXPECT_EQ(stats.dropped_messages, 0u);
  EXPECT_EQ(stats.queued_bytes, 0u);
  EXPECT_EQ(stats.queued_messages, 0u);
}

TEST_F(WebSocketTest, SlowReaderIsClosedAndTheQueueStaysBounded) {
  WebSocketOptions options;
  options.max_queued_bytes = 1024 * 1024;
  options.max_queued_messages = 1000;
  options.close_timeout = 200ms;
  router_->add_websocket("/flood", [this](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    box_.put(s);
  }, options);
  start();

  // A client that completes the handshake and then never reads.
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.send("GET /flood HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  auto upgraded = raw.read_response();
  ASSERT_TRUE(upgraded);
  ASSERT_EQ(upgraded->status, 101);
  ASSERT_TRUE(box_.ready.wait());
  auto session = box_.get();

  // Flood until the session refuses. Between bursts, give the writer a chance to drain into
  // the socket buffers, so that what trips the limit is the reader not reading.
  const std::string chunk(64 * 1024, 'x');
  std::uint64_t accepted = 0;
  bool refused = false;
  const auto deadline = test::Clock::now() + test::kDeadline;
  while (test::Clock::now() < deadline) {
    if (!session->send_binary(chunk)) {
      refused = true;
      break;
    }
    ++accepted;
    if (session->stats().queued_bytes > options.max_queued_bytes / 2) {
      test::wait_until([&] {
        return session->stats().queued_bytes <= options.max_queued_bytes / 2 || !session->is_open();
      }, 50ms);
    }
  }
  ASSERT_TRUE(refused) << "the session kept accepting " << accepted << " messages";
  EXPECT_GT(accepted, 8u);  // it did accept what the socket buffers could take

  ASSERT_TRUE(box_.closed.wait());
  const auto info = box_.info();
  EXPECT_TRUE(info.slow_reader);
  EXPECT_EQ(info.code, 1008);
  EXPECT_FALSE(info.by_peer);

  const auto stats = session->stats();
  EXPECT_TRUE(stats.closed_for_slow_reader);
  EXPECT_LE(stats.peak_queued_bytes, options.max_queued_bytes);
  EXPECT_GE(stats.dropped_messages, 1u);
  // Everything queued is released (the frame being written when the socket was closed, as
  // soon as its aborted write completes).
  EXPECT_TRUE(test::wait_until([&] {
    const auto s = session->stats();
    return s.queued_bytes == 0 && s.queued_messages == 0;
  }));
  EXPECT_FALSE(session->send_text("after close"));

  // The client, if it ever reads, finds the connection ended.
  EXPECT_TRUE(raw.wait_closed());
  EXPECT_TRUE(test::wait_until([&] { return (*server_)->connection_count() == 0; }));
}

TEST_F(WebSocketTest, ServerStopSendsGoingAway) {
  router_->add_websocket("/ws", echo_route());
  start();
  auto client = connect("/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(read(*client));
  test::Signal stopped;
  (*server_)->stop(5s, [&] { stopped.set(); });
  auto end = read(*client);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("code 1001"), std::string::npos) << end.error().message;
  EXPECT_TRUE(stopped.wait());
}

// ---- WebSocketClient ----

TEST_F(WebSocketTest, ClientRefusedIsUnavailable) {
  const auto url = "ws://127.0.0.1:" + std::to_string(test::closed_port()) + "/ws";
  auto client = run_sync(io_.executor(), WebSocketClient::connect(io_.executor(), url));
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Errc::kUnavailable);
  EXPECT_NE(client.error().message.find("connection refused"), std::string::npos);
}

TEST_F(WebSocketTest, ClientReadTimesOutAndStaysUsable) {
  router_->add_websocket("/quiet", [](const Request&, const std::shared_ptr<WebSocketSession>& s) {
    std::weak_ptr<WebSocketSession> weak = s;
    s->on_message([weak](WebSocketMessage m) {
      if (auto session = weak.lock()) session->send_text("reply to " + m.data);
    });
  });
  start();
  auto client = connect("/quiet");
  ASSERT_TRUE(client);
  const auto begin = test::Clock::now();
  auto nothing = read(*client, 100ms);
  const auto elapsed = test::Clock::now() - begin;
  ASSERT_FALSE(nothing);
  EXPECT_EQ(nothing.error().code, Errc::kTimeout);
  EXPECT_GE(elapsed, 90ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_TRUE(client->is_open());
  ASSERT_TRUE(run_sync(io_.executor(), client->write_text("go")));
  auto reply = read(*client);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->data, "reply to go");
}

TEST_F(WebSocketTest, ClientCancelEndsAPendingRead) {
  router_->add_websocket("/quiet", [](const Request&, const std::shared_ptr<WebSocketSession>&) {});
  start();
  auto client = connect("/quiet");
  ASSERT_TRUE(client);
  auto pending = asio::co_spawn(io_.executor(), client->read(30s), asio::use_future);
  // cancel() ends the read in flight; repeat until the read has started and ended.
  const bool ended = test::wait_until([&] {
    client->cancel();
    return pending.wait_for(5ms) == std::future_status::ready;
  });
  ASSERT_TRUE(ended);
  auto result = pending.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::kCancelled);
  EXPECT_TRUE(client->is_open());  // a cancelled read does not harm the connection
}

TEST_F(WebSocketTest, ClientReadHonoursTheCancellationSlot) {
  router_->add_websocket("/quiet", [](const Request&, const std::shared_ptr<WebSocketSession>&) {});
  start();
  auto client = connect("/quiet");
  ASSERT_TRUE(client);
  auto strand = asio::make_strand(io_.executor());
  asio::cancellation_signal signal;
  auto pending = asio::co_spawn(strand, client->read(30s),
                                asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(test::wait_ready(pending));
  auto result = pending.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::kCancelled);
}

TEST_F(WebSocketTest, ClientUpgradeRefusedIsNotFound) {
  start();
  auto client = connect("/no/such/ws");
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Errc::kNotFound);
  EXPECT_NE(client.error().message.find("HTTP 404"), std::string::npos);
}

TEST_F(WebSocketTest, ClientHandshakeTimesOut) {
  test::SilentServer silent(io_.executor());
  WebSocketClientOptions options;
  options.connect_timeout = 200ms;
  const auto begin = test::Clock::now();
  auto client = run_sync(io_.executor(),
                         WebSocketClient::connect(io_.executor(),
                                                  "ws://127.0.0.1:" + std::to_string(silent.port()) + "/ws",
                                                  options));
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Errc::kTimeout) << client.error().message;
  EXPECT_LT(test::Clock::now() - begin, 3s);
}

TEST_F(WebSocketTest, ClientNeverSendsOrigin) {
  std::mutex mutex;
  Headers seen;
  router_->add_websocket("/ws", [&](const Request& req, const std::shared_ptr<WebSocketSession>&) {
    std::lock_guard lock(mutex);
    seen = req.headers;
  });
  start();
  WebSocketClientOptions options;
  options.headers = Headers{{"Origin", "http://evil.example"}, {"X-Test", "1"}};
  auto client = connect("/ws", options);
  ASSERT_TRUE(client) << client.error().message;
  ASSERT_TRUE(test::wait_until([&] {
    std::lock_guard lock(mutex);
    return !seen.empty();
  }));
  std::lock_guard lock(mutex);
  EXPECT_FALSE(seen.contains("Origin"));
  EXPECT_EQ(seen.get("x-test"), "1");
  EXPECT_EQ(seen.get("user-agent"), "comfyfarm");
}

TEST_F(WebSocketTest, ClientRejectsWss) {
  auto client = run_sync(io_.executor(), WebSocketClient::connect(io_.executor(), "wss://example.com/ws"));
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace comfyfarm::net
