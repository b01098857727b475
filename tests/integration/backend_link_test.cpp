#include "backend/backend_link.hpp"

#include "comfy/json_util.hpp"
#include "net/io_runtime.hpp"
#include "support/replay_server.hpp"
#include "support/test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/as_tuple.hpp>
#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace comfyfarm::backend {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

// Runs a coroutine on the io_context and waits for its result, with a deadline.
template <class T>
T run(net::IoRuntime& io, asio::awaitable<T> coro) {
  auto fut = asio::co_spawn(io.executor(), std::move(coro), asio::use_future);
  if (fut.wait_for(kDeadline) != std::future_status::ready) {
    ADD_FAILURE() << "coroutine did not finish within the deadline";
    std::abort();
  }
  return fut.get();
}

json::object load_workflow(const std::string& scenario) {
  auto v = comfy::parse_json(test::read_file(test::fixtures_dir() / scenario / "workflow.json"));
  EXPECT_TRUE(v && v->is_object());
  return v ? v->as_object() : json::object();
}

struct Collected {
  std::vector<PromptEvent> events;
  std::optional<BackendError> error;
};

// Reads a stream until the end-of-prompt `executing {node: null}` or an error.
asio::awaitable<Collected> collect(std::shared_ptr<PromptStream> stream,
                                   bool stop_on_link_event = false) {
  Collected out;
  for (;;) {
    auto e = co_await stream->next(5s);
    if (!e) {
      out.error = e.error();
      co_return out;
    }
    out.events.push_back(*e);
    if (std::holds_alternative<LinkEvent>(e->event)) {
      if (stop_on_link_event) co_return out;
      continue;
    }
    if (const auto* ev = std::get_if<comfy::Event>(&e->event)) {
      if (const auto* ex = std::get_if<comfy::Executing>(ev); ex && ex->is_end_of_prompt()) {
        co_return out;
      }
    }
  }
}

class BackendLinkTest : public ::testing::Test {
 protected:
  std::shared_ptr<BackendLink> make_link(const std::string& url,
                                         std::chrono::milliseconds probe_interval = 100ms) {
    BackendLinkOptions o;
    o.base_url = url;
    o.client_id = "farm-test-client";
    o.probe_interval = probe_interval;
    o.probe_timeout = 1s;
    o.request_timeout = 2s;
    o.connect_timeout = 1s;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    auto link = BackendLink::create(io_.executor(), o);
    EXPECT_TRUE(link) << (link ? "" : link.error().message);
    (*link)->start();
    return *link;
  }

  // Waits until `pred` holds, with a deadline.
  template <class Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }

  net::IoRuntime io_{1};
};

TEST_F(BackendLinkTest, StreamsARecordedRunInOrderUnderTheCallersPromptId) {
  test::ReplayServer server({.scenario = "slow_blur"});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(eventually([&] { return link->health().websocket_connected; }));

  const std::string id = "11111111-2222-3333-4444-555555555555";
  auto stream = run(io_, link->watch(id));
  auto reply = run(io_, link->submit(id, load_workflow("slow_blur")));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->prompt_id, id);

  auto got = run(io_, collect(stream));
  ASSERT_FALSE(got.error) << got.error->message;
  const auto expected = server.expected_frames(id);
  ASSERT_EQ(got.events.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    const auto& ev = std::get<comfy::Event>(got.events[i].event);
    EXPECT_EQ(comfy::parse_json(comfy::encode_event(ev)).value(), expected[i]);
    EXPECT_EQ(comfy::parse_json(*got.events[i].raw).value(), expected[i]);
    if (i > 0) {
      EXPECT_GE(got.events[i].received_at, got.events[i - 1].received_at);
    }
  }
  link->stop();
}

TEST_F(BackendLinkTest, BuffersEventsThatArriveBeforeTheHttpReply) {
  test::ReplayServer server({.scenario = "branch_two_outputs", .events_before_reply = true});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(eventually([&] { return link->health().websocket_connected; }));

  const std::string id = "early-events-prompt";
  auto reply = run(io_, link->submit(id, load_workflow("branch_two_outputs")));
  ASSERT_TRUE(reply) << reply.error().message;
  // Only now does anyone watch: everything sent before the reply must still be there.
  auto stream = run(io_, link->watch(id));
  auto got = run(io_, collect(stream));
  ASSERT_FALSE(got.error) << got.error->message;
  EXPECT_EQ(got.events.size(), server.expected_frames(id).size());
  ASSERT_FALSE(got.events.empty());
  EXPECT_TRUE(std::holds_alternative<comfy::ExecutionStart>(
      std::get<comfy::Event>(got.events.front().event)));
}

