#include "backend/backend_link.hpp"
#include "core/random_id.hpp"

#include "backend/multipart.hpp"
#include "comfy/json_util.hpp"
#include "net/http_client.hpp"
#include "net/websocket_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <list>
#include <mutex>
#include <random>
#include <unordered_map>

namespace comfyfarm::backend {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::use_awaitable;
using std::chrono::milliseconds;

std::string_view to_string(BackendHealth::State state) noexcept {
  switch (state) {
    case BackendHealth::State::kUnknown: return "unknown";
    case BackendHealth::State::kUp: return "up";
    case BackendHealth::State::kDown: return "down";
  }
  return "unknown";
}

namespace {

constexpr auto kForever = std::chrono::hours(24);


std::string url_encode(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

// Progress-type events may be dropped when a reader falls behind; lifecycle events never are.
bool droppable(const PromptEvent& e) {
  if (std::holds_alternative<comfy::BinaryEvent>(e.event)) return true;
  if (const auto* ev = std::get_if<comfy::Event>(&e.event)) {
    return std::holds_alternative<comfy::Progress>(*ev) ||
           std::holds_alternative<comfy::ProgressState>(*ev);
  }
  return false;
}

// Ends the coroutine's wait on `timer` (used as a condition variable on one strand).
void wake(asio::steady_timer& timer) { timer.cancel(); }

}  // namespace

// ---------------------------------------------------------------------------------------------

class StreamImpl final : public PromptStream {
 public:
  StreamImpl(asio::strand<asio::any_io_executor> strand, std::string prompt_id,
             std::size_t max_events)
      : strand_(strand), prompt_id_(std::move(prompt_id)), max_events_(max_events),
        timer_(strand) {}

  asio::awaitable<BackendResult<PromptEvent>> next(milliseconds timeout) override {
    co_return co_await asio::co_spawn(strand_, next_on_strand(timeout), use_awaitable);
  }
  std::uint64_t dropped() const override { return dropped_.load(); }
  const std::string& prompt_id() const override { return prompt_id_; }

  // On the strand.
  void push(PromptEvent e) {
    if (closed_) return;
    if (events_.size() >= max_events_ && droppable(e)) {
      ++dropped_;
      return;
    }
    events_.push_back(std::move(e));
    wake(timer_);
  }
  void close() {
    closed_ = true;
    wake(timer_);
  }

 private:
  asio::awaitable<BackendResult<PromptEvent>> next_on_strand(milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!events_.empty()) {
        PromptEvent e = std::move(events_.front());
        events_.pop_front();
        co_return e;
      }
      if (closed_) co_return BackendError{BackendErrc::kCancelled, "the link stopped", 0, {}};
      if (std::chrono::steady_clock::now() >= deadline) {
        co_return BackendError{BackendErrc::kTimeout,
                               "no event for prompt " + prompt_id_ + " within " +
                                   std::to_string(timeout.count()) + " ms",
                               0, {}};
      }
      timer_.expires_at(deadline);
      co_await timer_.async_wait(asio::as_tuple(use_awaitable));
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  std::string prompt_id_;
  std::size_t max_events_;
  asio::steady_timer timer_;
  std::deque<PromptEvent> events_;
  bool closed_ = false;
  std::atomic<std::uint64_t> dropped_{0};
};

// ---------------------------------------------------------------------------------------------

struct BackendLink::Impl : std::enable_shared_from_this<BackendLink::Impl> {
  Impl(asio::any_io_executor ex, BackendLinkOptions opts)
      : executor(ex), strand(asio::make_strand(ex)), options(std::move(opts)),
        probe_timer(strand), backoff_timer(strand) {}

  asio::any_io_executor executor;
  asio::strand<asio::any_io_executor> strand;
  BackendLinkOptions options;
  std::string ws_url;
  net::HttpClient api;    // prompts, queue, history, object_info
  net::HttpClient probe;  // liveness only, so a slow call never delays it
  net::HttpClient files;  // uploads and downloads

  // --- state on the strand ---
  bool started = false;
  bool stopped = false;
  bool ever_connected = false;
  net::WebSocketClient ws;
  asio::steady_timer probe_timer;
  asio::steady_timer backoff_timer;
  std::unordered_map<std::string, std::weak_ptr<StreamImpl>> streams;
  std::unordered_map<std::string, std::deque<PromptEvent>> unclaimed;
  std::list<std::string> unclaimed_order;  // oldest first
  std::unordered_map<std::string, std::string> aliases;  // backend's id -> caller's id
  std::string current_prompt;  // the prompt the backend runs now, for events without an id
  std::mt19937_64 rng{std::random_device{}()};

