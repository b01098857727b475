// HttpClient against HttpServer and against misbehaving raw servers, on 127.0.0.1:0.
#include "net/http_client.hpp"

#include "net/http_server.hpp"
#include "net/io_runtime.hpp"
#include "net/router.hpp"
#include "net_test_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

namespace comfyfarm::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::run_sync;

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_->add(Method::kPost, "/echo", [](Request& req) -> asio::awaitable<Response> {
      auto res = Response::text(req.body, 200, "application/octet-stream");
      res.headers.set("X-Path", req.target);
      co_return res;
    });
    router_->add(Method::kGet, "/peer", [](Request& req) -> asio::awaitable<Response> {
      co_return Response::text(req.remote_address);
    });
    router_->add_with_api_alias(Method::kGet, "/where", [](Request& req) -> asio::awaitable<Response> {
      co_return Response::text(req.target);
    });
    router_->add(Method::kGet, "/headers", [this](Request& req) -> asio::awaitable<Response> {
      std::lock_guard lock(mutex_);
      seen_headers_ = req.headers;
      co_return Response::text("ok");
    });
  }

  void start(HttpServerOptions options = {}) {
    server_.emplace(io_.context(), router_, options);
    ASSERT_NE(server_->port(), 0);
  }

  HttpClient client(HttpClientOptions options = {}) {
    auto c = HttpClient::create(io_.executor(), server_->http_url(), options);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }

  Result<Response> get(HttpClient& c, std::string target) {
    return run_sync(io_.executor(), c.request(Method::kGet, std::move(target)));
  }

  IoRuntime io_{2};
  std::shared_ptr<Router> router_ = std::make_shared<Router>();
  std::optional<test::TestServer> server_;
  std::mutex mutex_;
  Headers seen_headers_;
};

TEST_F(HttpClientTest, ReturnsStatusHeadersAndBody) {
  start();
  auto c = client();
  auto res = run_sync(io_.executor(), c.request(Method::kPost, "/echo?x=1", {{"Content-Type", "text/plain"}},
                                                "payload"));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "payload");
  EXPECT_EQ(res->headers.get("x-path"), "/echo?x=1");
  EXPECT_EQ(res->headers.get("content-type"), "application/octet-stream");

  auto missing = get(c, "/missing");
  ASSERT_TRUE(missing);  // a status is a result, not an error
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("not_found"), std::string::npos);
}

TEST_F(HttpClientTest, ReusesOneConnection) {
  start();
  auto c = client();
  auto first = get(c, "/peer");
  auto second = get(c, "/peer");
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->body, second->body);
  EXPECT_EQ((*server_)->connection_count(), 1u);
}

TEST_F(HttpClientTest, ReconnectsAfterTheServerClosedTheConnection) {
  HttpServerOptions options;
  options.idle_timeout = 100ms;
  start(options);
  auto c = client();
  auto first = get(c, "/peer");
  ASSERT_TRUE(first);
  ASSERT_TRUE(test::wait_until([&] { return (*server_)->connection_count() == 0; }));
  auto second = get(c, "/peer");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->status, 200);
  EXPECT_NE(first->body, second->body);
}

TEST_F(HttpClientTest, ResolvesHostNames) {
  start();
  auto c = HttpClient::create(io_.executor(), "http://localhost:" + std::to_string(server_->port()));
  ASSERT_TRUE(c);
  auto res = get(*c, "/where");
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpClientTest, BasePathPrefixesTargets) {
  start();
  auto c = HttpClient::create(io_.executor(), server_->http_url("/api/"));
  ASSERT_TRUE(c);
  auto res = get(*c, "/where?q=1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "/api/where?q=1");
}

TEST_F(HttpClientTest, ConcurrentRequestsTakeTurns) {
  start();
  auto c = client();
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(asio::co_spawn(io_.executor(),
                                     c.request(Method::kPost, "/echo", {}, std::to_string(i)),
                                     asio::use_future));
  }
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(test::wait_ready(futures[static_cast<std::size_t>(i)]));
    auto res = futures[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(res) << res.error().message;
    EXPECT_EQ(res->body, std::to_string(i));
  }
  EXPECT_EQ((*server_)->connection_count(), 1u);
}

TEST_F(HttpClientTest, NeverSendsOrigin) {
  start();
  auto c = client();
  auto res = run_sync(io_.executor(),
                      c.request(Method::kGet, "/headers",
                                {{"Origin", "http://127.0.0.1:9"}, {"origin", "x"}, {"X-Extra", "1"}}));
  ASSERT_TRUE(res);
  std::lock_guard lock(mutex_);
  EXPECT_FALSE(seen_headers_.contains("Origin"));
  EXPECT_EQ(seen_headers_.get("x-extra"), "1");
  EXPECT_EQ(seen_headers_.get("user-agent"), "comfyfarm");
  EXPECT_EQ(seen_headers_.get("host"), "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(HttpClientTest, OneShotRequestToAUrl) {
  start();
  auto res = run_sync(io_.executor(),
                      http_request(io_.executor(), Method::kPost, server_->http_url("/echo?a=b"), {}, "hi"));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->body, "hi");
  EXPECT_EQ(res->headers.get("x-path"), "/echo?a=b");
}