TEST_F(BackendLinkTest, MapsAnOldServersOwnPromptIdToTheCallers) {
  test::ReplayServer server({.scenario = "text_outputs", .force_prompt_id = "server-made-id"});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(eventually([&] { return link->health().websocket_connected; }));
  auto stream = run(io_, link->watch("mine"));
  auto reply = run(io_, link->submit("mine", load_workflow("text_outputs")));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->prompt_id, "server-made-id");
  auto got = run(io_, collect(stream));
  ASSERT_FALSE(got.error) << got.error->message;
  EXPECT_EQ(got.events.size(), server.expected_frames("server-made-id").size());
}

TEST_F(BackendLinkTest, ValidationRejectionIsTypedWithNodeErrors) {
  test::ReplayServer server({.scenario = "validation_bad_combo_value"});
  auto link = make_link(server.base_url());
  auto reply = run(io_, link->submit("p1", load_workflow("validation_bad_combo_value")));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, BackendErrc::kValidation);
  EXPECT_EQ(reply.error().http_status, 400);
  ASSERT_TRUE(reply.error().validation);
  EXPECT_EQ(reply.error().validation->error.type, "prompt_outputs_failed_validation");
  ASSERT_EQ(reply.error().validation->node_errors.size(), 1u);
  EXPECT_EQ(reply.error().validation->node_errors[0].errors.at(0).type, "value_not_in_list");
}

TEST_F(BackendLinkTest, ServerErrorIsTyped) {
  test::ReplayServer server({.prompt_500 = true});
  auto link = make_link(server.base_url());
  auto reply = run(io_, link->submit("p1", load_workflow("slow_blur")));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, BackendErrc::kServerError);
  EXPECT_EQ(reply.error().http_status, 500);
}

TEST_F(BackendLinkTest, ConnectionRefusedIsTypedAndTheBackendGoesDown) {
  // A port that was just bound and released: nothing listens there.
  std::uint16_t port = 0;
  {
    asio::io_context ctx;
    asio::ip::tcp::acceptor a(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto link = make_link("http://127.0.0.1:" + std::to_string(port), 50ms);
  auto reply = run(io_, link->submit("p1", load_workflow("slow_blur")));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, BackendErrc::kRefused) << reply.error().message;
  EXPECT_TRUE(eventually([&] { return link->health().state == BackendHealth::State::kDown; }));
  EXPECT_FALSE(link->health().websocket_connected);
}

TEST_F(BackendLinkTest, SlowAnswerIsATimeout) {
  test::ReplayServer server({.system_stats_delay = 5s});
  auto link = make_link(server.base_url());
  const auto start = std::chrono::steady_clock::now();
  auto stats = run(io_, link->system_stats());
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code, BackendErrc::kTimeout) << stats.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST_F(BackendLinkTest, DroppedSocketMidPromptIsReportedAndRecovered) {
  test::ReplayServer server({.scenario = "slow_blur", .drop_after_frames = 5});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(eventually([&] { return link->health().websocket_connected; }));
  const std::string id = "dropped-prompt";
  auto stream = run(io_, link->watch(id));
  ASSERT_TRUE(run(io_, link->submit(id, load_workflow("slow_blur"))));

  auto first = run(io_, collect(stream, /*stop_on_link_event=*/true));
  ASSERT_FALSE(first.error) << first.error->message;
  ASSERT_EQ(first.events.size(), 6u);  // 5 frames, then the disconnect
  const auto& lost = std::get<LinkEvent>(first.events.back().event);
  EXPECT_EQ(lost.kind, LinkEvent::Kind::kDisconnected);

  auto second = run(io_, collect(stream, /*stop_on_link_event=*/true));
  ASSERT_FALSE(second.error) << second.error->message;
  ASSERT_EQ(second.events.size(), 1u);
  EXPECT_EQ(std::get<LinkEvent>(second.events.back().event).kind, LinkEvent::Kind::kReconnected);
  EXPECT_TRUE(eventually([&] { return server.websocket_connections() >= 2; }));
  EXPECT_GE(link->health().reconnects, 1u);

  // What the socket missed is read from the history.
  auto entry = run(io_, link->history(id));
  ASSERT_TRUE(entry) << entry.error().message;
  ASSERT_TRUE(entry->has_value());
  EXPECT_EQ((*entry)->prompt_id, id);
  ASSERT_TRUE((*entry)->status);
  EXPECT_EQ((*entry)->status->status_str, "success");
}

TEST_F(BackendLinkTest, NeverSendsAnOriginHeaderAndNegotiatesPreviewMetadata) {
  test::ReplayServer server({});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(eventually([&] { return link->health().state == BackendHealth::State::kUp; }));
  ASSERT_TRUE(run(io_, link->system_stats()));
  ASSERT_TRUE(run(io_, link->object_info()));
  ASSERT_TRUE(run(io_, link->queue()));
  ASSERT_TRUE(eventually([&] { return !server.client_frames().empty(); }));
  const auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 4u);
  bool saw_upgrade = false;
  for (const auto& r : reqs) {
    EXPECT_FALSE(r.has_header("Origin")) << r.method << " " << r.target;
    if (r.target.rfind("/ws?clientId=farm-test-client", 0) == 0) saw_upgrade = true;
  }
  EXPECT_TRUE(saw_upgrade);
  auto first = comfy::parse_json(server.client_frames().front());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->at("type").as_string(), "feature_flags");
  EXPECT_EQ(first->at("data").at("supports_preview_metadata").as_bool(), true);
}