  // --- health, read from any thread ---
  mutable std::mutex health_mutex;
  BackendHealth health_state;

  template <class F>
  void update_health(F&& f) {
    std::lock_guard lock(health_mutex);
    f(health_state);
    const bool probe_down = health_state.consecutive_probe_failures >= options.probe_failures_down;
    if (probe_down) {
      health_state.state = BackendHealth::State::kDown;
    } else if (health_state.last_ok) {
      health_state.state = BackendHealth::State::kUp;
    }
  }

  // ---- event routing (strand) ----

  std::string resolve(std::string_view backend_id) const {
    auto it = aliases.find(std::string(backend_id));
    return it == aliases.end() ? std::string(backend_id) : it->second;
  }

  void deliver(const std::string& prompt_id, PromptEvent e) {
    if (prompt_id.empty()) return;
    auto it = streams.find(prompt_id);
    if (it != streams.end()) {
      if (auto s = it->second.lock()) {
        s->push(std::move(e));
        return;
      }
      streams.erase(it);
    }
    auto [buf, inserted] = unclaimed.try_emplace(prompt_id);
    if (inserted) {
      unclaimed_order.push_back(prompt_id);
      while (unclaimed_order.size() > options.max_unclaimed_prompts) {
        unclaimed.erase(unclaimed_order.front());
        unclaimed_order.pop_front();
      }
      buf = unclaimed.find(prompt_id);
      if (buf == unclaimed.end()) return;
    }
    if (buf->second.size() >= options.max_events_per_prompt && droppable(e)) return;
    buf->second.push_back(std::move(e));
  }

  void broadcast_link_event(LinkEvent::Kind kind, const std::string& reason) {
    for (auto it = streams.begin(); it != streams.end();) {
      if (auto s = it->second.lock()) {
        s->push(PromptEvent{LinkEvent{kind, reason}, std::chrono::system_clock::now(), nullptr});
        ++it;
      } else {
        it = streams.erase(it);
      }
    }
  }

  void on_text(std::string text) {
    const auto now = std::chrono::system_clock::now();
    auto decoded = comfy::decode_event(text);
    if (!decoded) {
      spdlog::warn("backend {}: undecodable message dropped: {}", options.base_url,
                   decoded.error().message);
      return;
    }
    comfy::Event& ev = *decoded;
    if (const auto* st = std::get_if<comfy::Status>(&ev)) {
      const auto remaining = st->queue_remaining;
      update_health([&](BackendHealth& h) { h.queue_remaining = remaining; });
      return;  // queue broadcasts concern the backend, not one prompt
    }
    if (std::holds_alternative<comfy::FeatureFlags>(ev)) return;

    std::string prompt_id;
    if (auto id = comfy::prompt_id_of(ev)) {
      prompt_id = resolve(*id);
    } else {
      prompt_id = current_prompt;  // reconnect-form executing, old-style progress
    }
    if (std::holds_alternative<comfy::ExecutionStart>(ev)) current_prompt = prompt_id;
    bool ends = false;
    if (const auto* ex = std::get_if<comfy::Executing>(&ev)) ends = ex->is_end_of_prompt();
    deliver(prompt_id, PromptEvent{std::move(ev), now,
                                   std::make_shared<const std::string>(std::move(text))});
    if (ends && prompt_id == current_prompt) current_prompt.clear();
  }

  void on_binary(std::string bytes) {
    const auto now = std::chrono::system_clock::now();
    auto decoded = comfy::decode_binary(std::string_view(bytes));
    if (!decoded) {
      spdlog::warn("backend {}: undecodable binary frame dropped: {}", options.base_url,
                   decoded.error().message);
      return;
    }
    std::string prompt_id;
    if (auto id = comfy::prompt_id_of(*decoded)) {
      prompt_id = resolve(*id);
    } else {
      prompt_id = current_prompt;
    }
    deliver(prompt_id, PromptEvent{std::move(*decoded), now,
                                   std::make_shared<const std::string>(std::move(bytes))});
  }

  // ---- loops (strand) ----

