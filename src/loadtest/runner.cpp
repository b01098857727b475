#include "loadtest/runner.hpp"
#include "core/random_id.hpp"

#include "comfy/json_util.hpp"
#include "net/http_client.hpp"
#include "net/io_runtime.hpp"
#include "net/websocket_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>

namespace comfyfarm::loadtest {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}


const json::object* data_of(const json::object& msg) {
  const auto* d = msg.if_contains("data");
  return d != nullptr && d->is_object() ? &d->get_object() : nullptr;
}

std::string str_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

struct Tracker {
  JobResult result;
  std::unique_ptr<asio::steady_timer> wake;
  std::size_t socket = 0;
  bool terminal = false;
  std::string node;            // running node
  Clock::time_point node_start{};
};

struct Socket {
  std::string client_id;
  std::string url;
  net::WebSocketClient client;
  bool open = false;
};

struct Shared {
  explicit Shared(asio::io_context& ctx) : io(ctx) {}
  asio::io_context& io;
  LoadOptions opts;
  std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t seed_base = 0;
  std::uint64_t total = 0;          // jobs to start (warm-up included); 0 = until the duration
  std::uint64_t next = 0;           // next index to start
  Clock::time_point measure_start{};
  Clock::time_point stop_at = Clock::time_point::max();
  bool stopping = false;
  std::unordered_map<std::string, Tracker*> by_prompt;
  std::vector<std::unique_ptr<Socket>> sockets;
  std::vector<JobResult> done;
  std::map<std::string, std::string> node_class;
  std::set<std::string> farm_backends;
  bool farm = false;
  std::uint64_t in_flight = 0;
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  LatencyHistogram live;
  std::deque<net::HttpClient> idle_clients;  // open loop pool
  bool finished = false;

  std::optional<std::uint64_t> take_index() {
    if (stopping) return std::nullopt;
    if (Clock::now() >= stop_at) return std::nullopt;
    if (total != 0 && next >= total) return std::nullopt;
    return next++;
  }
};

void end_node(Tracker& t) {
  if (t.node.empty()) return;
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t.node_start).count();
  t.result.node_ms[t.node] += ms;
  t.node.clear();
}

void finish(Tracker& t, JobResult::Outcome outcome, std::string error_class, std::string error) {
  if (t.terminal) return;
  end_node(t);
  t.terminal = true;
  t.result.outcome = outcome;
  t.result.error_class = std::move(error_class);
  t.result.error = std::move(error);
  t.result.ended_at = epoch_ms();
  if (t.wake) t.wake->cancel();
}

int count_images(const json::value& ui) {
  if (!ui.is_object()) return 0;
  int n = 0;
  for (const char* key : {"images", "gifs", "videos"}) {
    if (const auto* list = ui.get_object().if_contains(key); list != nullptr && list->is_array()) {
      n += static_cast<int>(list->get_array().size());
    }
  }
  return n;
}

std::string backend_of(const Shared& sh, const json::value& ui) {
  if (!sh.farm || !ui.is_object()) return {};
  const auto* list = ui.get_object().if_contains("images");
  if (list == nullptr || !list->is_array() || list->get_array().empty()) return {};
  const auto& first = list->get_array().front();
  if (!first.is_object()) return {};
  const std::string sub = str_of(first.get_object(), "subfolder");
  const std::string head = sub.substr(0, sub.find('/'));
  return sh.farm_backends.contains(head) ? head : std::string();
}

/// The error class of a node's exception type: the farm's own classes ("comfyfarm.oom" -> "oom"),
/// out of memory, or any other node error.
std::string error_class_of(const std::string& exception_type) {
  if (exception_type.rfind("comfyfarm.", 0) == 0) return exception_type.substr(10);
  if (exception_type.find("OutOfMemory") != std::string::npos) return "oom";
  return "execution_error";
}

/// The "type" of a message without parsing it all: ComfyUI writes {"type": "...", "data": ...}.
std::string_view peek_type(std::string_view text) {
  const auto k = text.find("\"type\"");
  if (k == std::string_view::npos || k > 16) return {};
  const auto q1 = text.find('"', text.find(':', k + 6));
  if (q1 == std::string_view::npos) return {};
  const auto q2 = text.find('"', q1 + 1);
  if (q2 == std::string_view::npos) return {};
  return text.substr(q1 + 1, q2 - q1 - 1);
}

