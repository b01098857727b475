// HttpServer over real sockets on 127.0.0.1:0, driven by a raw TCP client.
#include "net/http_server.hpp"

#include "net/error_response.hpp"
#include "net/io_runtime.hpp"
#include "net/router.hpp"
#include "net_test_util.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <stdexcept>

namespace comfyfarm::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::RawClient;
using test::http_get;

class HttpServerTest : public ::testing::Test {
 protected:
  // Builds the server from `router` and `options` and starts it.
  void start(HttpServerOptions options = {}) {
    options.listen = ListenAddress{"127.0.0.1", 0};
    auto created = HttpServer::create(io_.context(), router_, options);
    ASSERT_TRUE(created) << created.error().message;
    server_ = std::move(*created);
    server_->start();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  void TearDown() override {
    if (server_) {
      test::Signal stopped;
      server_->stop(1s, [&] { stopped.set(); });
      EXPECT_TRUE(stopped.wait());
      server_.reset();
    }
  }

  static boost::json::value json(const std::string& body) { return boost::json::parse(body); }

  IoRuntime io_{2};
  std::shared_ptr<Router> router_ = std::make_shared<Router>();
  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
};

Handler echo_handler() {
  return [](Request& req) -> asio::awaitable<Response> {
    boost::json::object o;
    o["method"] = req.method_name;
    o["path"] = req.path;
    o["query"] = req.query_string;
    o["body"] = req.body;
    boost::json::object params;
    for (const auto& [k, v] : req.path_params) params[k] = v;
    o["params"] = std::move(params);
    if (auto q = req.query(); q) {
      boost::json::object query;
      for (const auto& [k, v] : *q) query[k] = v;
      o["decoded_query"] = std::move(query);
    }
    co_return Response::json(o);
  };
}

TEST_F(HttpServerTest, RoutesPathParamsAndQuery) {
  router_->add(Method::kGet, "/history/{prompt_id}", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(http_get("/history/abc%20d?max_items=5&x=a+b")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("content-type"), "application/json");
  EXPECT_EQ(res->header("server"), "comfyfarm");
  auto body = json(res->body);
  EXPECT_EQ(body.at("params").at("prompt_id").as_string(), "abc d");
  EXPECT_EQ(body.at("query").as_string(), "max_items=5&x=a+b");
  EXPECT_EQ(body.at("decoded_query").at("max_items").as_string(), "5");
  EXPECT_EQ(body.at("decoded_query").at("x").as_string(), "a b");
}

TEST_F(HttpServerTest, ApiAliasServesBothPaths) {
  router_->add_with_api_alias(Method::kPost, "/prompt", echo_handler());
  start();
  for (const std::string path : {"/prompt", "/api/prompt"}) {
    RawClient c(port_);
    ASSERT_TRUE(c.send("POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
    auto res = c.read_response();
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json(res->body).at("body").as_string(), "hello");
    EXPECT_EQ(json(res->body).at("path").as_string(), path);
  }
}

TEST_F(HttpServerTest, UnknownPathIs404Json) {
  router_->add(Method::kGet, "/queue", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/nope")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->header("content-type"), "application/json");
  auto body = json(res->body);
  EXPECT_EQ(body.at("error").at("code").as_string(), "not_found");
  EXPECT_NE(std::string(body.at("error").at("message").as_string()).find("/nope"), std::string::npos);
}

TEST_F(HttpServerTest, WrongMethodIs405WithAllow) {
  router_->add(Method::kGet, "/queue", echo_handler());
  router_->add(Method::kPost, "/queue", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("DELETE /queue HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->header("allow"), "GET, POST, HEAD");
  EXPECT_EQ(json(res->body).at("error").at("code").as_string(), "invalid_argument");
  // The connection stays usable after a 405.
  ASSERT_TRUE(c.send(http_get("/queue")));
  auto next = c.read_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST_F(HttpServerTest, HeadSendsHeadersWithoutBody) {
  router_->add(Method::kGet, "/doc", [](Request&) -> asio::awaitable<Response> {
    co_return Response::text("0123456789");
  });
  start();
  RawClient c(port_);
  // HEAD then GET in one write. The raw client reads Content-Length (10) bytes after the HEAD
  // response's headers: with no body sent, those are the start of the GET's response.
  ASSERT_TRUE(c.send("HEAD /doc HTTP/1.1\r\nHost: t\r\n\r\n" + http_get("/doc")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("content-length"), "10");
  EXPECT_EQ(res->body.substr(0, 8), "HTTP/1.1");
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  router_->add(Method::kGet, "/peer", [](Request& req) -> asio::awaitable<Response> {
    co_return Response::text(req.remote_address);
  });
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/peer")));
  auto first = c.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->header("connection"), "");  // HTTP/1.1 default: keep-alive
  ASSERT_TRUE(c.send(http_get("/peer")));
  auto second = c.read_response();
  ASSERT_TRUE(second);
  EXPECT_EQ(first->body, second->body);  // same client port: same connection
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  router_->add(Method::kGet, "/x", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/x", "Connection: close\r\n")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  // The first request is the slowest: its answer must still come first.
  router_->add(Method::kGet, "/slow/{ms}", [](Request& req) -> asio::awaitable<Response> {
    asio::steady_timer t(co_await asio::this_coro::executor,
                         std::chrono::milliseconds(std::stoi(std::string(*req.param("ms")))));
    co_await t.async_wait(asio::use_awaitable);
    co_return Response::text(std::string(*req.param("ms")));
  });
  HttpServerOptions options;
  options.pipeline_limit = 2;
  start(options);
  RawClient c(port_);
  std::string burst;
  const std::vector<std::string> delays = {"60", "1", "20", "0", "5", "0", "0", "3"};
  for (const auto& d : delays) burst += http_get("/slow/" + d);
  ASSERT_TRUE(c.send(burst));
  for (const auto& d : delays) {
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, d);
  }
}

TEST_F(HttpServerTest, OversizedBodyIs413) {
  router_->add(Method::kPost, "/upload", echo_handler());
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  start(options);
  RawClient c(port_);
  ASSERT_TRUE(c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" +
                     std::string(5000, 'x')));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_EQ(json(res->body).at("error").at("code").as_string(), "resource_exhausted");
  EXPECT_TRUE(c.wait_closed());

  // A chunked body over the limit is refused as well; one within it is served.
  RawClient chunked(port_);
  ASSERT_TRUE(chunked.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\n0\r\n\r\n"));
  auto ok = chunked.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  ASSERT_TRUE(chunked.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "7d0\r\n" + std::string(2000, 'y') + "\r\n0\r\n\r\n"));
  auto big = chunked.read_response();
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
}

TEST_F(HttpServerTest, OversizedHeadersAre431) {
  router_->add(Method::kGet, "/x", echo_handler());
  HttpServerOptions options;
  options.max_header_bytes = 1024;
  start(options);
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/x", "X-Big: " + std::string(4000, 'h') + "\r\n")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 431);
  EXPECT_EQ(json(res->body).at("error").at("code").as_string(), "resource_exhausted");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("GARBAGE\r\n\r\n"));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, StalledRequestIsClosedWithinTheRequestTimeout) {
  router_->add(Method::kGet, "/x", echo_handler());
  HttpServerOptions options;
  options.request_timeout = 200ms;
  options.idle_timeout = 60s;
  start(options);
  RawClient c(port_);
  const auto begin = test::Clock::now();
  ASSERT_TRUE(c.send("GET /x HTTP/1.1\r\nHost: t\r\nX-Partial: "));
  EXPECT_TRUE(c.wait_closed(5s));
  const auto elapsed = test::Clock::now() - begin;
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  router_->add(Method::kGet, "/x", echo_handler());
  HttpServerOptions options;
  options.idle_timeout = 150ms;
  start(options);
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/x")));
  ASSERT_TRUE(c.read_response());
  const auto begin = test::Clock::now();
  EXPECT_TRUE(c.wait_closed(5s));
  EXPECT_GE(test::Clock::now() - begin, 100ms);
}

TEST_F(HttpServerTest, LongHandlerIsNotCutByTheIdleTimeout) {
  // Idle means nothing in flight: a handler slower than idle_timeout still gets its answer out.
  router_->add(Method::kGet, "/slow", [](Request&) -> asio::awaitable<Response> {
    asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return Response::text("done");
  });
  HttpServerOptions options;
  options.idle_timeout = 100ms;
  start(options);
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/slow")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "done");
}

TEST_F(HttpServerTest, HandlerExceptionIs500Json) {
  router_->add(Method::kGet, "/boom", [](Request&) -> asio::awaitable<Response> {
    throw std::runtime_error("kaboom");
    co_return Response::text("never");
  });
  router_->add(Method::kGet, "/ok", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/boom")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  auto body = json(res->body);
  EXPECT_EQ(body.at("error").at("code").as_string(), "internal");
  EXPECT_NE(std::string(body.at("error").at("message").as_string()).find("kaboom"), std::string::npos);
  ASSERT_TRUE(c.send(http_get("/ok")));  // the connection survives
  auto ok = c.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(HttpServerTest, HandlerErrorResultUsesTheMapping) {
  router_->add(Method::kGet, "/jobs/{id}", [](Request& req) -> asio::awaitable<Response> {
    co_return error_response(fail(Errc::kNotFound, "no job " + std::string(*req.param("id"))));
  });
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/jobs/j1")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, R"({"error":{"code":"not_found","message":"no job j1"}})");
}

TEST_F(HttpServerTest, ExpectContinueGetsAnInterimResponse) {
  router_->add(Method::kPost, "/upload", echo_handler());
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send("data"));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json(res->body).at("body").as_string(), "data");
}

TEST_F(HttpServerTest, PlainGetOnAWebSocketRouteIs426) {
  router_->add_websocket("/ws", [](const Request&, const std::shared_ptr<WebSocketSession>&) {});
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/ws")));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 426);
}

TEST_F(HttpServerTest, GracefulStopLetsAnInFlightRequestFinish) {
  test::AsyncGate gate(io_.executor());
  test::Signal entered;
  router_->add(Method::kGet, "/slow", [&](Request&) -> asio::awaitable<Response> {
    entered.set();
    co_await gate.wait();
    co_return Response::text("finished");
  });
  start();
  RawClient busy(port_);
  ASSERT_TRUE(busy.send(http_get("/slow")));
  ASSERT_TRUE(entered.wait());

  test::Signal stopped;
  server_->stop(10s, [&] { stopped.set(); });
  // New connections are not served: refused once the acceptor is closed, or closed unanswered
  // if one slipped in before that.
  {
    RawClient late(port_);
    if (late.connected()) {
      late.send(http_get("/slow"));
      EXPECT_FALSE(late.read_response(5s));
    }
  }
  EXPECT_TRUE(test::wait_until([&] { return !RawClient(port_).connected(); }));

  gate.open();
  auto res = busy.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "finished");
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_TRUE(busy.wait_closed());
  EXPECT_TRUE(stopped.wait());
  server_.reset();
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAtOnce) {
  router_->add(Method::kGet, "/x", echo_handler());
  start();
  RawClient idle(port_);
  ASSERT_TRUE(idle.send(http_get("/x")));
  ASSERT_TRUE(idle.read_response());
  test::Signal stopped;
  server_->stop(30s, [&] { stopped.set(); });
  EXPECT_TRUE(idle.wait_closed(5s));
  EXPECT_TRUE(stopped.wait(5s));
  server_.reset();
}

TEST_F(HttpServerTest, StopForceClosesAfterTheGracePeriod) {
  test::AsyncGate never(io_.executor());
  test::Signal entered;
  router_->add(Method::kGet, "/hang", [&](Request&) -> asio::awaitable<Response> {
    entered.set();
    co_await never.wait();  // cancelled by the forced stop
    co_return Response::text("late");
  });
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(http_get("/hang")));
  ASSERT_TRUE(entered.wait());
  test::Signal stopped;
  const auto begin = test::Clock::now();
  server_->stop(100ms, [&] { stopped.set(); });
  EXPECT_TRUE(c.wait_closed(5s));
  EXPECT_TRUE(stopped.wait(5s));
  EXPECT_GE(test::Clock::now() - begin, 90ms);
  server_.reset();
}

TEST_F(HttpServerTest, SecondServerOnTheSamePortIsUnavailable) {
  start();
  HttpServerOptions options;
  options.listen = ListenAddress{"127.0.0.1", port_};
  auto second = HttpServer::create(io_.context(), router_, options);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::kUnavailable);
  EXPECT_NE(second.error().message.find(std::to_string(port_)), std::string::npos);
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
  HttpServerOptions options;
  options.listen = ListenAddress{"::1", 0};
  auto server = HttpServer::create(io_.context(), router_, options);
  if (!server) GTEST_SKIP() << "no IPv6 loopback here: " << server.error().message;
  EXPECT_EQ((*server)->local_address().rfind("[::1]:", 0), 0u) << (*server)->local_address();
  EXPECT_NE((*server)->port(), 0);
}

}  // namespace
}  // namespace comfyfarm::net