  asio::awaitable<void> websocket_loop() {
    int attempt = 0;
    while (!stopped) {
      net::WebSocketClientOptions wopts;
      wopts.connect_timeout = options.connect_timeout;
      wopts.idle_timeout = options.probe_interval * 4;
      auto connected = co_await net::WebSocketClient::connect(executor, ws_url, wopts);
      if (stopped) break;
      if (!connected) {
        const auto message = connected.error().message;
        update_health([&](BackendHealth& h) {
          h.websocket_connected = false;
          h.last_error = "websocket: " + message;
        });
        co_await backoff(attempt++);
        continue;
      }
      ws = std::move(*connected);
      if (options.preview_metadata) {
        (void)co_await ws.write_text(
            R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})");
      }
      attempt = 0;
      update_health([&](BackendHealth& h) {
        h.websocket_connected = true;
        if (ever_connected) ++h.reconnects;
      });
      if (ever_connected) broadcast_link_event(LinkEvent::Kind::kReconnected, "websocket reconnected");
      ever_connected = true;
      spdlog::info("backend {}: websocket connected as {}", options.base_url, options.client_id);

      std::string reason;
      while (!stopped) {
        auto msg = co_await ws.read(kForever);
        if (!msg) {
          if (msg.error().code == Errc::kTimeout && ws.is_open()) continue;
          reason = msg.error().message;
          break;
        }
        if (msg->binary) {
          on_binary(std::move(msg->data));
        } else {
          on_text(std::move(msg->data));
        }
      }
      if (stopped) break;
      spdlog::warn("backend {}: websocket lost: {}", options.base_url, reason);
      update_health([&](BackendHealth& h) {
        h.websocket_connected = false;
        h.last_error = "websocket: " + reason;
      });
      broadcast_link_event(LinkEvent::Kind::kDisconnected, reason);
      ws = net::WebSocketClient();
      co_await backoff(attempt++);
    }
  }

  asio::awaitable<void> backoff(int attempt) {
    const auto min = options.reconnect_min.count();
    const auto cap = options.reconnect_max.count();
    long long ceiling = min;
    for (int i = 0; i < attempt && ceiling < cap; ++i) ceiling *= 2;
    ceiling = std::min<long long>(std::max<long long>(ceiling, 1), std::max<long long>(cap, 1));
    std::uniform_int_distribution<long long> dist(std::min<long long>(min, ceiling), ceiling);
    backoff_timer.expires_after(milliseconds(dist(rng)));
    co_await backoff_timer.async_wait(asio::as_tuple(use_awaitable));
  }

  asio::awaitable<void> probe_loop() {
    while (!stopped) {
      net::HttpRequest req;
      req.method = net::Method::kGet;
      req.target = "/prompt";
      req.timeout = options.probe_timeout;
      auto r = co_await probe.request(std::move(req));
      if (stopped) break;
      std::string error;
      std::int64_t remaining = -1;
      if (!r) {
        error = "probe: " + r.error().message;
      } else if (r->status != 200) {
        error = "probe: HTTP " + std::to_string(r->status);
      } else if (auto info = comfy::ExecInfo::parse(r->body)) {
        remaining = info->queue_remaining;
      } else {
        error = "probe: " + info.error().message;
      }
      update_health([&](BackendHealth& h) {
        if (error.empty()) {
          h.consecutive_probe_failures = 0;
          h.last_ok = std::chrono::system_clock::now();
          h.queue_remaining = remaining;
        } else {
          ++h.consecutive_probe_failures;
          h.last_error = error;
        }
      });
      probe_timer.expires_after(options.probe_interval);
      co_await probe_timer.async_wait(asio::as_tuple(use_awaitable));
    }
  }

  // Coroutines that keep the Impl alive. They are static functions taking their arguments by
  // value: GCC 12 miscompiles coroutine lambdas with captures (destroys them twice).
  static asio::awaitable<void> run_websocket(std::shared_ptr<Impl> self) {
    co_await self->websocket_loop();
  }
  static asio::awaitable<void> run_probe(std::shared_ptr<Impl> self) {
    co_await self->probe_loop();
  }
  static asio::awaitable<void> close_socket(std::shared_ptr<Impl> self) {
    (void)co_await self->ws.close();
  }

  static asio::awaitable<std::shared_ptr<PromptStream>> watch_on_strand(std::shared_ptr<Impl> self,
                                                                        std::string id) {
    auto stream = std::make_shared<StreamImpl>(self->strand, id, self->options.max_events_per_prompt);
    if (self->stopped) {
      stream->close();
      co_return stream;
    }
    if (auto it = self->unclaimed.find(id); it != self->unclaimed.end()) {
      for (auto& e : it->second) stream->push(std::move(e));
      self->unclaimed.erase(it);
      self->unclaimed_order.remove(id);
    }
    self->streams[id] = stream;
    co_return stream;
  }