TEST_F(BackendLinkTest, ReadsServerBodiesAsTypes) {
  test::ReplayServer server({.scenario = "slow_blur"});
  auto link = make_link(server.base_url());
  auto stats = run(io_, link->system_stats());
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->system.os, "posix");
  ASSERT_EQ(stats->devices.size(), 1u);
  EXPECT_EQ(stats->devices[0].type, "cpu");

  auto info = run(io_, link->object_info());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->classes.size(), 14u);

  auto q = run(io_, link->queue());
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_TRUE(q->running.empty());

  auto models = run(io_, link->models("checkpoints"));
  ASSERT_TRUE(models) << models.error().message;
  EXPECT_EQ(models->size(), 2u);
  auto unknown = run(io_, link->models("nope"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, BackendErrc::kBadRequest);
  EXPECT_EQ(unknown.error().http_status, 404);

  auto exec = run(io_, link->exec_info());
  ASSERT_TRUE(exec);
  EXPECT_EQ(exec->queue_remaining, 0);
}

TEST_F(BackendLinkTest, ControlCallsSendWhatComfyUIExpects) {
  test::ReplayServer server({});
  auto link = make_link(server.base_url());
  ASSERT_TRUE(run(io_, link->interrupt(std::string("p-42"))));
  ASSERT_TRUE(run(io_, link->interrupt(std::nullopt)));
  ASSERT_TRUE(run(io_, link->free(true, false)));
  auto up = run(io_, link->upload_image("example.png", std::string("\x89PNG\r\n\x1a\nabc", 11)));
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(up->name, "example (1).png");
  EXPECT_EQ(up->type, "input");
  auto bad = run(io_, link->upload_image("../etc/passwd", "x"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, BackendErrc::kInvalidArgument);
  auto file = run(io_, link->view("golden_slow_00001_.png"));
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->content_type, "image/png");
  EXPECT_EQ(file->bytes.substr(1, 3), "PNG");

  std::vector<std::string> interrupts, frees;
  for (const auto& r : server.requests()) {
    if (r.target == "/interrupt") interrupts.push_back(r.body);
    if (r.target == "/free") frees.push_back(r.body);
  }
  ASSERT_EQ(interrupts.size(), 2u);
  EXPECT_EQ(comfy::parse_json(interrupts[0]).value(), json::value({{"prompt_id", "p-42"}}));
  EXPECT_TRUE(interrupts[1].empty());
  ASSERT_EQ(frees.size(), 1u);
  EXPECT_EQ(comfy::parse_json(frees[0]).value(),
            json::value({{"unload_models", true}, {"free_memory", false}}));
}

TEST_F(BackendLinkTest, StopEndsWatchersWithCancelled) {
  test::ReplayServer server({});
  auto link = make_link(server.base_url());
  auto stream = run(io_, link->watch("never-submitted"));
  link->stop();
  auto e = run(io_, stream->next(5s));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, BackendErrc::kCancelled);
}

TEST(BackendLinkCreate, RejectsABadUrl) {
  net::IoRuntime io(1);
  auto link = BackendLink::create(io.executor(), BackendLinkOptions{.base_url = "ftp://x"});
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace comfyfarm::backend
