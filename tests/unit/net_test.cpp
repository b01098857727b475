// net: listen addresses, the ready file, the Errc -> HTTP mapping, query parsing, the router,
// run_blocking and signal handling (no HTTP traffic; see net_http_*_test.cpp for that).
#include "net/listen_address.hpp"

#include "net/error_response.hpp"
#include "net/http_types.hpp"
#include "net/io_runtime.hpp"
#include "net/ready_file.hpp"
#include "net/router.hpp"
#include "net/run_blocking.hpp"
#include "net/shutdown_signals.hpp"
#include "net_test_util.hpp"
#include "support/test_support.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace comfyfarm::net {
namespace {

using test::run_sync;
using namespace std::chrono_literals;

// ---- ListenAddress ----

TEST(ListenAddress, ParsesIpv4AndPort) {
  auto a = parse_listen_address("127.0.0.1:8188");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8188);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8188");
}

TEST(ListenAddress, PortZeroAndHostNames) {
  auto a = parse_listen_address("localhost:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "localhost");
  EXPECT_EQ(a->port, 0);
  auto b = parse_listen_address("0.0.0.0:65535");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 65535);
}

TEST(ListenAddress, ParsesBracketedIpv6) {
  auto a = parse_listen_address("[::1]:0");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(a->to_string(), "[::1]:0");
  auto b = parse_listen_address("[::]:8188");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::");
}

TEST(ListenAddress, RejectsMalformed) {
  for (const char* text : {"", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:80x",
                           "127.0.0.1:65536", "127.0.0.1:-1", "::1:80", "[::1", "[::1]80", "[::1]:",
                           "[]:80", "[zz]:1", "[127.0.0.1]:1", "999.1.1.1:80", "a b:1", "-x:1"}) {
    auto a = parse_listen_address(text);
    ASSERT_FALSE(a) << "accepted '" << text << "'";
    EXPECT_EQ(a.error().code, Errc::kInvalidArgument);
    EXPECT_NE(a.error().message.find("invalid listen address"), std::string::npos);
  }
}

TEST(ListenAddress, FormatsHostPort) {
  EXPECT_EQ(format_host_port("::1", 80), "[::1]:80");
  EXPECT_EQ(format_host_port("10.0.0.1", 1), "10.0.0.1:1");
}

// ---- ready file ----

TEST(ReadyFile, WritesHttpAndPid) {
  comfyfarm::test::TempDir dir;
  const auto path = dir.path() / "ready.json";
  ASSERT_TRUE(write_ready_file(path, "127.0.0.1:43210"));
  const auto doc = boost::json::parse(comfyfarm::test::read_file(path)).as_object();
  EXPECT_EQ(doc.at("http").as_string(), "127.0.0.1:43210");
  EXPECT_EQ(doc.at("pid").as_int64(), static_cast<std::int64_t>(::getpid()));
  EXPECT_EQ(doc.size(), 2u);
}

TEST(ReadyFile, ExtraFieldsGoBetweenHttpAndPid) {
  comfyfarm::test::TempDir dir;
  const auto path = dir.path() / "ready.json";
  boost::json::object extra;
  extra["servers"] = boost::json::array{boost::json::object{{"http", "127.0.0.1:1"}},
                                        boost::json::object{{"http", "127.0.0.1:2"}}};
  ASSERT_TRUE(write_ready_file(path, "127.0.0.1:9", extra));
  const auto text = comfyfarm::test::read_file(path);
  EXPECT_EQ(text.find("{\"http\":\"127.0.0.1:9\",\"servers\":[{\"http\":\"127.0.0.1:1\"},"
                      "{\"http\":\"127.0.0.1:2\"}],\"pid\":"),
            0u)
      << text;
}

TEST(ReadyFile, RejectsReservedExtraFields) {
  boost::json::object extra{{"pid", 1}};
  auto doc = make_ready_document("127.0.0.1:1", extra);
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, Errc::kInvalidArgument);
}