  // A server older than 0.3.45 ignores the caller's id: route its id to ours from now on,
  // including events that already arrived under it.
  static asio::awaitable<void> alias_on_strand(std::shared_ptr<Impl> self, std::string theirs,
                                               std::string ours) {
    self->aliases[theirs] = ours;
    if (auto it = self->unclaimed.find(theirs); it != self->unclaimed.end()) {
      auto events = std::move(it->second);
      self->unclaimed.erase(it);
      self->unclaimed_order.remove(theirs);
      for (auto& e : events) self->deliver(ours, std::move(e));
    }
    if (self->current_prompt == theirs) self->current_prompt = ours;
    co_return;
  }

  // ---- HTTP helper ----

  asio::awaitable<BackendResult<net::Response>> call(net::HttpClient& client, net::Method method,
                                                      std::string target, std::string body = {},
                                                      net::Headers headers = {}) {
    const std::string what = std::string(net::to_string(method)) + " " + target;
    if (!body.empty() && !headers.contains("Content-Type")) {
      headers.set("Content-Type", "application/json");
    }
    net::HttpRequest req;
    req.method = method;
    req.target = std::move(target);
    req.headers = std::move(headers);
    req.body = std::move(body);
    auto r = co_await client.request(std::move(req));
    if (!r) co_return from_transport_error(r.error(), what);
    if (r->status < 200 || r->status >= 300) co_return from_http_status(r->status, r->body, what);
    co_return std::move(*r);
  }

  template <class T>
  static BackendResult<T> parse_body(std::string_view body, std::string_view what) {
    auto parsed = T::parse(body);
    if (!parsed) {
      return BackendError{BackendErrc::kProtocol,
                          std::string(what) + ": unexpected body: " + parsed.error().message, 200,
                          {}};
    }
    return std::move(*parsed);
  }
};

// ---------------------------------------------------------------------------------------------

Result<std::shared_ptr<BackendLink>> BackendLink::create(asio::any_io_executor executor,
                                                         BackendLinkOptions options) {
  auto url = boost::urls::parse_absolute_uri(options.base_url);
  if (!url || url->scheme() != "http" || url->host().empty()) {
    return fail(Errc::kInvalidArgument,
                "backend URL must look like http://host:port, got '" + options.base_url + "'");
  }
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  if (options.client_id.empty()) options.client_id = "comfyfarm-" + random_hex(16);

  auto impl = std::make_shared<Impl>(executor, std::move(options));
  auto& o = impl->options;
  net::HttpClientOptions http;
  http.connect_timeout = o.connect_timeout;
  http.request_timeout = o.request_timeout;
  auto api = net::HttpClient::create(executor, o.base_url, http);
  if (!api) return api.error();
  auto probe = net::HttpClient::create(executor, o.base_url, http);
  if (!probe) return probe.error();
  auto files = net::HttpClient::create(executor, o.base_url, http);
  if (!files) return files.error();
  impl->api = std::move(*api);
  impl->probe = std::move(*probe);
  impl->files = std::move(*files);
  std::string path(url->encoded_path());
  while (!path.empty() && path.back() == '/') path.pop_back();
  impl->ws_url = "ws://" + std::string(url->encoded_host_and_port()) + path +
                 "/ws?clientId=" + url_encode(o.client_id);
  return std::shared_ptr<BackendLink>(new BackendLink(std::move(impl)));
}

BackendLink::BackendLink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

BackendLink::~BackendLink() { stop(); }

void BackendLink::start() {
  asio::dispatch(impl_->strand, [impl = impl_] {
    if (impl->started || impl->stopped) return;
    impl->started = true;
    auto log_end = [base = impl->options.base_url](const char* what) {
      return [base, what](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("backend {}: {} loop failed: {}", base, what, ex.what());
        }
      };
    };
    asio::co_spawn(impl->strand, Impl::run_websocket(impl), log_end("websocket"));
    asio::co_spawn(impl->strand, Impl::run_probe(impl), log_end("probe"));
  });
}