/// One WebSocket message: updates the job it names.
void on_message(Shared& sh, const std::string& text) {
  // Most messages of a prompt are progress updates the runner does not need: skip their parse.
  const auto kind = peek_type(text);
  if (kind == "progress" || kind == "progress_state" || kind == "status" || kind == "feature_flags") return;
  auto parsed = comfy::parse_json(text);
  if (!parsed || !parsed->is_object()) return;
  const auto& msg = parsed->get_object();
  const std::string type = str_of(msg, "type");
  const auto* data = data_of(msg);
  if (data == nullptr) return;
  const std::string pid = str_of(*data, "prompt_id");
  if (pid.empty()) return;
  const auto it = sh.by_prompt.find(pid);
  if (it == sh.by_prompt.end()) return;
  Tracker& t = *it->second;
  if (t.terminal) return;
  if (type == "execution_start") {
    if (t.result.started_at == 0) t.result.started_at = epoch_ms();
  } else if (type == "executing") {
    end_node(t);
    const auto* node = data->if_contains("node");
    if (node != nullptr && node->is_string()) {
      t.node = std::string(node->get_string());
      t.node_start = Clock::now();
    } else if (node != nullptr && node->is_null()) {
      // The end of the prompt: success unless an error came first (servers before
      // execution_success end this way).
      finish(t, JobResult::Outcome::kSucceeded, "", "");
    }
  } else if (type == "executed") {
    const auto* out = data->if_contains("output");
    if (out != nullptr) {
      t.result.images += count_images(*out);
      if (t.result.backend.empty()) t.result.backend = backend_of(sh, *out);
    }
  } else if (type == "execution_success") {
    finish(t, JobResult::Outcome::kSucceeded, "", "");
  } else if (type == "execution_error") {
    const std::string etype = str_of(*data, "exception_type");
    finish(t, JobResult::Outcome::kFailed, error_class_of(etype),
           etype + ": " + str_of(*data, "exception_message") + " (node " + str_of(*data, "node_id") + ")");
  } else if (type == "execution_interrupted") {
    finish(t, JobResult::Outcome::kFailed, "interrupted", "interrupted at node " + str_of(*data, "node_id"));
  }
}

/// The outcome a /history entry tells, for jobs whose events were lost.
void from_history(Shared& sh, Tracker& t, const json::object& entry) {
  const auto* outputs = entry.if_contains("outputs");
  int images = 0;
  if (outputs != nullptr && outputs->is_object()) {
    for (const auto& [node, ui] : outputs->get_object()) {
      images += count_images(ui);
      if (t.result.backend.empty()) t.result.backend = backend_of(sh, ui);
    }
  }
  t.result.images = std::max(t.result.images, images);
  const auto* status = entry.if_contains("status");
  std::string status_str = "success";
  std::string error;
  std::string cls = "execution_error";
  if (status != nullptr && status->is_object()) {
    status_str = str_of(status->get_object(), "status_str");
    const auto* messages = status->get_object().if_contains("messages");
    if (messages != nullptr && messages->is_array()) {
      for (const auto& m : messages->get_array()) {
        if (!m.is_array() || m.get_array().size() < 2 || !m.get_array()[0].is_string() ||
            !m.get_array()[1].is_object()) {
          continue;
        }
        const auto name = m.get_array()[0].get_string();
        const auto& d = m.get_array()[1].get_object();
        const auto* ts = d.if_contains("timestamp");
        if (name == "execution_start" && t.result.started_at == 0 && ts != nullptr && ts->is_int64()) {
          t.result.started_at = ts->get_int64();
        }
        if (name == "execution_error") {
          const std::string etype = str_of(d, "exception_type");
          cls = error_class_of(etype);
          error = etype + ": " + str_of(d, "exception_message");
        }
        if (name == "execution_interrupted") {
          cls = "interrupted";
          error = "interrupted";
        }
      }
    }
  }
  if (status_str == "success") {
    finish(t, JobResult::Outcome::kSucceeded, "", "");
  } else {
    finish(t, JobResult::Outcome::kFailed, cls, error.empty() ? "failed (from /history)" : error);
  }
}

