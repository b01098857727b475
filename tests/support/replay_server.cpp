#include "support/replay_server.hpp"

#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "support/test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <sstream>

namespace comfyfarm::test {

namespace json = boost::json;
namespace asio = boost::asio;

bool RecordedRequest::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (net::iequals(k, name)) return true;
  }
  return false;
}

namespace {

json::value load_json(const std::filesystem::path& p) {
  auto v = comfy::parse_json(read_file(p));
  return v ? std::move(*v) : json::value();
}

// Replaces every occurrence of `from` in string values (and keys) by `to`.
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

struct ReplayServer::State {
  ReplayOptions options;
  std::filesystem::path run_dir;
  std::string recorded_prompt_id;
  std::vector<std::string> connect_frames;  // recorded text frames before the POST
  std::vector<std::string> prompt_frames;   // text frames after the POST (with recorded id)
  mutable std::mutex mutex;
  std::vector<RecordedRequest> requests;
  std::vector<std::string> client_frames;
  std::vector<std::shared_ptr<net::WebSocketSession>> sessions;
  int connections = 0;

  void record(const net::Request& r) {
    RecordedRequest rec{r.method_name, r.target, {}, r.body};
    for (const auto& [k, v] : r.headers) rec.headers.emplace_back(k, v);
    std::lock_guard lock(mutex);
    requests.push_back(std::move(rec));
  }

  std::shared_ptr<net::WebSocketSession> latest_session() {
    std::lock_guard lock(mutex);
    return sessions.empty() ? nullptr : sessions.back();
  }

  void replay(const std::string& prompt_id) {
    auto session = latest_session();
    if (!session) return;
    std::vector<std::string> frames;
    for (const auto& frame : prompt_frames) {
      if (options.drop_after_frames >= 0 &&
          static_cast<int>(frames.size()) >= options.drop_after_frames) {
        break;
      }
      frames.push_back(replace_all(frame, recorded_prompt_id, prompt_id));
    }
    for (auto& f : frames) session->send_text(std::move(f));
    if (options.drop_after_frames >= 0) {
      asio::co_spawn(session->get_executor(), drop_when_flushed(session),
                     [](std::exception_ptr) {});
    }
  }

  // Closes the socket once the frames already queued are on the wire (close() would drop them).
  static asio::awaitable<void> drop_when_flushed(std::shared_ptr<net::WebSocketSession> session) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < 400 && session->stats().queued_messages > 0; ++i) {
      timer.expires_after(std::chrono::milliseconds(5));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    session->close(net::CloseCode::kGoingAway, "replay: dropped mid-prompt");
  }
};