void BackendLink::stop() {
  auto impl = impl_;
  if (!impl) return;
  impl->api.cancel();
  impl->probe.cancel();
  impl->files.cancel();
  asio::dispatch(impl->strand, [impl] {
    if (impl->stopped) return;
    impl->stopped = true;
    impl->ws.cancel();
    impl->probe_timer.cancel();
    impl->backoff_timer.cancel();
    for (auto& [id, weak] : impl->streams) {
      if (auto s = weak.lock()) s->close();
    }
    impl->streams.clear();
    impl->unclaimed.clear();
    impl->unclaimed_order.clear();
    if (impl->ws.is_open()) {
      // A failed close handshake needs no handling: the socket is dropped either way.
      asio::co_spawn(impl->strand, Impl::close_socket(impl), [](std::exception_ptr) {});
    }
  });
}

const std::string& BackendLink::client_id() const { return impl_->options.client_id; }
const std::string& BackendLink::base_url() const { return impl_->options.base_url; }

BackendHealth BackendLink::health() const {
  std::lock_guard lock(impl_->health_mutex);
  return impl_->health_state;
}

asio::awaitable<std::shared_ptr<PromptStream>> BackendLink::watch(std::string prompt_id) {
  co_return co_await asio::co_spawn(impl_->strand, Impl::watch_on_strand(impl_, std::move(prompt_id)),
                                    use_awaitable);
}

asio::awaitable<BackendResult<comfy::PromptResponse>> BackendLink::submit(
    std::string prompt_id, json::object prompt, SubmitOptions options) {
  auto impl = impl_;
  json::object body;
  body["prompt"] = std::move(prompt);
  body["client_id"] = impl->options.client_id;
  body["prompt_id"] = prompt_id;
  if (options.extra_data) body["extra_data"] = std::move(*options.extra_data);
  if (options.partial_execution_targets) {
    json::array targets;
    for (auto& t : *options.partial_execution_targets) targets.emplace_back(t);
    body["partial_execution_targets"] = std::move(targets);
  }
  if (options.number) body["number"] = *options.number;
  if (options.front) body["front"] = true;

  auto r = co_await impl->call(impl->api, net::Method::kPost, "/prompt", comfy::dumps(body));
  if (!r) co_return r.error();
  auto parsed = Impl::parse_body<comfy::PromptResponse>(r->body, "POST /prompt");
  if (!parsed) co_return parsed.error();
  if (parsed->prompt_id != prompt_id) {
    co_await asio::co_spawn(impl->strand,
                            Impl::alias_on_strand(impl, parsed->prompt_id, prompt_id),
                            use_awaitable);
  }
  co_return std::move(*parsed);
}

asio::awaitable<BackendResult<comfy::SystemStats>> BackendLink::system_stats() {
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, "/system_stats");
  if (!r) co_return r.error();
  co_return Impl::parse_body<comfy::SystemStats>(r->body, "GET /system_stats");
}

asio::awaitable<BackendResult<comfy::ObjectInfo>> BackendLink::object_info() {
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, "/object_info");
  if (!r) co_return r.error();
  co_return Impl::parse_body<comfy::ObjectInfo>(r->body, "GET /object_info");
}

asio::awaitable<BackendResult<comfy::QueueSnapshot>> BackendLink::queue() {
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, "/queue");
  if (!r) co_return r.error();
  co_return Impl::parse_body<comfy::QueueSnapshot>(r->body, "GET /queue");
}

asio::awaitable<BackendResult<comfy::ExecInfo>> BackendLink::exec_info() {
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, "/prompt");
  if (!r) co_return r.error();
  co_return Impl::parse_body<comfy::ExecInfo>(r->body, "GET /prompt");
}

asio::awaitable<BackendResult<std::optional<comfy::HistoryEntry>>> BackendLink::history(
    std::string prompt_id) {
  const std::string target = "/history/" + url_encode(prompt_id);
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, target);
  if (!r) co_return r.error();
  auto parsed = Impl::parse_body<comfy::History>(r->body, "GET " + target);
  if (!parsed) co_return parsed.error();
  for (auto& entry : parsed->entries) {
    if (entry.prompt_id == prompt_id) co_return std::optional<comfy::HistoryEntry>(std::move(entry));
  }
  co_return std::optional<comfy::HistoryEntry>();
}

asio::awaitable<BackendResult<std::vector<std::string>>> BackendLink::models(std::string folder) {
  const std::string target = "/models/" + url_encode(folder);
  auto r = co_await impl_->call(impl_->api, net::Method::kGet, target);
  if (!r) co_return r.error();
  auto parsed = comfy::parse_json(r->body);
  if (!parsed || !parsed->is_array()) {
    co_return BackendError{BackendErrc::kProtocol, "GET " + target + ": expected a JSON array",
                           r->status, {}};
  }
  std::vector<std::string> out;
  for (const auto& v : parsed->get_array()) {
    if (v.is_string()) out.emplace_back(v.get_string());
  }
  co_return out;
}