asio::awaitable<void> read_socket(Shared* sh, Socket* s) {
  auto ex = co_await asio::this_coro::executor;
  int failures = 0;
  while (!sh->stopping) {
    if (!s->open) {
      net::WebSocketClientOptions wo;
      wo.connect_timeout = std::chrono::seconds(5);
      auto c = co_await net::WebSocketClient::connect(ex, s->url, wo);
      if (!c) {
        ++failures;
        asio::steady_timer t(ex);
        t.expires_after(std::chrono::milliseconds(std::min(2000, 50 << std::min(failures, 5))));
        co_await t.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      s->client = std::move(*c);
      s->open = true;
      failures = 0;
    }
    auto m = co_await s->client.read(std::chrono::seconds(3600));
    if (!m) {
      if (m.error().code == Errc::kTimeout) continue;
      s->open = false;  // dropped: reconnect; jobs catch up through /history
      continue;
    }
    if (!m->binary) on_message(*sh, m->data);
  }
}

net::HttpClient make_client(asio::any_io_executor ex, const std::string& url, std::chrono::milliseconds timeout) {
  net::HttpClientOptions ho;
  ho.request_timeout = timeout;
  ho.connect_timeout = std::chrono::seconds(5);
  auto c = net::HttpClient::create(ex, url, ho);
  return c ? std::move(*c) : net::HttpClient();
}

/// Looks the job up in /history; true when that settled it.
asio::awaitable<bool> poll_history(Shared* sh, Tracker* t, net::HttpClient* http) {
  auto r = co_await http->request(net::Method::kGet, "/history/" + t->result.prompt_id);
  if (!r || r->status != 200) co_return false;
  auto doc = comfy::parse_json(r->body);
  if (!doc || !doc->is_object()) co_return false;
  const auto* entry = doc->get_object().if_contains(t->result.prompt_id);
  if (entry == nullptr || !entry->is_object()) co_return false;
  const auto* status = entry->get_object().if_contains("status");
  if (status != nullptr && status->is_object()) {
    const auto* completed = status->get_object().if_contains("completed");
    const auto s = str_of(status->get_object(), "status_str");
    if (s.empty() && completed != nullptr && completed->is_bool() && !completed->get_bool()) co_return false;
  }
  from_history(*sh, *t, entry->get_object());
  co_return true;
}

/// One job, start to end. `http` is used for the POST and the history polls.
asio::awaitable<void> run_job(Shared* sh, net::HttpClient* http, std::uint64_t index,
                              std::int64_t intended_at) {
  auto ex = co_await asio::this_coro::executor;
  Tracker t;
  t.result.index = index;
  t.result.warmup = index < sh->opts.warmup;
  t.result.intended_at = intended_at;
  t.result.prompt_id = uuid4(sh->rng);
  t.wake = std::make_unique<asio::steady_timer>(ex);
  t.socket = static_cast<std::size_t>(index % sh->sockets.size());
  json::object prompt = sh->opts.workflow;
  if (sh->opts.vary_seed) reseed_workflow(prompt, (sh->seed_base + index) % 1'000'000'000'000ULL);
  json::object body;
  body["prompt"] = std::move(prompt);
  body["client_id"] = sh->sockets[t.socket]->client_id;
  body["prompt_id"] = t.result.prompt_id;
  std::string text = comfy::dumps(body);
  sh->by_prompt[t.result.prompt_id] = &t;
  ++sh->in_flight;
  t.result.sent_at = epoch_ms();
  const auto sent = Clock::now();
  const auto deadline = sent + sh->opts.timeout;
  net::Headers headers;
  headers.set("Content-Type", "application/json");
  auto r = co_await http->request(net::Method::kPost, "/prompt", std::move(headers), std::move(text));
  if (!r) {
    finish(t, JobResult::Outcome::kFailed,
           r.error().code == Errc::kTimeout ? "timeout" : "transport", r.error().message);
  } else if (r->status != 200) {
    std::string message = r->body.substr(0, 300);
    if (auto doc = comfy::parse_json(r->body); doc && doc->is_object()) {
      if (const auto* e = doc->get_object().if_contains("error"); e != nullptr && e->is_object()) {
        message = str_of(e->get_object(), "message");
      }
    }
    const std::string cls = r->status == 400   ? "workflow_invalid"
                            : r->status == 429 ? "queue_full"
                            : r->status >= 500 ? "server_error"
                                               : "http_" + std::to_string(r->status);
    finish(t, JobResult::Outcome::kRejected, cls, std::to_string(r->status) + ": " + message);
  } else {
    t.result.accepted_at = epoch_ms();
    if (auto doc = comfy::parse_json(r->body); doc && doc->is_object()) {
      const std::string id = str_of(doc->get_object(), "prompt_id");
      if (!id.empty() && id != t.result.prompt_id) {  // a server that ignores our prompt_id
        sh->by_prompt.erase(t.result.prompt_id);
        t.result.prompt_id = id;
        sh->by_prompt[id] = &t;
      }
    }
  }
  // Wait for the end; look at /history when nothing came for a while (events lost).
  const auto poll_every = std::chrono::seconds(2);
  while (!t.terminal) {
    const auto now = Clock::now();
    if (now >= deadline) {
      finish(t, JobResult::Outcome::kTimeout, "timeout",
             "no result within " + std::to_string(sh->opts.timeout.count() / 1000) + " s");
      json::object ib;
      ib["prompt_id"] = t.result.prompt_id;
      net::Headers h2;
      h2.set("Content-Type", "application/json");
      (void)co_await http->request(net::Method::kPost, "/interrupt", std::move(h2), comfy::dumps(ib));
      break;
    }
    t.wake->expires_at(std::min(deadline, now + poll_every));
    co_await t.wake->async_wait(asio::as_tuple(use_awaitable));
    if (t.terminal) break;
    if (Clock::now() - now >= poll_every - std::chrono::milliseconds(5)) {
      (void)co_await poll_history(sh, &t, http);
    }
  }
  sh->by_prompt.erase(t.result.prompt_id);
  --sh->in_flight;
  if (!t.result.warmup) {
    if (t.result.outcome == JobResult::Outcome::kSucceeded) {
      ++sh->ok;
      sh->live.record(t.result.latency_ms());
    } else {
      ++sh->failed;
    }
  }
  for (const auto& [node, ms] : t.result.node_ms) {
    if (const auto c = sh->node_class.find(node); c != sh->node_class.end()) {
      t.result.node_class[node] = c->second;
    }
  }
  if (sh->opts.on_job) sh->opts.on_job(t.result);
  sh->done.push_back(std::move(t.result));
}

asio::awaitable<void> closed_worker(Shared* sh) {
  auto ex = co_await asio::this_coro::executor;
  auto http = make_client(ex, sh->opts.server, std::chrono::seconds(60));
  while (auto index = sh->take_index()) {
    if (*index == sh->opts.warmup) sh->measure_start = Clock::now();
    co_await run_job(sh, &http, *index, epoch_ms());
  }
}

asio::awaitable<void> open_job(Shared* sh, std::uint64_t index, std::int64_t intended_at) {
  auto ex = co_await asio::this_coro::executor;
  net::HttpClient http;
  if (!sh->idle_clients.empty()) {
    http = std::move(sh->idle_clients.front());
    sh->idle_clients.pop_front();
  } else {
    http = make_client(ex, sh->opts.server, std::chrono::seconds(60));
  }
  co_await run_job(sh, &http, index, intended_at);
  sh->idle_clients.push_back(std::move(http));
}

/// Open loop: job i is due at start + i / rate whatever happened to the earlier ones; its
/// latency counts from that intended time.
asio::awaitable<void> open_dispatcher(Shared* sh) {
  auto ex = co_await asio::this_coro::executor;
  const auto start = Clock::now();
  const std::int64_t start_epoch = epoch_ms();
  const double rate = *sh->opts.rate;
  asio::steady_timer timer(ex);
  while (auto index = sh->take_index()) {
    const auto offset = std::chrono::duration<double>(static_cast<double>(*index) / rate);
    const auto due = start + std::chrono::duration_cast<Clock::duration>(offset);
    if (due > Clock::now()) {
      timer.expires_at(due);
      co_await timer.async_wait(asio::as_tuple(use_awaitable));
    }
    if (*index == sh->opts.warmup) sh->measure_start = due;
    const std::int64_t intended =
        start_epoch + static_cast<std::int64_t>(std::llround(offset.count() * 1000.0));
    asio::co_spawn(ex, open_job(sh, *index, intended), asio::detached);
  }
  // Wait for the jobs in flight.
  while (sh->in_flight > 0) {
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::as_tuple(use_awaitable));
  }
}