ReplayServer::ReplayServer(ReplayOptions options) : state_(std::make_shared<State>()) {
  state_->options = std::move(options);
  state_->run_dir = fixtures_dir() / state_->options.scenario / state_->options.run;
  auto response = load_json(state_->run_dir / "prompt_response.json");
  if (auto* body = response.is_object() ? response.as_object().if_contains("body") : nullptr) {
    if (auto* id = body->is_object() ? body->as_object().if_contains("prompt_id") : nullptr) {
      state_->recorded_prompt_id = std::string(id->as_string());
    }
  }
  std::istringstream lines(read_file(state_->run_dir / "ws.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    auto v = comfy::parse_json(line);
    if (!v || !v->is_object()) continue;
    const auto& o = v->as_object();
    if (o.at("dir").as_string() != "recv" || o.at("kind").as_string() != "text") continue;
    const auto& msg = o.at("msg");
    std::string text = comfy::dumps(msg);
    const bool is_status = msg.as_object().at("type").as_string() == "status";
    if (o.at("t_rel_ms").to_number<double>() < 0) {
      state_->connect_frames.push_back(text);
    } else if (!is_status) {
      // queue broadcasts are not replayed: they concern the server, not the prompt
      state_->prompt_frames.push_back(text);
    }
  }

  auto router = std::make_shared<net::Router>();
  auto st = state_;
  router->add_websocket("/ws", [st](const net::Request& req,
                                    const std::shared_ptr<net::WebSocketSession>& session) {
    st->record(req);
    const std::string client_id = req.query_param("clientId").value_or("generated");
    {
      std::lock_guard lock(st->mutex);
      st->sessions.push_back(session);
      ++st->connections;
    }
    session->on_message([st](net::WebSocketMessage m) {
      std::lock_guard lock(st->mutex);
      st->client_frames.push_back(m.data);
    });
    session->send_text(R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": ")" +
                       client_id + R"("}})");
  });
  router->add(net::Method::kPost, "/prompt", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    if (st->options.prompt_500) {
      co_return net::Response::text("500 Internal Server Error\n\nServer got itself in trouble", 500);
    }
    auto recorded = load_json(st->run_dir / "prompt_response.json").as_object();
    const int status = static_cast<int>(recorded.at("http_status").to_number<std::int64_t>());
    json::value body = recorded.at("body");
    if (status != 200) co_return net::Response::text(comfy::dumps(body), status, "application/json; charset=utf-8");
    auto request = comfy::parse_json(req.body);
    std::string id = st->options.force_prompt_id;
    if (id.empty() && request && request->is_object()) {
      if (auto* p = request->as_object().if_contains("prompt_id")) id = std::string(p->as_string());
    }
    body.as_object()["prompt_id"] = id;
    if (st->options.events_before_reply) {
      st->replay(id);
      // Let the frames reach the client before the reply goes out.
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      co_return net::Response::text(comfy::dumps(body), 200, "application/json; charset=utf-8");
    }
    auto reply = net::Response::text(comfy::dumps(body), 200, "application/json; charset=utf-8");
    // The frames follow the reply (a named handler: GCC 12 destroys a capturing lambda
    // temporary twice inside a coroutine).
    auto replay_later = std::bind(&State::replay, st, id);
    asio::post(co_await asio::this_coro::executor, std::move(replay_later));
    co_return reply;
  });
  router->add(net::Method::kGet, "/prompt", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    co_return net::Response::text(R"({"exec_info": {"queue_remaining": 0}})", 200, "application/json; charset=utf-8");
  });
  router->add(net::Method::kGet, "/history/{prompt_id}", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    const std::string id(req.param("prompt_id").value_or(""));
    auto text = read_file(st->run_dir / "history.json");
    co_return net::Response::text(replace_all(text, st->recorded_prompt_id, id), 200,
                                  "application/json; charset=utf-8");
  });
  auto file_route = [st](std::string path) {
    return [st, path](net::Request& req) -> asio::awaitable<net::Response> {
      st->record(req);
      co_return net::Response::text(read_file(fixtures_dir() / path), 200, "application/json; charset=utf-8");
    };
  };
  router->add(net::Method::kGet, "/object_info", file_route("object_info_used.json"));
  router->add(net::Method::kGet, "/queue", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    co_return net::Response::text(read_file(st->run_dir / "queue_after.json"), 200, "application/json; charset=utf-8");
  });
  router->add(net::Method::kGet, "/system_stats", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    if (st->options.system_stats_delay.count() > 0) {
      asio::steady_timer t(co_await asio::this_coro::executor, st->options.system_stats_delay);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return net::Response::text(read_file(fixtures_dir() / "system_stats.json"), 200, "application/json; charset=utf-8");
  });
  router->add(net::Method::kGet, "/models/{folder}", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    if (req.param("folder").value_or("") != "checkpoints") co_return net::Response::text("", 404);
    co_return net::Response::text(R"(["v1-5-pruned-emaonly.safetensors", "sdxl/sd_xl_base_1.0.safetensors"])", 200,
                                  "application/json; charset=utf-8");
  });
  auto empty_ok = [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    co_return net::Response::text("", 200, "text/plain; charset=utf-8");
  };
  router->add(net::Method::kPost, "/interrupt", empty_ok);
  router->add(net::Method::kPost, "/free", empty_ok);
  router->add(net::Method::kPost, "/upload/image", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    const auto ct = req.headers.get("Content-Type").value_or("");
    if (ct.find("multipart/form-data; boundary=") != 0 ||
        req.body.find("filename=\"example.png\"") == std::string::npos) {
      co_return net::Response::text("bad upload", 400);
    }
    co_return net::Response::text(R"({"name": "example (1).png", "subfolder": "", "type": "input"})", 200,
                                  "application/json; charset=utf-8");
  });
  router->add(net::Method::kGet, "/view", [st](net::Request& req) -> asio::awaitable<net::Response> {
    st->record(req);
    if (req.query_param("filename").value_or("") != "golden_slow_00001_.png") co_return net::Response::text("", 404);
    co_return net::Response::text(std::string("\x89PNG\r\n\x1a\n", 8) + "pixels", 200, "image/png");
  });

  io_ = std::make_unique<net::IoRuntime>(1);
  net::HttpServerOptions opts;
  opts.listen = net::ListenAddress{"127.0.0.1", 0};
  auto server = net::HttpServer::create(io_->context(), router, opts);
  if (!server) {
    ADD_FAILURE() << "replay server: " << server.error().message;
    return;
  }
  server_ = std::move(*server);
  server_->start();
}

ReplayServer::~ReplayServer() {
  if (server_) {
    std::promise<void> done;
    auto f = done.get_future();
    server_->stop(std::chrono::milliseconds(0), [&done] { done.set_value(); });
    f.wait_for(std::chrono::seconds(5));
  }
  server_.reset();
  io_.reset();
}

std::string ReplayServer::base_url() const {
  return server_ ? "http://" + server_->local_address() : "http://127.0.0.1:1";
}

std::vector<RecordedRequest> ReplayServer::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

std::vector<std::string> ReplayServer::client_frames() const {
  std::lock_guard lock(state_->mutex);
  return state_->client_frames;
}

int ReplayServer::websocket_connections() const {
  std::lock_guard lock(state_->mutex);
  return state_->connections;
}

std::vector<json::value> ReplayServer::expected_frames(const std::string& prompt_id) const {
  std::vector<json::value> out;
  for (const auto& f : state_->prompt_frames) {
    auto v = comfy::parse_json(replace_all(f, state_->recorded_prompt_id, prompt_id));
    if (v) out.push_back(std::move(*v));
  }
  return out;
}

}  // namespace comfyfarm::test