TEST(ReadyFile, ReplacesAtomicallyAndLeavesNoTempFiles) {
  comfyfarm::test::TempDir dir;
  const auto path = dir.path() / "ready.json";
  {
    std::ofstream old(path);
    old << "old contents";
  }
  // A reader that opened the old file keeps seeing it whole: the new file is renamed over the
  // name, never truncated and rewritten in place.
  std::ifstream reader(path);
  ASSERT_TRUE(write_ready_file(path, "127.0.0.1:1"));
  ASSERT_TRUE(write_ready_file(path, "127.0.0.1:2"));
  std::string old_text;
  std::getline(reader, old_text);
  EXPECT_EQ(old_text, "old contents");
  const auto doc = boost::json::parse(comfyfarm::test::read_file(path)).as_object();
  EXPECT_EQ(doc.at("http").as_string(), "127.0.0.1:2");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "ready.json");
  }
  EXPECT_EQ(files, 1);
}

TEST(ReadyFile, MissingDirectoryIsAnError) {
  comfyfarm::test::TempDir dir;
  auto result = write_file_atomically(dir.path() / "no" / "such" / "ready.json", "{}");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::kUnavailable);
  EXPECT_NE(result.error().message.find("cannot create"), std::string::npos);
}

// ---- Errc -> HTTP ----

TEST(ErrorResponse, MapsEveryErrcToOneStatus) {
  const std::pair<Errc, int> table[] = {
      {Errc::kInvalidArgument, 400}, {Errc::kNotFound, 404},       {Errc::kAlreadyExists, 409},
      {Errc::kFailedPrecondition, 409}, {Errc::kResourceExhausted, 429},
      {Errc::kUnavailable, 503},     {Errc::kTimeout, 504},        {Errc::kCancelled, 503},
      {Errc::kProtocol, 502},        {Errc::kRejected, 422},       {Errc::kInternal, 500},
  };
  for (const auto& [code, status] : table) {
    EXPECT_EQ(http_status(code), status) << to_string(code);
    const auto res = error_response(fail(code, "detail"));
    EXPECT_EQ(res.status, status);
    EXPECT_EQ(res.headers.get("content-type"), "application/json");
    const auto body = boost::json::parse(res.body);
    EXPECT_EQ(body.at("error").at("code").as_string(), to_string(code));
    EXPECT_EQ(body.at("error").at("message").as_string(), "detail");
  }
}

TEST(ErrorResponse, BodyShape) {
  const auto res = error_response(fail(Errc::kNotFound, "no job \"x\""));
  EXPECT_EQ(res.body, R"({"error":{"code":"not_found","message":"no job \"x\""}})");
  const auto explicit_status = json_error(413, Errc::kResourceExhausted, "too big");
  EXPECT_EQ(explicit_status.status, 413);
  EXPECT_EQ(explicit_status.body, R"({"error":{"code":"resource_exhausted","message":"too big"}})");
}

// ---- headers, query ----

TEST(Headers, NamesAreCaseInsensitive) {
  Headers h{{"Content-Type", "a"}};
  EXPECT_EQ(h.get("content-type"), "a");
  h.add("X-Many", "1");
  h.add("x-many", "2");
  EXPECT_EQ(h.get("X-MANY"), "1");
  h.set("X-Many", "3");
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.get("x-many"), "3");
  EXPECT_EQ(h.erase("X-MANY"), 1u);
  EXPECT_FALSE(h.contains("x-many"));
}

TEST(Query, ParsesAndDecodes) {
  auto q = parse_query("a=1&b=x%20y+z&flag&a=2&empty=");
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->get("a"), "1");
  EXPECT_EQ(q->get_all("a").size(), 2u);
  EXPECT_EQ(q->get("b"), "x y z");
  EXPECT_EQ(q->get("flag"), "");
  EXPECT_EQ(q->get("empty"), "");
  EXPECT_FALSE(q->get("missing"));
  EXPECT_TRUE(parse_query("")->empty());
}