asio::awaitable<BackendResult<void>> BackendLink::free(bool unload_models, bool free_memory) {
  json::object body{{"unload_models", unload_models}, {"free_memory", free_memory}};
  auto r = co_await impl_->call(impl_->api, net::Method::kPost, "/free", comfy::dumps(body));
  if (!r) co_return r.error();
  co_return BackendResult<void>();
}

asio::awaitable<BackendResult<void>> BackendLink::interrupt(std::optional<std::string> prompt_id) {
  std::string body;
  if (prompt_id) body = comfy::dumps(json::object{{"prompt_id", *prompt_id}});
  // Interrupts must not wait behind a long call on the api connection.
  auto r = co_await impl_->call(impl_->probe, net::Method::kPost, "/interrupt", std::move(body));
  if (!r) co_return r.error();
  co_return BackendResult<void>();
}

asio::awaitable<BackendResult<net::Response>> BackendLink::forward(net::Method method, std::string target,
                                                                  net::Headers headers, std::string body) {
  const std::string what = std::string(net::to_string(method)) + " " + target;
  net::HttpRequest req;
  req.method = method;
  req.target = std::move(target);
  req.headers = std::move(headers);
  req.body = std::move(body);
  auto r = co_await impl_->files.request(std::move(req));
  if (!r) co_return from_transport_error(r.error(), what);
  co_return std::move(*r);
}

asio::awaitable<BackendResult<void>> BackendLink::delete_queued(std::vector<std::string> prompt_ids) {
  json::array ids;
  for (auto& id : prompt_ids) ids.emplace_back(std::move(id));
  json::object body;
  body["delete"] = std::move(ids);
  auto r = co_await impl_->call(impl_->probe, net::Method::kPost, "/queue", comfy::dumps(body));
  if (!r) co_return r.error();
  co_return BackendResult<void>();
}

asio::awaitable<BackendResult<UploadedFile>> BackendLink::upload_image(std::string filename,
                                                                       std::string bytes,
                                                                       std::string type,
                                                                       std::string subfolder,
                                                                       bool overwrite) {
  if (filename.empty() || filename.find('/') != std::string::npos ||
      filename.find("..") != std::string::npos) {
    co_return BackendError{BackendErrc::kInvalidArgument,
                           "upload: bad file name '" + filename + "'", 0, {}};
  }
  std::string boundary = "comfyfarm-" + random_hex(32);
  while (bytes.find(boundary) != std::string::npos) boundary = "comfyfarm-" + random_hex(32);
  MultipartForm form(boundary);
  form.add_file("image", filename, "application/octet-stream", bytes);
  form.add_field("type", type);
  if (!subfolder.empty()) form.add_field("subfolder", subfolder);
  if (overwrite) form.add_field("overwrite", "true");
  net::Headers headers;
  headers.set("Content-Type", form.content_type());
  auto r = co_await impl_->call(impl_->files, net::Method::kPost, "/upload/image",
                                std::move(form).finish(), std::move(headers));
  if (!r) co_return r.error();
  auto parsed = comfy::parse_json(r->body);
  if (!parsed || !parsed->is_object() || !parsed->get_object().contains("name")) {
    co_return BackendError{BackendErrc::kProtocol, "POST /upload/image: unexpected body",
                           r->status, {}};
  }
  const auto& o = parsed->get_object();
  UploadedFile out;
  auto str = [&](std::string_view key) -> std::string {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  out.name = str("name");
  out.subfolder = str("subfolder");
  out.type = str("type");
  co_return out;
}

asio::awaitable<BackendResult<ViewedFile>> BackendLink::view(std::string filename,
                                                             std::string subfolder,
                                                             std::string type) {
  std::string target = "/view?filename=" + url_encode(filename) + "&type=" + url_encode(type);
  if (!subfolder.empty()) target += "&subfolder=" + url_encode(subfolder);
  auto r = co_await impl_->call(impl_->files, net::Method::kGet, target);
  if (!r) co_return r.error();
  ViewedFile out;
  out.content_type = std::string(r->headers.get("Content-Type").value_or("application/octet-stream"));
  out.bytes = std::move(r->body);
  co_return out;
}

}  // namespace comfyfarm::backend