TEST_F(HttpClientTest, ResponseOverTheBodyLimitIsResourceExhausted) {
  start();
  HttpClientOptions options;
  options.max_response_body_bytes = 4;
  auto c = client(options);
  auto res = run_sync(io_.executor(), c.request(Method::kPost, "/echo", {}, "0123456789"));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kResourceExhausted);
}

TEST_F(HttpClientTest, RejectsHttpsAndBadUrls) {
  for (const char* url : {"https://example.com", "ftp://x", "not a url", "http://", "http://h:0"}) {
    auto c = HttpClient::create(io_.executor(), url);
    ASSERT_FALSE(c) << url;
    EXPECT_EQ(c.error().code, Errc::kInvalidArgument) << url;
  }
  HttpClient empty;
  auto res = run_sync(io_.executor(), empty.request(Method::kGet, "/"));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kFailedPrecondition);
}

TEST_F(HttpClientTest, ConnectionRefusedIsUnavailable) {
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(test::closed_port()));
  ASSERT_TRUE(c);
  auto res = get(*c, "/");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kUnavailable);
  EXPECT_NE(res.error().message.find("connection refused"), std::string::npos) << res.error().message;
}

TEST_F(HttpClientTest, ServerThatNeverAnswersTimesOut) {
  test::SilentServer silent(io_.executor());
  HttpClientOptions options;
  options.request_timeout = 200ms;
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(silent.port()), options);
  ASSERT_TRUE(c);
  const auto begin = test::Clock::now();
  auto res = get(*c, "/");
  const auto elapsed = test::Clock::now() - begin;
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kTimeout) << res.error().message;
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_F(HttpClientTest, PerRequestTimeoutOverridesTheDefault) {
  test::SilentServer silent(io_.executor());
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(silent.port()));
  ASSERT_TRUE(c);
  HttpRequest req;
  req.timeout = 100ms;
  const auto begin = test::Clock::now();
  auto res = run_sync(io_.executor(), c->request(std::move(req)));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kTimeout);
  EXPECT_LT(test::Clock::now() - begin, 3s);
}

TEST_F(HttpClientTest, PeerThatClosesWithoutAnsweringIsAReset) {
  test::SilentServer closing(io_.executor(), [](asio::ip::tcp::socket& s) {
    boost::system::error_code ec;
    s.close(ec);
  });
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(closing.port()));
  ASSERT_TRUE(c);
  auto res = get(*c, "/");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kUnavailable);
  EXPECT_NE(res.error().message.find("connection reset"), std::string::npos) << res.error().message;
}

TEST_F(HttpClientTest, GarbageResponseIsAProtocolError) {
  test::SilentServer liar(io_.executor(), [](asio::ip::tcp::socket& s) {
    static const std::string kGarbage = "NOT HTTP AT ALL\r\n\r\n";
    boost::system::error_code ec;
    asio::write(s, asio::buffer(kGarbage), ec);
  });
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(liar.port()));
  ASSERT_TRUE(c);
  auto res = get(*c, "/");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kProtocol) << res.error().message;
}

TEST_F(HttpClientTest, CancelEndsTheRequestInFlight) {
  test::SilentServer silent(io_.executor());
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(silent.port()));
  ASSERT_TRUE(c);
  auto pending = asio::co_spawn(io_.executor(), c->request(Method::kGet, "/"), asio::use_future);
  ASSERT_TRUE(silent.accepted_signal().wait());
  const auto begin = test::Clock::now();
  c->cancel();
  ASSERT_TRUE(test::wait_ready(pending));
  auto res = pending.get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kCancelled) << res.error().message;
  EXPECT_LT(test::Clock::now() - begin, 3s);
}

TEST_F(HttpClientTest, CancellationSlotEndsTheRequest) {
  test::SilentServer silent(io_.executor());
  auto c = HttpClient::create(io_.executor(), "http://127.0.0.1:" + std::to_string(silent.port()));
  ASSERT_TRUE(c);
  auto strand = asio::make_strand(io_.executor());
  asio::cancellation_signal signal;
  auto pending = asio::co_spawn(strand, c->request(Method::kGet, "/"),
                                asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  ASSERT_TRUE(silent.accepted_signal().wait());
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(test::wait_ready(pending));
  auto res = pending.get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Errc::kCancelled) << res.error().message;
}

}  // namespace
}  // namespace comfyfarm::net