TEST(Query, MalformedEscapeIsInvalidArgument) {
  auto q = parse_query("a=%zz");
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::kInvalidArgument);
  Request r;
  r.query_string = "a=%zz";
  EXPECT_FALSE(r.query_param("a"));
  r.query_string = "clientId=abc%2Fd";
  EXPECT_EQ(r.query_param("clientId"), "abc/d");
}

// ---- Router ----

Handler stub(std::string name) {
  return [name](Request&) -> boost::asio::awaitable<Response> { co_return Response::text(name); };
}

TEST(Router, MatchesLiteralsAndDecodesParams) {
  Router r;
  r.add(Method::kGet, "/history/{prompt_id}", stub("one"));
  r.add(Method::kGet, "/models/{folder}/{name}", stub("two"));
  auto m = r.match(Method::kGet, "/history/abc%20def");
  ASSERT_EQ(m.kind, Router::Match::Kind::kFound);
  EXPECT_EQ(m.route->pattern, "/history/{prompt_id}");
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "prompt_id");
  EXPECT_EQ(m.params[0].second, "abc def");
  auto two = r.match(Method::kGet, "/models/checkpoints/a%2Fb.safetensors");
  ASSERT_EQ(two.kind, Router::Match::Kind::kFound);
  EXPECT_EQ(two.params[1].second, "a/b.safetensors");
  EXPECT_EQ(r.match(Method::kGet, "/history").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(r.match(Method::kGet, "/history/").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(r.match(Method::kGet, "/history/a/b").kind, Router::Match::Kind::kNotFound);
}

TEST(Router, PrefersMoreLiteralSegments) {
  Router r;
  r.add(Method::kGet, "/history/{id}", stub("param"));
  r.add(Method::kGet, "/history/latest", stub("literal"));
  EXPECT_EQ(r.match(Method::kGet, "/history/latest").route->pattern, "/history/latest");
  EXPECT_EQ(r.match(Method::kGet, "/history/x").route->pattern, "/history/{id}");
}

TEST(Router, TailParameterTakesTheRest) {
  Router r;
  r.add(Method::kGet, "/extensions/{path...}", stub("tail"));
  auto m = r.match(Method::kGet, "/extensions/core/a%20b/c.js");
  ASSERT_EQ(m.kind, Router::Match::Kind::kFound);
  EXPECT_EQ(m.params[0].second, "core/a b/c.js");
  auto empty = r.match(Method::kGet, "/extensions");
  ASSERT_EQ(empty.kind, Router::Match::Kind::kFound);
  EXPECT_EQ(empty.params[0].second, "");
}

TEST(Router, MethodNotAllowedListsAllow) {
  Router r;
  r.add(Method::kGet, "/queue", stub("get"));
  r.add(Method::kPost, "/queue", stub("post"));
  auto m = r.match(Method::kDelete, "/queue");
  EXPECT_EQ(m.kind, Router::Match::Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, POST, HEAD");
  EXPECT_EQ(r.match(Method::kHead, "/queue").route->method, Method::kGet);
}

TEST(Router, ApiAliasRegistersBothPaths) {
  Router r;
  r.add_with_api_alias(Method::kPost, "/prompt", stub("prompt"));
  r.add_websocket_with_api_alias("/ws", [](const Request&, const std::shared_ptr<WebSocketSession>&) {});
  EXPECT_EQ(r.size(), 4u);
  EXPECT_EQ(r.match(Method::kPost, "/prompt").kind, Router::Match::Kind::kFound);
  EXPECT_EQ(r.match(Method::kPost, "/api/prompt").kind, Router::Match::Kind::kFound);
  EXPECT_TRUE(r.match(Method::kGet, "/api/ws").route->is_websocket());
  EXPECT_EQ(r.match(Method::kPost, "/api/api/prompt").kind, Router::Match::Kind::kNotFound);
}

TEST(Router, BadPathsAndPatterns) {
  Router r;
  r.add(Method::kGet, "/view/{name}", stub("view"));
  EXPECT_EQ(r.match(Method::kGet, "/view/%zz").kind, Router::Match::Kind::kBadPath);
  EXPECT_EQ(r.match(Method::kGet, "view").kind, Router::Match::Kind::kBadPath);
  EXPECT_TRUE(Router::validate_pattern("/"));
  EXPECT_TRUE(Router::validate_pattern("/a/{b}/{c...}"));
  for (const char* bad : {"", "a", "/a{b}", "/{}", "/{a...}/b", "/{a b}", "/x}"}) {
    EXPECT_FALSE(Router::validate_pattern(bad)) << bad;
  }
}

// ---- run_blocking ----

TEST(RunBlocking, RunsOnThePoolAndResumesOnTheCaller) {
  IoRuntime io(1);
  boost::asio::thread_pool pool(1);
  const auto io_thread = run_sync(io.executor(), []() -> boost::asio::awaitable<std::thread::id> {
    co_return std::this_thread::get_id();
  }());
  struct Seen {
    std::thread::id worker;
    std::thread::id resumed;
    int value = 0;
  };
  auto seen = run_sync(io.executor(), [&pool]() -> boost::asio::awaitable<Seen> {
    Seen s;
    auto work = [&s] {
      s.worker = std::this_thread::get_id();
      return 42;
    };
    s.value = co_await run_blocking(pool, work);
    s.resumed = std::this_thread::get_id();
    co_return s;
  }());
  EXPECT_EQ(seen.value, 42);
  EXPECT_NE(seen.worker, io_thread);
  EXPECT_EQ(seen.resumed, io_thread);
  pool.join();
}

TEST(RunBlocking, PropagatesExceptionsAndSupportsVoidAndMoveOnly) {
  IoRuntime io(1);
  boost::asio::thread_pool pool(2);
  const bool threw = run_sync(io.executor(), [&pool]() -> boost::asio::awaitable<bool> {
    auto work = []() -> int { throw std::runtime_error("disk on fire"); };
    try {
      co_await run_blocking(pool, work);
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what()) == "disk on fire";
    }
    co_return false;
  }());
  EXPECT_TRUE(threw);
  int side_effect = 0;
  run_sync(io.executor(), [&]() -> boost::asio::awaitable<void> {
    auto work = [&] { side_effect = 7; };
    co_await run_blocking(pool, work);
  }());
  EXPECT_EQ(side_effect, 7);
  auto moved = run_sync(io.executor(), [&pool]() -> boost::asio::awaitable<int> {
    auto work = [] { return std::make_unique<int>(5); };
    auto p = co_await run_blocking(pool, work);
    co_return *p;
  }());
  EXPECT_EQ(moved, 5);
  auto result = run_sync(io.executor(), [&pool]() -> boost::asio::awaitable<bool> {
    auto work = []() -> Result<int> { return fail(Errc::kNotFound, "x"); };
    Result<int> r = co_await run_blocking(pool, work);
    co_return !r && r.error().code == Errc::kNotFound;
  }());
  EXPECT_TRUE(result);
  pool.join();
}

TEST(RunBlocking, CallableWithOwningCaptures) {
  // The callable owns heap state: it must be destroyed exactly once (ASan checks).
  IoRuntime io(1);
  boost::asio::thread_pool pool(1);
  auto shared = std::make_shared<int>(3);
  auto text = run_sync(io.executor(), [&pool, shared]() -> boost::asio::awaitable<std::string> {
    std::string big(1000, 'q');
    auto work = [big, shared] { return big.substr(0, 2) + std::to_string(*shared); };
    co_return co_await run_blocking(pool, work);
  }());
  EXPECT_EQ(text, "qq3");
  EXPECT_EQ(shared.use_count(), 1);
  pool.join();
}

// ---- signals ----

TEST(ShutdownSignals, SigtermCallsTheCallback) {
  IoRuntime io(1);
  test::Signal got;
  std::atomic<int> signo{0};
  {
    ShutdownSignals signals(io.executor(), [&](int s) {
      signo = s;
      got.set();
    });
    ASSERT_EQ(::raise(SIGTERM), 0);
    ASSERT_TRUE(got.wait());
    EXPECT_EQ(signo.load(), SIGTERM);
  }
}

}  // namespace
}  // namespace comfyfarm::net
