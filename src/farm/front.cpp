// The ComfyUI-compatible front: the same paths, bodies, status codes and /api aliases as
// ComfyUI, answered for the whole farm, and /ws with every event of a client's prompts.
#include "comfy/json_util.hpp"
#include "core/random_id.hpp"
#include "comfy/workflow.hpp"
#include "farm/farm_state.hpp"
#include "net/multipart_parser.hpp"
#include "net/run_blocking.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <spdlog/spdlog.h>

#include <fstream>
#include <random>
#include <sys/utsname.h>
#include <unistd.h>

namespace comfyfarm::farm {

namespace asio = boost::asio;
using asio::use_awaitable;
using store::JobState;

namespace {

net::Response json_reply(const json::value& v, int status = 200) {
  return net::Response::text(comfy::dumps(v), status, "application/json; charset=utf-8");
}

net::Response refusal_reply(const Farm::State::Refusal& r) { return json_reply(r.body, r.status); }

bool truthy(const json::value& v) { return comfy::python_truthy(v); }


/// Awaits the store's group commit of one job.
template <class Token>
auto async_store_submit(store::Store& st, store::NewJob job, Token&& token) {
  return asio::async_initiate<Token, void(Result<void>)>(
      [&st](auto handler, store::NewJob j) {
        auto ex = asio::get_associated_executor(handler);
        using H = decltype(handler);
        auto h = std::make_shared<H>(std::move(handler));
        st.submit(std::move(j), [h, ex](Result<void> r) {
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      token, std::move(job));
}

/// The farm's queue entry [number, prompt_id, prompt, extra_data, outputs_to_execute].
json::value queue_entry(const Job& job) {
  json::object extra = job.extra_data;
  if (!job.client_id.empty()) extra["client_id"] = job.client_id;
  json::array outs;
  for (const auto& o : job.outputs_to_execute) outs.push_back(json::value(o));
  json::array item;
  item.push_back(job.number);
  item.push_back(json::value(job.id));
  item.push_back(*job.prompt);
  item.push_back(std::move(extra));
  item.push_back(std::move(outs));
  return item;
}

std::string content_type_of(const std::string& name) {
  const auto dot = name.rfind('.');
  std::string ext = dot == std::string::npos ? "" : name.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "webp") return "image/webp";
  if (ext == "gif") return "image/gif";
  if (ext == "mp4") return "video/mp4";
  if (ext == "webm") return "video/webm";
  if (ext == "json") return "application/json";
  if (ext == "txt") return "text/plain";
  return "application/octet-stream";
}

/// A relative path of plain segments ("a/b.png"): no "..", no absolute path, no backslash.
bool safe_relative(std::string_view p) {
  if (p.empty()) return true;
  if (p.front() == '/' || p.find('\\') != std::string_view::npos || p.find('\0') != std::string_view::npos) {
    return false;
  }
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = p.find('/', start);
    const auto seg = p.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg == ".." || seg == ".") return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return true;
}

std::optional<std::string> read_whole(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// ---- submission -------------------------------------------------------------------------------

namespace {

struct Validated {
  json::object prompt;
  std::vector<std::string> outputs_to_execute;
  std::vector<comfy::NodeError> node_errors;
  WorkflowNeeds needs;
};

/// Validation against the union of the backends' catalogs (pure; any thread).
std::variant<Validated, Farm::State::Refusal> validate_for_farm(
    const Farm::State& s, json::object prompt,
    const std::optional<std::vector<std::string>>& targets) {
  using Refusal = Farm::State::Refusal;
  if (auto ui = comfy::ui_format_error(prompt)) return Refusal{400, ui->to_json()};
  Validated v;
  if (auto catalog = s.current_catalog()) {
    comfy::ValidateOptions vo;
    vo.partial_execution_targets = targets;
    const auto* raw = &s;
    vo.file_exists = [raw](std::string_view, std::string_view filename) {
      return raw->input_file_known(filename);
    };
    auto outcome = comfy::validate_prompt(std::move(prompt), *catalog, vo);
    if (!outcome.ok) {
      json::value body = outcome.error ? outcome.error->to_json()
                                       : comfy_error_body("invalid_prompt", "Invalid prompt");
      return Refusal{400, std::move(body)};
    }
    v.prompt = std::move(outcome.normalized_prompt);
    v.outputs_to_execute = std::move(outcome.outputs_to_execute);
    v.node_errors = std::move(outcome.node_errors);
  } else {
    // No backend has answered yet: the graph's structure is checked here, the rest by the
    // backend that runs it.
    auto wf = comfy::Workflow::from_json(json::value(prompt));
    if (!wf) {
      const auto err = wf.error();
      return Refusal{400, comfy_error_body("invalid_prompt", "Invalid prompt: " + err.first().message,
                                           err.first().message)};
    }
    v.prompt = std::move(prompt);
    if (targets) v.outputs_to_execute = *targets;
  }
  auto needs = workflow_needs(v.prompt);
  if (!needs) {
    return Refusal{400, comfy_error_body("invalid_prompt", needs.error().message, needs.error().message)};
  }
  v.needs = std::move(*needs);
  return v;
}

}  // namespace

std::optional<Farm::State::Refusal> Farm::State::check(const json::object& prompt) const {
  auto v = validate_for_farm(*this, prompt, std::nullopt);
  if (auto* r = std::get_if<Refusal>(&v)) return *r;
  return std::nullopt;
}

asio::awaitable<Farm::State::SubmitResult> Farm::State::submit(std::shared_ptr<State> self,
                                                              Submission sub) {
  // 1. Validation, off the strand.
  auto checked = validate_for_farm(*self, std::move(sub.prompt), sub.partial_execution_targets);
  if (auto* r = std::get_if<Refusal>(&checked)) co_return *r;
  auto& valid = std::get<Validated>(checked);
  json::object prompt = std::move(valid.prompt);
  std::vector<std::string> outputs_to_execute = std::move(valid.outputs_to_execute);
  std::vector<comfy::NodeError> node_errors = std::move(valid.node_errors);
  std::optional<WorkflowNeeds> needs = std::move(valid.needs);
  if (sub.prompt_id.empty()) sub.prompt_id = uuid4();

  // 2. Admission, on the strand.
  struct Admit {
    std::optional<Refusal> refusal;
    std::optional<Accepted> existing;
    std::int64_t number = 0;
  };
  auto admit = [&]() -> Admit {
    Admit a;
    if (self->stopping) {
      a.refusal = Refusal{503, comfy_error_body("farm_stopping", "The farm is shutting down",
                                                "Submit again once it is back.")};
      return a;
    }
    if (const auto it = self->jobs.find(sub.prompt_id); it != self->jobs.end()) {
      a.existing = Accepted{sub.prompt_id, it->second->number, {}, true};
      return a;
    }
    if (self->jobs.size() + self->admitting >= self->options.queue_capacity) {
      a.refusal = Refusal{429, comfy_error_body(
                                   "queue_full",
                                   "The farm's queue is full (" +
                                       std::to_string(self->options.queue_capacity) + " jobs)",
                                   "Nothing was queued; submit again later.")};
      return a;
    }
    ++self->admitting;
    const std::int64_t n = sub.number ? *sub.number : self->next_number++;
    a.number = sub.front && !sub.number ? -n : n;
    return a;
  };
  auto admitted = co_await on_strand(*self, admit);
  if (admitted.refusal) co_return *admitted.refusal;
  if (admitted.existing) co_return *admitted.existing;

  // 3. Durable before acknowledged.
  store::NewJob nj;
  nj.id = sub.prompt_id;
  nj.workflow = prompt;
  nj.client_id = sub.client_id;
  nj.priority = sub.priority;
  nj.batch_id = sub.batch;
  nj.max_attempts = sub.max_attempts.value_or(self->options.max_attempts);
  nj.created_at = now_ms();
  nj.number = admitted.number;
  nj.front = sub.front;
  nj.metadata = sub.metadata;
  json::object stored_extra = sub.extra_data;
  if (!outputs_to_execute.empty()) {
    json::array outs;
    for (const auto& o : outputs_to_execute) outs.push_back(json::value(o));
    stored_extra["__outputs_to_execute"] = std::move(outs);
  }
  nj.extra_data = stored_extra.empty() ? json::value() : json::value(std::move(stored_extra));
  const int max_attempts = nj.max_attempts;
  const std::int64_t created_at = nj.created_at;
  Result<void> committed = co_await async_store_submit(*self->store, std::move(nj), use_awaitable);

  // 4. Queued.
  auto enqueue = [&]() -> SubmitResult {
    --self->admitting;
    if (!committed) {
      if (committed.error().code == Errc::kAlreadyExists) {
        auto rec = self->store->get_job(sub.prompt_id);
        return Accepted{sub.prompt_id, rec ? rec->number : admitted.number, {}, true};
      }
      return Refusal{committed.error().code == Errc::kResourceExhausted ? 429 : 503,
                     comfy_error_body("store_error", committed.error().message,
                                      "Nothing was queued; submit again.")};
    }
    auto job = std::make_shared<Job>();
    job->id = sub.prompt_id;
    job->prompt = std::make_shared<const json::object>(std::move(prompt));
    job->extra_data = std::move(sub.extra_data);
    job->client_id = sub.client_id;
    job->outputs_to_execute = std::move(outputs_to_execute);
    job->number = admitted.number;
    job->priority = sub.priority;
    job->front = sub.front;
    job->batch = sub.batch;
    job->max_attempts = max_attempts;
    job->created_at = created_at;
    job->needs = std::move(*needs);
    if (auto r = self->enqueue(job, now_ms()); !r) {
      spdlog::error("farm: job {} committed but not queued: {}", job->id, r.error().message);
    }
    ++self->submitted_total;
    return Accepted{job->id, job->number, std::move(node_errors), false};
  };
  co_return co_await on_strand(*self, enqueue);
}

// ---- /ws ----------------------------------------------------------------------------------------

void Farm::State::ws_opened(const std::shared_ptr<net::WebSocketSession>& session,
                            std::string client_id) {
  if (stopping) {
    session->close(net::CloseCode::kGoingAway, "farm shutting down");
    return;
  }
  std::string sid = client_id.empty() ? uuid4() : std::move(client_id);
  std::replace(sid.begin(), sid.end(), '-', '-');
  sockets[session->id()] = WsClient{session, sid, false, false};
  by_sid[sid] = session->id();
  comfy::Status status;
  status.queue_remaining = queue_remaining();
  status.sid = sid;
  session->send_text(comfy::encode_event(comfy::Event(std::move(status))));
}

void Farm::State::ws_message(std::uint64_t id, const net::WebSocketMessage& message) {
  const auto it = sockets.find(id);
  if (it == sockets.end() || message.binary || it->second.first_text_seen) return;
  const auto hello = comfy::parse_client_hello(message.data);
  if (!hello) return;
  it->second.first_text_seen = true;
  if (!hello->feature_flags) return;
  it->second.preview_metadata = hello->preview_metadata;
  comfy::FeatureFlags reply;
  reply.flags["supports_preview_metadata"] = true;
  reply.flags["max_upload_size"] = options.max_body_bytes;
  it->second.session->send_text(comfy::encode_event(comfy::Event(std::move(reply))));
}

void Farm::State::ws_closed(std::uint64_t id) {
  const auto it = sockets.find(id);
  if (it == sockets.end()) return;
  if (const auto s = by_sid.find(it->second.sid); s != by_sid.end() && s->second == id) by_sid.erase(s);
  sockets.erase(it);
}

// ---- routes -------------------------------------------------------------------------------------

namespace {

using Self = std::shared_ptr<Farm::State>;
using Fn = asio::awaitable<net::Response> (*)(Self, net::Request*);

net::Handler handler(const Self& self, Fn fn) {
  return [self, fn](net::Request& req) { return fn(self, &req); };
}

asio::awaitable<net::Response> post_prompt(Self s, net::Request* req) {
  auto parsed = comfy::parse_json(req->body);
  if (!parsed) {
    co_return json_reply(comfy_error_body("invalid_prompt", "The body is not valid JSON",
                                          parsed.error().message),
                         400);
  }
  if (!parsed->is_object()) co_return json_reply(comfy::no_prompt_error().to_json(), 400);
  auto& body = parsed->get_object();
  auto* prompt = body.if_contains("prompt");
  if (prompt == nullptr) co_return json_reply(comfy::no_prompt_error().to_json(), 400);
  if (!prompt->is_object()) {
    co_return json_reply(comfy_error_body("invalid_prompt", "\"prompt\" must be an object of nodes",
                                          "Export the workflow with \"Save (API Format)\"."),
                         400);
  }
  Farm::State::Submission sub;
  sub.prompt = std::move(prompt->get_object());
  if (const auto* v = body.if_contains("client_id"); v != nullptr && v->is_string()) {
    sub.client_id = v->get_string();
  }
  if (const auto* v = body.if_contains("prompt_id"); v != nullptr && !v->is_null()) {
    if (!v->is_string() || v->get_string().empty()) {
      co_return json_reply(comfy_error_body("invalid_prompt", "\"prompt_id\" must be a non-empty string"), 400);
    }
    sub.prompt_id = v->get_string();
  }
  if (const auto* v = body.if_contains("number"); v != nullptr && !v->is_null()) {
    if (v->is_int64()) {
      sub.number = v->get_int64();
    } else if (v->is_double()) {
      sub.number = static_cast<std::int64_t>(v->get_double());
    } else {
      co_return json_reply(comfy_error_body("invalid_prompt", "\"number\" must be a number"), 400);
    }
  }
  if (const auto* v = body.if_contains("front")) sub.front = truthy(*v);
  if (const auto* v = body.if_contains("extra_data"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) {
      co_return json_reply(comfy_error_body("invalid_prompt", "\"extra_data\" must be an object"), 400);
    }
    sub.extra_data = v->get_object();
    sub.extra_data.erase("client_id");
  }
  if (const auto* v = body.if_contains("partial_execution_targets"); v != nullptr && !v->is_null()) {
    if (!v->is_array()) {
      co_return json_reply(comfy_error_body("invalid_prompt", "\"partial_execution_targets\" must be a list"), 400);
    }
    std::vector<std::string> ids;
    for (const auto& t : v->get_array()) {
      if (t.is_string()) ids.emplace_back(t.get_string());
    }
    sub.partial_execution_targets = std::move(ids);
  }
  auto result = co_await Farm::State::submit(s, std::move(sub));
  if (auto* r = std::get_if<Farm::State::Refusal>(&result)) co_return refusal_reply(*r);
  auto& a = std::get<Farm::State::Accepted>(result);
  comfy::PromptResponse reply;
  reply.prompt_id = a.prompt_id;
  reply.number = a.number;
  reply.node_errors = std::move(a.node_errors);
  co_return json_reply(reply.to_json());
}

asio::awaitable<net::Response> get_prompt(Self s, net::Request*) {
  auto fn = [&] { return s->queue_remaining(); };
  const auto n = co_await on_strand(*s, fn);
  json::object info;
  info["queue_remaining"] = n;
  json::object out;
  out["exec_info"] = std::move(info);
  co_return json_reply(out);
}

asio::awaitable<net::Response> get_queue(Self s, net::Request*) {
  auto fn = [&] {
    json::array running;
    json::array pending;
    std::vector<const Job*> queued;
    // Running: started on a backend. Pending: waiting in the farm's queue, or sent to a
    // backend that has not started it yet (it waits in that backend's queue).
    for (const auto& [id, job] : s->jobs) {
      if (job->state == JobState::kRunning) {
        running.push_back(queue_entry(*job));
      } else {
        queued.push_back(job.get());
      }
    }
    std::sort(queued.begin(), queued.end(), [](const Job* a, const Job* b) {
      // Those already on a backend come first: they will start first.
      if ((a->state == JobState::kDispatched) != (b->state == JobState::kDispatched)) {
        return a->state == JobState::kDispatched;
      }
      if (a->priority != b->priority) return a->priority > b->priority;
      return a->number < b->number;
    });
    for (const auto* j : queued) pending.push_back(queue_entry(*j));
    json::object out;
    out["queue_running"] = std::move(running);
    out["queue_pending"] = std::move(pending);
    return out;
  };
  auto out = co_await on_strand(*s, fn);
  co_return json_reply(out);
}

asio::awaitable<net::Response> post_queue(Self s, net::Request* req) {
  auto parsed = comfy::parse_json(req->body);
  if (!parsed || !parsed->is_object()) {
    co_return json_reply(comfy_error_body("invalid_request", "The body must be a JSON object"), 400);
  }
  const auto body = parsed->get_object();
  auto fn = [&] {
    if (const auto* clear = body.if_contains("clear"); clear != nullptr && truthy(*clear)) {
      std::vector<std::string> ids;
      for (const auto& [id, job] : s->jobs) {
        if (job->state == JobState::kQueued) ids.push_back(id);
      }
      for (const auto& id : ids) (void)s->cancel_job(id);
    }
    if (const auto* del = body.if_contains("delete"); del != nullptr && del->is_array()) {
      for (const auto& id : del->get_array()) {
        if (!id.is_string()) continue;
        // A copy: cancel_job erases the job, and with it the map's key string.
        const std::string key(id.get_string());
        const auto it = s->jobs.find(key);
        if (it != s->jobs.end() && it->second->state == JobState::kQueued) {
          (void)s->cancel_job(key);
        }
      }
    }
    return true;
  };
  co_await on_strand(*s, fn);
  co_return net::Response::text("", 200, "application/octet-stream");
}

asio::awaitable<net::Response> get_history(Self s, net::Request* req) {
  std::optional<std::int64_t> max_items;
  std::int64_t offset = -1;
  if (const auto m = req->query_param("max_items")) {
    try {
      max_items = std::stoll(*m);
    } catch (...) {
      co_return json_reply(comfy_error_body("invalid_request", "max_items must be an integer"), 400);
    }
  }
  if (const auto o = req->query_param("offset")) {
    try {
      offset = std::stoll(*o);
    } catch (...) {
      co_return json_reply(comfy_error_body("invalid_request", "offset must be an integer"), 400);
    }
  }
  auto fn = [&] {
    std::int64_t start = offset;
    if (start < 0 && max_items) start = static_cast<std::int64_t>(s->history.size()) - *max_items;
    json::object out;
    std::int64_t i = 0;
    std::int64_t taken = 0;
    for (const auto& [id, entry] : s->history) {
      if (i++ < start) continue;
      if (max_items && taken >= *max_items) break;
      out[id] = entry;
      ++taken;
    }
    return out;
  };
  auto out = co_await on_strand(*s, fn);
  co_return json_reply(out);
}

asio::awaitable<net::Response> get_history_item(Self s, net::Request* req) {
  const std::string id(req->param("prompt_id").value_or(""));
  auto fn = [&] { return s->cached_history(id); };
  auto cached = co_await on_strand(*s, fn);
  json::object out;
  if (cached) {
    out[id] = std::move(*cached);
    co_return json_reply(out);
  }
  auto load = [&] { return s->store->get_result(id); };
  auto stored = co_await net::run_blocking(s->pool, load);
  if (stored) out[id] = std::move(*stored);
  co_return json_reply(out);  // {} while unknown, queued or running, as ComfyUI answers
}

asio::awaitable<net::Response> post_history(Self s, net::Request* req) {
  auto parsed = comfy::parse_json(req->body);
  if (!parsed || !parsed->is_object()) {
    co_return json_reply(comfy_error_body("invalid_request", "The body must be a JSON object"), 400);
  }
  const auto body = parsed->get_object();
  auto fn = [&] {
    if (const auto* clear = body.if_contains("clear"); clear != nullptr && truthy(*clear)) {
      s->history.clear();
      s->history_index.clear();
    }
    if (const auto* del = body.if_contains("delete"); del != nullptr && del->is_array()) {
      for (const auto& id : del->get_array()) {
        if (!id.is_string()) continue;
        const auto it = s->history_index.find(std::string(id.get_string()));
        if (it == s->history_index.end()) continue;
        s->history.erase(it->second);
        s->history_index.erase(it);
      }
    }
    return true;
  };
  co_await on_strand(*s, fn);
  co_return net::Response::text("", 200, "application/octet-stream");
}

asio::awaitable<net::Response> post_interrupt(Self s, net::Request* req) {
  std::optional<std::string> target;
  if (!req->body.empty()) {
    auto parsed = comfy::parse_json(req->body);
    if (parsed && parsed->is_object()) {
      if (const auto* v = parsed->get_object().if_contains("prompt_id"); v != nullptr && v->is_string()) {
        target = std::string(v->get_string());
      }
    }
  }
  auto fn = [&] {
    if (target) {
      (void)s->cancel_job(*target);  // unknown ids are ignored, as ComfyUI does
      return true;
    }
    // No prompt_id: like ComfyUI, stop what is running (on every backend of the farm).
    std::vector<std::string> running;
    for (const auto& [id, job] : s->jobs) {
      if (job->state != JobState::kQueued) running.push_back(id);
    }
    for (const auto& id : running) (void)s->cancel_job(id);
    return true;
  };
  co_await on_strand(*s, fn);
  co_return net::Response::text("", 200, "application/octet-stream");
}

asio::awaitable<net::Response> post_free(Self s, net::Request* req) {
  bool unload = false;
  bool free_memory = false;
  auto parsed = comfy::parse_json(req->body);
  if (parsed && parsed->is_object()) {
    const auto& o = parsed->get_object();
    if (const auto* v = o.if_contains("unload_models")) unload = truthy(*v);
    if (const auto* v = o.if_contains("free_memory")) free_memory = truthy(*v);
  }
  auto fn = [&] {
    std::vector<std::shared_ptr<BackendSlot>> out;
    for (const auto& [id, b] : s->backends) {
      if (b->phase == BackendSlot::Phase::kUp) out.push_back(b);
    }
    for (const auto& b : out) {
      if (unload) (void)s->sched.cache_cleared(b->sched_id);
    }
    return out;
  };
  auto up = co_await on_strand(*s, fn);
  for (const auto& b : up) (void)co_await b->link->free(unload, free_memory);
  co_return net::Response::text("", 200, "application/octet-stream");
}

asio::awaitable<net::Response> get_system_stats(Self s, net::Request*) {
  auto fn = [&] {
    json::array devices;
    for (const auto& [id, b] : s->backends) {
      if (!b->system_stats || b->phase != BackendSlot::Phase::kUp) continue;
      auto all = b->system_stats->to_json();
      for (auto& dev : all.get_object()["devices"].get_array()) {
        auto& o = dev.get_object();
        o["name"] = id + ": " + std::string(o["name"].is_string() ? o["name"].as_string().c_str() : "");
        o["comfyfarm_backend"] = id;
        devices.push_back(std::move(dev));
      }
    }
    return devices;
  };
  auto devices = co_await on_strand(*s, fn);
  json::object system;
  struct utsname u{};
  uname(&u);
  system["os"] = "posix";
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long avail = sysconf(_SC_AVPHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  system["ram_total"] = static_cast<std::int64_t>(pages) * page;
  system["ram_free"] = static_cast<std::int64_t>(avail) * page;
  system["comfyui_version"] = "comfyfarm";
  system["python_version"] = std::string("comfyfarm (") + u.sysname + " " + u.release + ")";
  system["pytorch_version"] = "";
  system["embedded_python"] = false;
  system["argv"] = json::array{"comfyfarm", "serve"};
  json::object out;
  out["system"] = std::move(system);
  out["devices"] = std::move(devices);
  co_return json_reply(out);
}

asio::awaitable<net::Response> get_object_info(Self s, net::Request*) {
  std::shared_ptr<const std::string> text;
  {
    std::lock_guard lk(s->catalog_mu);
    text = s->catalog_json;
  }
  if (!text) co_return net::Response::text("{}", 200, "application/json; charset=utf-8");
  co_return net::Response::text(*text, 200, "application/json; charset=utf-8");
}

asio::awaitable<net::Response> get_object_info_class(Self s, net::Request* req) {
  const std::string cls(req->param("node_class").value_or(""));
  json::object out;
  if (auto cat = s->current_catalog()) {
    if (const auto* c = cat->find(cls)) out[cls] = c->to_json();
  }
  co_return json_reply(out);
}

asio::awaitable<net::Response> get_features(Self s, net::Request*) {
  json::object f;
  f["supports_preview_metadata"] = true;
  f["max_upload_size"] = s->options.max_body_bytes;
  co_return json_reply(f);
}


asio::awaitable<net::Response> get_view(Self s, net::Request* req) {
  const std::string filename = req->query_param("filename").value_or("");
  std::string type = req->query_param("type").value_or("output");
  const std::string subfolder = req->query_param("subfolder").value_or("");
  if (type.empty()) type = "output";
  if (filename.empty() || filename.find('/') != std::string::npos || !safe_relative(filename) ||
      !safe_relative(subfolder) || (type != "output" && type != "input" && type != "temp")) {
    co_return net::Response::text("400: Bad Request", 400);
  }
  if (type == "input") {
    const auto path = s->options.data_dir / "input" / subfolder / filename;
    auto read = [&] { return read_whole(path); };
    auto bytes = co_await net::run_blocking(s->file_pool, read);
    if (!bytes) co_return net::Response::text("404: Not Found", 404);
    auto r = net::Response::text(std::move(*bytes), 200, content_type_of(filename));
    r.headers.set("Content-Disposition", "filename=\"" + filename + "\"");
    co_return r;
  }
  // Output and temp files: "<backend>[/<subfolder>]". The farm's copy first, then the backend.
  const auto slash = subfolder.find('/');
  const std::string backend_id = subfolder.substr(0, slash);
  const std::string original = slash == std::string::npos ? "" : subfolder.substr(slash + 1);
  const auto copy = s->options.data_dir / "outputs" / type / subfolder / filename;
  auto read = [&] { return read_whole(copy); };
  auto bytes = co_await net::run_blocking(s->file_pool, read);
  if (bytes) {
    auto r = net::Response::text(std::move(*bytes), 200, content_type_of(filename));
    r.headers.set("Content-Disposition", "filename=\"" + filename + "\"");
    co_return r;
  }
  auto find = [&]() -> std::shared_ptr<BackendSlot> {
    const auto it = s->backends.find(backend_id);
    return it == s->backends.end() ? nullptr : it->second;
  };
  auto b = co_await on_strand(*s, find);
  if (!b) co_return net::Response::text("404: Not Found", 404);
  auto v = co_await b->link->view(filename, original, type);
  if (!v) {
    if (v.error().http_status == 404) co_return net::Response::text("404: Not Found", 404);
    co_return json_reply(comfy_error_body("backend_unavailable",
                                          "Backend " + backend_id + " cannot serve the file",
                                          v.error().message),
                         502);
  }
  auto r = net::Response::text(std::move(v->bytes), 200, v->content_type);
  r.headers.set("Content-Disposition", "filename=\"" + filename + "\"");
  co_return r;
}

asio::awaitable<net::Response> upload_image(Self s, net::Request* req) {
  const auto ct = req->headers.get("Content-Type");
  auto parts = net::parse_multipart(ct.value_or(""), req->body);
  if (!parts) co_return net::Response::text("400: " + parts.error().message, 400);
  const auto* image = net::find_part(*parts, "image");
  if (image == nullptr || !image->filename || image->filename->empty()) {
    co_return net::Response::text("", 400);
  }
  std::string type = "input";
  if (const auto* t = net::find_part(*parts, "type"); t != nullptr && !t->data.empty()) type = t->data;
  std::string subfolder;
  if (const auto* sf = net::find_part(*parts, "subfolder")) subfolder = sf->data;
  bool overwrite = false;
  if (const auto* o = net::find_part(*parts, "overwrite")) overwrite = o->data == "true" || o->data == "1";
  std::string name = *image->filename;
  if (const auto p = name.find_last_of("/\\"); p != std::string::npos) name = name.substr(p + 1);
  if (type != "input" || name.empty() || !safe_relative(subfolder) || !safe_relative(name)) {
    co_return net::Response::text("400: Bad Request", 400);
  }
  const auto dir = s->options.data_dir / "input" / subfolder;
  auto write = [&]() -> Result<std::string> {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Errc::kUnavailable, ec.message());
    std::string chosen = name;
    if (!overwrite) {
      // ComfyUI's rule: "name (1).ext" when a different file of that name exists.
      const auto dot = name.rfind('.');
      const std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
      const std::string ext = dot == std::string::npos ? "" : name.substr(dot);
      for (int i = 1; std::filesystem::exists(dir / chosen); ++i) {
        auto existing = read_whole(dir / chosen);
        if (existing && *existing == image->data) break;  // the same file: reuse it
        chosen = stem + " (" + std::to_string(i) + ")" + ext;
      }
    }
    std::ofstream out(dir / chosen, std::ios::binary | std::ios::trunc);
    out.write(image->data.data(), static_cast<std::streamsize>(image->data.size()));
    if (!out) return fail(Errc::kUnavailable, "cannot write " + (dir / chosen).string());
    return chosen;
  };
  auto written = co_await net::run_blocking(s->file_pool, write);
  if (!written) co_return json_reply(comfy_error_body("upload_failed", written.error().message), 500);
  // Backends get the file again when a job needs it.
  const std::string rel = subfolder.empty() ? *written : subfolder + "/" + *written;
  auto forget = [&] {
    for (auto& [id, b] : s->backends) b->uploaded.erase(rel);
    return true;
  };
  co_await on_strand(*s, forget);
  json::object out;
  out["name"] = *written;
  out["subfolder"] = subfolder;
  out["type"] = type;
  co_return json_reply(out);
}

asio::awaitable<net::Response> get_farm_page(Self s, net::Request*);

/// The backend that answers the routes the farm does not serve itself (the web UI's files, user
/// data and settings): the first one that is up, in id order, so that they all go to one place.
std::shared_ptr<BackendSlot> ui_backend(Farm::State& s) {
  for (const auto& [id, b] : s.backends) {
    if (b->phase == BackendSlot::Phase::kUp) return b;
  }
  return nullptr;
}

bool hop_by_hop(std::string_view name) {
  for (const char* h : {"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Host",
                        "Content-Length", "Origin", "Proxy-Connection", "TE", "Trailer", "Server"}) {
    if (net::iequals(name, h)) return true;
  }
  return false;
}

/// Passes a request the farm has no route for to the UI backend and its answer back.
asio::awaitable<net::Response> forward_to_backend(Self s, net::Request* req) {
  auto pick = [&] { return ui_backend(*s); };
  auto b = co_await on_strand(*s, pick);
  if (!b) {
    co_return json_reply(comfy_error_body("no_backend",
                                          "No backend is up to answer " + req->path,
                                          "The farm serves ComfyUI's API itself; other routes go "
                                          "to a backend."),
                         503);
  }
  net::Headers headers;
  for (const auto& [name, value] : req->headers) {
    if (!hop_by_hop(name)) headers.add(name, value);
  }
  auto r = co_await b->link->forward(req->method, req->target, std::move(headers), std::move(req->body));
  if (!r) {
    co_return json_reply(comfy_error_body("backend_unavailable",
                                          "Backend " + b->id + " did not answer " + req->path,
                                          r.error().message),
                         502);
  }
  net::Response out;
  out.status = r->status;
  for (const auto& [name, value] : r->headers) {
    if (!hop_by_hop(name)) out.headers.add(name, value);
  }
  out.body = std::move(r->body);
  co_return out;
}

asio::awaitable<net::Response> get_root(Self s, net::Request* req) {
  // A browser pointed at the farm gets the backend's ComfyUI web UI (its API calls then come
  // back to the farm); without a backend, the farm's own page.
  auto pick = [&] { return ui_backend(*s) != nullptr; };
  if (co_await on_strand(*s, pick)) {
    auto forwarded = co_await forward_to_backend(s, req);
    if (forwarded.status == 200) co_return forwarded;
  }
  co_return co_await get_farm_page(s, req);
}

asio::awaitable<net::Response> get_farm_page(Self s, net::Request*) {
  auto fn = [&] { return std::make_pair(s->backends.size(), s->jobs.size()); };
  const auto [nb, nj] = co_await on_strand(*s, fn);
  co_return net::Response::text(
      "<!doctype html><title>comfyfarm</title><h1>comfyfarm</h1><p>A ComfyUI-compatible farm: " +
          std::to_string(nb) + " backend(s), " + std::to_string(nj) +
          " unfinished job(s).</p><p>Point a ComfyUI client at this address. Farm API: "
          "<a href=\"/api/farm/jobs\">/api/farm/jobs</a>, <a href=\"/api/farm/backends\">"
          "/api/farm/backends</a>, <a href=\"/api/schedule/state\">/api/schedule/state</a>.</p>",
      200, "text/html; charset=utf-8");
}

}  // namespace

void Farm::State::add_front_routes(net::Router& r) {
  const auto get = net::Method::kGet;
  const auto post = net::Method::kPost;
  auto self = shared_from_this();
  r.add_with_api_alias(post, "/prompt", handler(self, &post_prompt));
  r.add_with_api_alias(get, "/prompt", handler(self, &get_prompt));
  r.add_with_api_alias(get, "/queue", handler(self, &get_queue));
  r.add_with_api_alias(post, "/queue", handler(self, &post_queue));
  r.add_with_api_alias(get, "/history", handler(self, &get_history));
  r.add_with_api_alias(post, "/history", handler(self, &post_history));
  r.add_with_api_alias(get, "/history/{prompt_id}", handler(self, &get_history_item));
  r.add_with_api_alias(post, "/interrupt", handler(self, &post_interrupt));
  r.add_with_api_alias(post, "/free", handler(self, &post_free));
  r.add_with_api_alias(get, "/system_stats", handler(self, &get_system_stats));
  r.add_with_api_alias(get, "/object_info", handler(self, &get_object_info));
  r.add_with_api_alias(get, "/object_info/{node_class}", handler(self, &get_object_info_class));
  r.add_with_api_alias(get, "/features", handler(self, &get_features));
  r.add_with_api_alias(get, "/view", handler(self, &get_view));
  r.add_with_api_alias(post, "/upload/image", handler(self, &upload_image));
  r.add(get, "/", handler(self, &get_root));
  r.add(get, "/farm", handler(self, &get_farm_page));
  // Everything else (the web UI's files, /userdata, /settings, /i18n, custom nodes' routes)
  // goes to one backend: the least specific pattern, so every route above wins over it.
  for (const auto m : {get, post, net::Method::kPut, net::Method::kDelete, net::Method::kPatch}) {
    r.add(m, "/{path...}", handler(self, &forward_to_backend));
  }

  std::weak_ptr<State> weak = self;
  r.add_websocket_with_api_alias(
      "/ws", [weak](const net::Request& req, const std::shared_ptr<net::WebSocketSession>& session) {
        auto s = weak.lock();
        if (!s) {
          session->close(net::CloseCode::kGoingAway, "farm shutting down");
          return;
        }
        const std::uint64_t id = session->id();
        session->on_message([weak, id](net::WebSocketMessage message) {
          if (auto st = weak.lock()) {
            asio::post(st->strand, [st, id, message = std::move(message)] { st->ws_message(id, message); });
          }
        });
        session->on_close([weak, id](const net::WebSocketCloseInfo&) {
          if (auto st = weak.lock()) asio::post(st->strand, [st, id] { st->ws_closed(id); });
        });
        asio::post(s->strand, [s, session, client = req.query_param("clientId").value_or("")] {
          s->ws_opened(session, client);
        });
      });
}

}  // namespace comfyfarm::farm