asio::awaitable<void> progress_loop(Shared* sh) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const auto start = Clock::now();
  while (!sh->finished) {
    timer.expires_after(std::chrono::seconds(1));
    co_await timer.async_wait(asio::as_tuple(use_awaitable));
    if (sh->finished || !sh->opts.on_progress) continue;
    Progress p;
    p.done = sh->ok;
    p.failed = sh->failed;
    p.in_flight = sh->in_flight;
    p.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
    p.throughput_jobs_s = p.elapsed_s > 0 ? static_cast<double>(p.done) / p.elapsed_s : 0;
    p.p95_s = sh->live.percentile(95) / 1000.0;
    sh->opts.on_progress(p);
  }
}

asio::awaitable<Result<void>> main_loop(Shared* sh) {
  auto ex = co_await asio::this_coro::executor;
  // Reachable at all?
  auto probe = make_client(ex, sh->opts.server, std::chrono::seconds(10));
  auto ping = co_await probe.request(net::Method::kGet, "/prompt");
  if (!ping) co_return fail(Errc::kUnavailable, "cannot reach " + sh->opts.server + ": " + ping.error().message);
  if (ping->status != 200) {
    co_return fail(Errc::kUnavailable, sh->opts.server + " does not look like ComfyUI (GET /prompt answered " +
                                           std::to_string(ping->status) + ")");
  }
  auto farm = co_await probe.request(net::Method::kGet, "/api/farm/backends");
  if (farm && farm->status == 200) {
    if (auto doc = comfy::parse_json(farm->body); doc && doc->is_object()) {
      if (const auto* list = doc->get_object().if_contains("backends"); list != nullptr && list->is_array()) {
        sh->farm = true;
        for (const auto& b : list->get_array()) {
          if (b.is_object()) sh->farm_backends.insert(str_of(b.get_object(), "id"));
        }
      }
    }
  }
  // Sockets: one per client id, jobs spread over them.
  const std::uint64_t parallel = sh->opts.rate ? std::max<std::uint64_t>(1, static_cast<std::uint64_t>(*sh->opts.rate))
                                               : std::max<std::uint64_t>(1, sh->opts.concurrency);
  const std::uint64_t nsock = std::clamp<std::uint64_t>(
      (parallel + sh->opts.jobs_per_socket - 1) / std::max<std::uint64_t>(1, sh->opts.jobs_per_socket), 1, 64);
  std::string ws_base = sh->opts.server;
  ws_base.replace(0, 4, "ws");  // http -> ws
  for (std::uint64_t i = 0; i < nsock; ++i) {
    auto s = std::make_unique<Socket>();
    s->client_id = sh->opts.client_prefix + "-" + std::to_string(sh->rng() % 1'000'000'000) + "-" + std::to_string(i);
    s->url = ws_base + "/ws?clientId=" + s->client_id;
    auto c = co_await net::WebSocketClient::connect(ex, s->url);
    if (!c) co_return fail(Errc::kUnavailable, "cannot open " + s->url + ": " + c.error().message);
    s->client = std::move(*c);
    s->open = true;
    // The server greets a socket with a status frame once it has registered it; events of a
    // prompt sent before that could go nowhere, so no job starts until every socket is greeted.
    auto hello = co_await s->client.read(std::chrono::seconds(10));
    if (!hello) co_return fail(Errc::kUnavailable, "no greeting on " + s->url + ": " + hello.error().message);
    sh->sockets.push_back(std::move(s));
  }
  for (auto& s : sh->sockets) asio::co_spawn(ex, read_socket(sh, s.get()), asio::detached);
  asio::co_spawn(ex, progress_loop(sh), asio::detached);
  sh->measure_start = Clock::now();
  if (sh->opts.rate) {
    co_await open_dispatcher(sh);
  } else {
    const std::uint64_t workers = std::max<std::uint64_t>(1, sh->opts.concurrency);
    // Closed loop: `concurrency` workers, each one job at a time; wait for all of them.
    auto remaining = std::make_shared<std::uint64_t>(workers);
    asio::steady_timer all_done(ex);
    all_done.expires_at(Clock::time_point::max());
    for (std::uint64_t w = 0; w < workers; ++w) {
      asio::co_spawn(ex, closed_worker(sh), [remaining, &all_done](std::exception_ptr) {
        if (--*remaining == 0) all_done.cancel();
      });
    }
    if (*remaining > 0) co_await all_done.async_wait(asio::as_tuple(use_awaitable));
  }
  sh->finished = true;
  sh->stopping = true;
  for (auto& s : sh->sockets) {
    s->client.cancel();
  }
  co_return Result<void>();
}

}  // namespace

void reseed_workflow(json::object& workflow, std::uint64_t seed) {
  for (auto& [id, node] : workflow) {
    if (!node.is_object()) continue;
    auto* inputs = node.get_object().if_contains("inputs");
    if (inputs == nullptr || !inputs->is_object()) continue;
    for (auto& [name, value] : inputs->get_object()) {
      if ((name == "seed" || name == "noise_seed") && value.is_number()) value = seed;
    }
  }
}

Result<LoadRun> run_load(const LoadOptions& options) {
  if (options.workflow.empty()) return fail(Errc::kInvalidArgument, "the workflow has no nodes");
  for (const auto& [id, node] : options.workflow) {
    if (!node.is_object() || !node.get_object().contains("class_type")) {
      return fail(Errc::kInvalidArgument,
                  "the workflow is not in API format (node '" + std::string(id) +
                      "' has no class_type): export it with \"Save (API Format)\"");
    }
  }
  if (!options.server.starts_with("http://")) {
    return fail(Errc::kInvalidArgument, "--server must be http://HOST:PORT");
  }
  if (options.rate && !(*options.rate > 0)) return fail(Errc::kInvalidArgument, "--rate must be > 0");
  net::IoRuntime io(1);
  Shared sh(io.context());
  sh.opts = options;
  sh.seed_base = options.seed != 0 ? options.seed : sh.rng() % 1'000'000'000'000ULL;
  if (!options.duration_s || options.jobs_given) sh.total = options.warmup + options.jobs;
  if (options.duration_s) {
    sh.stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(*options.duration_s));
  }
  for (const auto& [id, node] : options.workflow) {
    sh.node_class[std::string(id)] = str_of(node.get_object(), "class_type");
  }
  auto fut = asio::co_spawn(io.executor(), main_loop(&sh), asio::use_future);
  Result<void> outcome = fut.get();
  io.stop();
  io.join();
  if (!outcome) return outcome.error();
  LoadRun run;
  std::sort(sh.done.begin(), sh.done.end(),
            [](const JobResult& a, const JobResult& b) { return a.index < b.index; });
  run.jobs = std::move(sh.done);
  run.farm = sh.farm;
  run.farm_backends.assign(sh.farm_backends.begin(), sh.farm_backends.end());
  auto& info = run.info;
  info.server = options.server;
  info.workflow = options.workflow_name;
  info.mode = options.rate ? "open" : "closed";
  info.concurrency = options.rate ? 0 : options.concurrency;
  info.rate = options.rate.value_or(0);
  info.scenario = options.scenario;
  for (const auto& j : run.jobs) {
    if (j.warmup) continue;
    const std::int64_t start = j.intended_at != 0 ? j.intended_at : j.sent_at;
    if (info.started_at == 0 || start < info.started_at) info.started_at = start;
    info.ended_at = std::max(info.ended_at, j.ended_at);
  }
  return run;
}

}  // namespace comfyfarm::loadtest
