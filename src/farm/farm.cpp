// The farm's core: backends and their supervision, the job life cycle (dispatch, follow,
// settle, retry), crash recovery and shutdown. Routes live in front.cpp and api.cpp.
#include "farm/farm.hpp"

#include "comfy/json_util.hpp"
#include "comfy/workflow.hpp"
#include "farm/farm_state.hpp"
#include "net/run_blocking.hpp"
#include "profile/job_profiler.hpp"
#include "profile/profile_analysis.hpp"
#include "profile/profile_json.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <random>

namespace comfyfarm::farm {

namespace asio = boost::asio;
using asio::use_awaitable;
using scheduler::FailureClass;
using store::JobState;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view to_string(BackendSlot::Phase phase) noexcept {
  switch (phase) {
    case BackendSlot::Phase::kConnecting: return "connecting";
    case BackendSlot::Phase::kUp: return "up";
    case BackendSlot::Phase::kDown: return "down";
  }
  return "down";
}

std::string backend_id_from_url(std::string_view url) {
  std::string_view rest = url;
  if (const auto p = rest.find("://"); p != std::string_view::npos) rest.remove_prefix(p + 3);
  std::string out;
  for (char c : rest) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_') {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? std::string("backend") : out;
}

json::value error_json(std::string_view type, std::string_view message, json::value details) {
  json::object o;
  o["type"] = type;
  o["message"] = message;
  if (!details.is_null()) o["details"] = std::move(details);
  return o;
}

json::value comfy_error_body(std::string_view type, std::string_view message,
                             std::string_view details) {
  json::object err;
  err["type"] = type;
  err["message"] = message;
  err["details"] = details;
  err["extra_info"] = json::object();
  json::object out;
  out["error"] = std::move(err);
  out["node_errors"] = json::object();
  return out;
}

namespace {


void log_exception(std::string_view what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("farm: {} failed: {}", what, ex.what());
  } catch (...) {
    spdlog::error("farm: {} failed", what);
  }
}

/// Takes prompts off a backend: out of its queue, and interrupted where one already runs, so
/// that they do not render there while they run elsewhere (or were cancelled).
asio::awaitable<void> take_off(std::shared_ptr<backend::BackendLink> link, std::vector<std::string> prompts) {
  if (prompts.empty()) co_return;
  (void)co_await link->delete_queued(prompts);
  for (const auto& id : prompts) (void)co_await link->interrupt(id);
}

asio::awaitable<void> take_off_and_close(std::shared_ptr<backend::BackendLink> link,
                                         std::vector<std::string> prompts) {
  co_await take_off(link, std::move(prompts));
  link->stop();
}

/// Sleeps on the caller's executor.
asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::as_tuple(use_awaitable));
}

json::value backend_error_json(const backend::BackendError& e) {
  json::object o;
  o["code"] = backend::to_string(e.code);
  o["message"] = e.message;
  if (e.http_status != 0) o["http_status"] = e.http_status;
  if (e.validation) o["validation"] = e.validation->to_json();
  return o;
}

/// What one attempt came to.
struct AttemptOutcome {
  enum class Kind { kSucceeded, kFailed, kCancelled, kHandedBack };
  Kind kind = Kind::kFailed;
  FailureClass failure = FailureClass::kTransient;
  json::value error;  ///< {class, type, message, ...}
  std::optional<comfy::HistoryEntry> history;
  /// Frames received after the terminal event up to `executing {node: null}`, held until the
  /// outcome is settled: forwarded when final, dropped when the farm retries.
  std::vector<std::pair<std::shared_ptr<const std::string>, bool>> held;
  bool end_seen = false;
  std::vector<std::pair<std::string, json::value>> executed;  ///< node -> ui, from events
  std::int64_t started_at = 0;  ///< execution_start, 0 when not seen
  json::value profile;          ///< comfyfarm.profile/1 of the attempt, with its analysis
  double load_ms = 0;           ///< time spent in loader nodes (model loads), from the profile
};

profile::TimePoint to_profile_time(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<profile::Duration>(t);
}

json::value failure_json(FailureClass cls, std::string_view message, json::value detail = {}) {
  json::object o;
  o["class"] = to_string(cls);
  o["message"] = message;
  if (!detail.is_null()) o["detail"] = std::move(detail);
  return o;
}

AttemptOutcome failed(FailureClass cls, std::string_view message, json::value detail = {}) {
  AttemptOutcome out;
  out.kind = AttemptOutcome::Kind::kFailed;
  out.failure = cls;
  out.error = failure_json(cls, message, std::move(detail));
  return out;
}

/// A node's error as a failed attempt: its class, message and where it happened.
AttemptOutcome failed_from(const comfy::ExecutionError& error) {
  json::object detail;
  detail["node_id"] = error.node_id;
  detail["node_type"] = error.node_type;
  detail["exception_type"] = error.exception_type;
  return failed(classify_execution_error(error), error.exception_message, std::move(detail));
}

bool queue_has(const std::vector<comfy::QueueItem>& items, const std::string& id) {
  return std::any_of(items.begin(), items.end(),
                     [&](const comfy::QueueItem& q) { return q.prompt_id == id; });
}

/// The outcome a finished history entry tells.
AttemptOutcome outcome_from_history(comfy::HistoryEntry entry) {
  AttemptOutcome out;
  bool success = true;
  std::optional<comfy::ExecutionError> error;
  bool interrupted = false;
  if (entry.status) {
    success = entry.status->status_str == "success";
    for (const auto& m : entry.status->messages) {
      if (const auto* e = std::get_if<comfy::ExecutionError>(&m)) error = *e;
      if (std::holds_alternative<comfy::ExecutionInterrupted>(m)) interrupted = true;
    }
  }
  if (success) {
    out.kind = AttemptOutcome::Kind::kSucceeded;
  } else if (interrupted) {
    out.kind = AttemptOutcome::Kind::kCancelled;
  } else if (error) {
    out = failed_from(*error);
  } else {
    out = failed(FailureClass::kTransient, "the backend recorded the prompt as failed");
  }
  out.history = std::move(entry);
  return out;
}

}  // namespace

// ---- State: construction, store, start and stop ----------------------------------------------

Farm::State::State(asio::io_context& ctx, FarmOptions opts)
    : context(ctx),
      strand(asio::make_strand(ctx)),
      options(std::move(opts)),
      sched([&] {
        scheduler::SchedulerConfig c;
        c.queue_capacity = options.queue_capacity + 1024;
        // The farm enforces each job's own max_attempts; the policy only classifies and paces.
        c.retry.max_attempts = 1'000'000;
        c.retry.backoff_ms = options.retry_backoff_ms;
        c.retry.seed = options.seed == 0 ? std::random_device{}() : options.seed;
        return c;
      }()),
      retry_timer(strand) {}

Result<void> Farm::State::open() {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return fail(Errc::kUnavailable,
                "cannot create data directory " + options.data_dir.string() + ": " + ec.message());
  }
  for (const char* sub : {"input", "outputs"}) {
    std::filesystem::create_directories(options.data_dir / sub, ec);
  }
  store::StoreOptions so;
  so.synchronous = options.synchronous;
  so.submit_queue_limit = std::max<std::size_t>(options.queue_capacity, 1024);
  auto opened = store::Store::open(options.data_dir / "comfyfarm.db", so);
  if (!opened) return opened.error();
  store = std::move(*opened);
  return {};
}

void Farm::State::start() {
  auto self = shared_from_this();
  asio::co_spawn(
      strand,
      [](std::shared_ptr<State> s) -> asio::awaitable<void> {
        // Backends: the persisted ones (added through the API), then the configured ones.
        auto list = [&s] { return s->store->list_backends(); };
        auto persisted = co_await net::run_blocking(s->pool, list);
        if (persisted) {
          for (const auto& rec : *persisted) {
            auto r = s->add_backend(rec.id, rec.url, true, rec.added_at, rec.drained);
            if (!r) spdlog::warn("farm: backend {}: {}", rec.id, r.error().message);
          }
        } else {
          spdlog::error("farm: cannot list backends: {}", persisted.error().message);
        }
        for (const auto& c : s->options.backends) {
          const std::string id = c.id.empty() ? backend_id_from_url(c.url) : c.id;
          if (s->backends.contains(id)) continue;
          auto r = s->add_backend(id, c.url, false, now_ms(), false);
          if (!r) spdlog::error("farm: backend {}: {}", id, r.error().message);
        }
        co_await recover(s);
      }(self),
      [](std::exception_ptr e) { log_exception("start-up", e); });
  http->start();
}

void Farm::State::begin_stop(std::chrono::milliseconds grace, std::function<void()> done) {
  stopping = true;
  retry_timer.cancel();
  spdlog::info("farm: stopping: {} job(s) running, {} queued", in_flight, sched.queue().size());
  auto self = shared_from_this();
  auto finished = std::make_shared<bool>(false);
  auto finish = [self, finished, done] {
    if (*finished) return;
    *finished = true;
    self->on_idle = nullptr;
    for (auto& [id, b] : self->backends) b->link->stop();
    for (auto& [id, c] : self->sockets) c.session->close(net::CloseCode::kGoingAway, "farm stopping");
    done();
  };
  if (in_flight == 0) {
    finish();
    return;
  }
  on_idle = finish;
  auto timer = std::make_shared<asio::steady_timer>(strand);
  timer->expires_after(grace);
  timer->async_wait([self, timer, finish](const boost::system::error_code&) {
    if (self->in_flight > 0) {
      spdlog::info("farm: grace period over: handing back {} running job(s)", self->in_flight);
    }
    finish();
  });
}

// ---- backends ---------------------------------------------------------------------------------

namespace {

asio::awaitable<void> supervise(std::shared_ptr<Farm::State> s, std::shared_ptr<BackendSlot> b);

}  // namespace

Result<std::shared_ptr<BackendSlot>> Farm::State::add_backend(const std::string& id,
                                                              const std::string& url,
                                                              bool persisted, std::int64_t added_at,
                                                              bool drained) {
  if (id.empty()) return fail(Errc::kInvalidArgument, "backend id is empty");
  if (backends.contains(id)) return fail(Errc::kAlreadyExists, "backend " + id + " exists");
  backend::BackendLinkOptions lo;
  lo.base_url = url;
  // A stable client id per farm data directory and backend: after a farm restart the
  // backend keeps sending the events of prompts it is still running to the new socket.
  lo.client_id = "comfyfarm-" + id;
  lo.probe_interval = options.probe_interval;
  lo.probe_timeout = std::max(std::chrono::milliseconds(500), options.probe_interval);
  lo.connect_timeout = std::chrono::seconds(3);
  lo.reconnect_max = std::chrono::seconds(2);
  auto link = backend::BackendLink::create(context.get_executor(), lo);
  if (!link) return link.error();
  auto b = std::make_shared<BackendSlot>();
  b->id = id;
  b->url = url;
  b->persisted = persisted;
  b->added_at = added_at;
  b->drained = drained;
  b->link = std::move(*link);
  b->sched_id = next_backend_id++;
  scheduler::BackendSpec spec;
  spec.id = b->sched_id;
  spec.depth = options.depth;
  if (auto r = sched.add_backend(spec); !r) return r.error();
  (void)sched.set_up(b->sched_id, false);
  (void)sched.set_draining(b->sched_id, drained);
  backends[id] = b;
  by_sched_backend[b->sched_id] = b;
  b->link->start();
  spdlog::info("farm: backend {} at {}{}", id, url, drained ? " (drained)" : "");
  asio::co_spawn(strand, supervise(shared_from_this(), b),
                 [id](std::exception_ptr e) { log_exception("supervising backend " + id, e); });
  return b;
}

void Farm::State::remove_backend(const std::shared_ptr<BackendSlot>& b) {
  b->removed = true;
  (void)sched.set_draining(b->sched_id, true);
  (void)sched.set_up(b->sched_id, false);
  backends.erase(b->id);
  rebuild_catalog();
  // Its prompts are taken out of its queue and interrupted before the link closes (the
  // attempts then see kCancelled and requeue their jobs elsewhere): nothing renders twice.
  std::vector<std::string> ids(b->current_jobs.begin(), b->current_jobs.end());
  asio::co_spawn(strand, take_off_and_close(b->link, std::move(ids)),
                 [](std::exception_ptr e) { log_exception("removing a backend", e); });
  spdlog::info("farm: backend {} removed", b->id);
}

void Farm::State::set_drained(const std::shared_ptr<BackendSlot>& b, bool drained) {
  b->drained = drained;
  (void)sched.set_draining(b->sched_id, drained);
  spdlog::info("farm: backend {} {}", b->id, drained ? "drained" : "resumed");
  pump();
}

void Farm::State::rebuild_catalog() {
  std::vector<const comfy::ObjectInfo*> infos;
  std::vector<std::shared_ptr<const comfy::ObjectInfo>> keep;
  for (const auto& [id, b] : backends) {
    if (b->object_info) {
      infos.push_back(b->object_info.get());
      keep.push_back(b->object_info);
    }
  }
  std::shared_ptr<const comfy::NodeCatalog> cat;
  std::shared_ptr<const std::string> text;
  std::set<std::string> inputs;
  if (!infos.empty()) {
    auto merged = merge_object_info(infos);
    for (const char* cls : {"LoadImage", "LoadImageMask"}) {
      if (const auto* c = merged.find(cls)) {
        if (const auto* choices = c->combo_choices("image")) {
          for (const auto& v : *choices) {
            if (v.is_string()) inputs.emplace(v.get_string());
          }
        }
      }
    }
    text = std::make_shared<const std::string>(comfy::dumps(merged.to_json()));
    cat = std::make_shared<const comfy::NodeCatalog>(std::move(merged));
  }
  std::lock_guard lk(catalog_mu);
  catalog = std::move(cat);
  catalog_json = std::move(text);
  backend_input_files = std::move(inputs);
}

std::shared_ptr<const comfy::NodeCatalog> Farm::State::current_catalog() const {
  std::lock_guard lk(catalog_mu);
  return catalog;
}

bool Farm::State::input_file_known(std::string_view filename) const {
  std::error_code ec;
  if (std::filesystem::is_regular_file(options.data_dir / "input" / std::string(filename), ec)) {
    return true;
  }
  std::lock_guard lk(catalog_mu);
  return backend_input_files.contains(std::string(filename));
}

namespace {

/// Brings a backend up (capabilities from /object_info) and watches its health.
asio::awaitable<void> supervise(std::shared_ptr<Farm::State> s, std::shared_ptr<BackendSlot> b) {
  const auto interval = std::max(std::chrono::milliseconds(100), s->options.probe_interval / 2);
  while (!b->removed && !s->stopping) {
    if (b->phase != BackendSlot::Phase::kUp) {
      auto info = co_await b->link->object_info();
      if (b->removed || s->stopping) break;
      if (info) {
        auto offer = backend_offer(*info);
        (void)s->sched.set_capabilities(b->sched_id, offer.class_types, offer.model_files);
        (void)s->sched.cache_cleared(b->sched_id);
        (void)s->sched.set_up(b->sched_id, true);
        b->object_info = std::make_shared<const comfy::ObjectInfo>(std::move(*info));
        b->catalog_at = std::chrono::steady_clock::now();
        b->last_affinity.clear();
        b->uploaded.clear();  // a restarted backend may have lost its input folder
        const bool was_down = b->phase == BackendSlot::Phase::kDown;
        b->phase = BackendSlot::Phase::kUp;
        s->rebuild_catalog();
        spdlog::info("farm: backend {} is up{} ({} node classes, {} model files)", b->id,
                     was_down ? " again" : "", offer.class_types.size(), offer.model_files.size());
        auto stats = co_await b->link->system_stats();
        if (stats) {
          b->system_stats = std::move(*stats);
          b->system_stats_at = now_ms();
        }
        s->pump();
      } else {
        if (b->phase == BackendSlot::Phase::kConnecting && b->last_error != info.error().message) {
          spdlog::warn("farm: backend {} not reachable yet: {}", b->id, info.error().message);
        }
        b->last_error = info.error().message;
      }
    } else {
      const auto h = b->link->health();
      if (h.state == backend::BackendHealth::State::kDown) {
        b->phase = BackendSlot::Phase::kDown;
        b->last_error = h.last_error;
        (void)s->sched.set_up(b->sched_id, false);
        spdlog::warn("farm: backend {} is down: {}", b->id, h.last_error);
      } else if (s->options.catalog_refresh.count() > 0 &&
                 std::chrono::steady_clock::now() - b->catalog_at >= s->options.catalog_refresh) {
        // Models, input images and custom nodes come and go on a live server: read its
        // catalog again now and then (placement filters and validation follow).
        b->catalog_at = std::chrono::steady_clock::now();
        auto info = co_await b->link->object_info();
        if (info && !b->removed && b->phase == BackendSlot::Phase::kUp && !(*info == *b->object_info)) {
          auto offer = backend_offer(*info);
          (void)s->sched.set_capabilities(b->sched_id, offer.class_types, offer.model_files);
          b->object_info = std::make_shared<const comfy::ObjectInfo>(std::move(*info));
          s->rebuild_catalog();
          spdlog::info("farm: backend {}'s catalog changed ({} node classes, {} model files)", b->id,
                       offer.class_types.size(), offer.model_files.size());
          s->pump();
        }
      }
    }
    co_await sleep_for(interval);
  }
}

void mark_down(Farm::State& s, BackendSlot& b, std::string why) {
  if (b.phase != BackendSlot::Phase::kUp) return;
  b.phase = BackendSlot::Phase::kDown;
  b.last_error = std::move(why);
  (void)s.sched.set_up(b.sched_id, false);
  spdlog::warn("farm: backend {} is down: {}", b.id, b.last_error);
}

}  // namespace

// ---- jobs: queue, status, history ---------------------------------------------------------------

scheduler::JobSpec Farm::State::spec_of(const Job& job, scheduler::TimeMs ready_at) const {
  scheduler::JobSpec spec;
  spec.id = job.sched_id;
  spec.priority = job.priority;
  spec.front = job.front;
  spec.batch = job.batch;
  spec.class_types = job.needs.class_types;
  spec.model_files = job.needs.model_files;
  spec.affinity_key = job.needs.affinity_key;
  spec.structural_hash = job.needs.structural_hash;
  if (const auto it = cost_by_structure.find(job.needs.structural_hash);
      it != cost_by_structure.end()) {
    spec.cost_ms = it->second;
  } else if (!cost_by_structure.empty()) {
    // An unseen workflow: the mean of the known ones is a better guess than a constant.
    double sum = 0;
    for (const auto& [h, c] : cost_by_structure) sum += c;
    spec.cost_ms = sum / static_cast<double>(cost_by_structure.size());
  }
  spec.ready_at_ms = ready_at;
  return spec;
}

Result<void> Farm::State::enqueue(const std::shared_ptr<Job>& job, scheduler::TimeMs ready_at) {
  if (job->sched_id == 0) job->sched_id = next_job_id++;
  const auto spec = spec_of(*job, ready_at);
  job->spec_cost = spec.cost_ms;
  job->cost_known = cost_by_structure.contains(job->needs.structural_hash);
  if (auto r = sched.submit(spec, now_ms()); !r) return r;
  job->state = JobState::kQueued;
  jobs[job->id] = job;
  by_sched_job[job->sched_id] = job;
  pump();
  post_status();
  return {};
}

std::int64_t Farm::State::queue_remaining() const {
  return static_cast<std::int64_t>(jobs.size());
}

void Farm::State::post_status() {
  if (status_posted) return;
  status_posted = true;
  asio::post(strand, [self = shared_from_this()] {
    self->status_posted = false;
    comfy::Status st;
    st.queue_remaining = self->queue_remaining();
    const auto frame = std::make_shared<const std::string>(comfy::encode_event(comfy::Event(st)));
    for (const auto& [sid, id] : self->by_sid) {
      if (const auto it = self->sockets.find(id); it != self->sockets.end()) {
        it->second.session->send_shared(frame, false);
      }
    }
  });
}

void Farm::State::remember_history(const std::string& id, json::value entry) {
  if (const auto it = history_index.find(id); it != history_index.end()) {
    history.erase(it->second);
    history_index.erase(it);
  }
  history.emplace_back(id, std::move(entry));
  history_index[id] = std::prev(history.end());
  while (history.size() > kMaxHistory) {
    history_index.erase(history.front().first);
    history.pop_front();
  }
}

std::optional<json::value> Farm::State::cached_history(const std::string& id) const {
  const auto it = history_index.find(id);
  if (it == history_index.end()) return std::nullopt;
  return it->second->second;
}

void Farm::State::pump() {
  if (pump_posted) return;
  pump_posted = true;
  asio::post(strand, [self = shared_from_this()] {
    self->pump_posted = false;
    self->do_pump();
  });
}

namespace {
asio::awaitable<void> run_attempt(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job,
                                  std::shared_ptr<BackendSlot> b, bool reattach);
}  // namespace

void Farm::State::do_pump() {
  if (stopping) return;
  const auto assignments = sched.decide(now_ms());
  for (const auto& a : assignments) {
    const auto jt = by_sched_job.find(a.job);
    const auto bt = by_sched_backend.find(a.backend);
    if (jt == by_sched_job.end() || bt == by_sched_backend.end()) {
      spdlog::error("farm: scheduler placed unknown job {} or backend {}", a.job, a.backend);
      continue;
    }
    auto job = jt->second;
    auto b = bt->second;
    ++in_flight;
    const std::string what = "job " + job->id;
    asio::co_spawn(strand, run_attempt(shared_from_this(), job, b, false),
                   [what](std::exception_ptr e) { log_exception(what, e); });
  }
  arm_retry_timer();
}

void Farm::State::arm_retry_timer() {
  const auto next = sched.queue().next_ready_at();
  if (!next || stopping) return;
  const auto delay = std::max<std::int64_t>(0, *next - now_ms());
  retry_timer.expires_after(std::chrono::milliseconds(delay + 1));
  retry_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->pump();
  });
}

Result<void> Farm::State::cancel_job(const std::string& id) {
  const auto it = jobs.find(id);
  if (it == jobs.end()) return fail(Errc::kNotFound, "job " + id + " is not queued or running");
  auto job = it->second;
  job->cancel_requested = true;
  if (job->state == JobState::kQueued) {
    if (auto r = sched.cancel(job->sched_id); !r) return r;
    jobs.erase(it);
    by_sched_job.erase(job->sched_id);
    post_status();
    const auto at = now_ms();
    asio::co_spawn(
        strand,
        [](std::shared_ptr<State> s, std::shared_ptr<Job> j, std::int64_t t) -> asio::awaitable<void> {
          store::TransitionFields f;
          f.last_error = failure_json(FailureClass::kTransient, "cancelled before it ran");
          auto w = [&] { return s->store->transition(j->id, JobState::kQueued, JobState::kCancelled, t, f); };
          auto r = co_await net::run_blocking(s->pool, w);
          if (!r) spdlog::error("farm: cancel {}: {}", j->id, r.error().message);
        }(shared_from_this(), job, at),
        [](std::exception_ptr e) { log_exception("cancel", e); });
    spdlog::info("farm: job {} cancelled while queued", id);
    return {};
  }
  // On a backend: interrupt it there (or take it out of the backend's queue).
  if (const auto bt = backends.find(job->backend); bt != backends.end()) {
    std::vector<std::string> ids{job->id};
    asio::co_spawn(strand, take_off(bt->second->link, std::move(ids)),
                   [](std::exception_ptr e) { log_exception("interrupt", e); });
  }
  spdlog::info("farm: job {} interrupted on {}", id, job->backend);
  return {};
}

// ---- client events ------------------------------------------------------------------------------

void Farm::State::send_to_client(const std::string& client_id,
                                 const std::shared_ptr<const std::string>& frame, bool binary) {
  auto deliver = [&](WsClient& c) {
    if (binary && !c.preview_metadata && frame->size() >= 8 &&
        static_cast<unsigned char>((*frame)[3]) == 4) {
      // A type-4 preview for a client that did not ask for metadata: send it as type 1.
      auto decoded = comfy::decode_binary(std::string_view(*frame));
      if (decoded) {
        if (const auto* p = std::get_if<comfy::PreviewImageWithMetadata>(&*decoded)) {
          comfy::PreviewImage legacy;
          const auto* t = p->metadata.if_contains("image_type");
          legacy.format = t != nullptr && t->is_string() && t->get_string() == "image/jpeg"
                              ? comfy::ImageFormat::kJpeg
                              : comfy::ImageFormat::kPng;
          legacy.image = p->image;
          const auto bytes = comfy::encode_binary(comfy::BinaryEvent(std::move(legacy)));
          c.session->send_binary(std::string(bytes.begin(), bytes.end()));
          return;
        }
      }
    }
    c.session->send_shared(frame, binary);
  };
  if (client_id.empty()) {
    // A prompt without a client_id: like ComfyUI, every socket gets its progress_state
    // snapshots and previews, and nobody its other events.
    if (!binary && frame->find("\"type\": \"progress_state\"") == std::string::npos) return;
    for (auto& [sid, id] : by_sid) {
      if (const auto it = sockets.find(id); it != sockets.end()) deliver(it->second);
    }
    return;
  }
  if (const auto it = by_sid.find(client_id); it != by_sid.end()) {
    if (const auto s = sockets.find(it->second); s != sockets.end()) deliver(s->second);
  }
}

void Farm::State::send_event(const std::string& client_id, const comfy::Event& event) {
  send_to_client(client_id, std::make_shared<const std::string>(comfy::encode_event(event)), false);
}

std::string Farm::State::farm_subfolder(const std::string& backend, const std::string& subfolder) {
  return subfolder.empty() ? backend : backend + "/" + subfolder;
}

void Farm::State::rewrite_output(json::value& ui, const std::string& backend) {
  if (!ui.is_object()) return;
  for (auto& [key, list] : ui.get_object()) {
    if (!list.is_array()) continue;
    for (auto& item : list.get_array()) {
      if (!item.is_object()) continue;
      auto& o = item.get_object();
      if (!o.contains("filename")) continue;
      const auto* sub = o.if_contains("subfolder");
      const std::string original = sub != nullptr && sub->is_string() ? std::string(sub->get_string()) : "";
      o["subfolder"] = farm_subfolder(backend, original);
    }
  }
}

// ---- one attempt ----------------------------------------------------------------------------------

namespace {

/// What a look at the backend says about a prompt that sent nothing for a while.
struct RemoteCheck {
  enum class Kind { kWaiting, kRunning, kFinished, kLost };
  Kind kind = Kind::kWaiting;
  std::optional<comfy::HistoryEntry> entry;
  std::string reason;
  bool backend_busy = false;  ///< something else runs ahead of the prompt
};

asio::awaitable<RemoteCheck> check_remote(std::shared_ptr<BackendSlot> b, std::string id) {
  RemoteCheck out;
  auto h = co_await b->link->history(id);
  if (!h) {
    out.kind = RemoteCheck::Kind::kLost;
    out.reason = "cannot reach the backend: " + h.error().message;
    co_return out;
  }
  if (*h) {
    out.kind = RemoteCheck::Kind::kFinished;
    out.entry = std::move(**h);
    co_return out;
  }
  auto q = co_await b->link->queue();
  if (!q) {
    out.kind = RemoteCheck::Kind::kLost;
    out.reason = "cannot reach the backend: " + q.error().message;
    co_return out;
  }
  if (queue_has(q->running, id)) {
    out.kind = RemoteCheck::Kind::kRunning;
    co_return out;
  }
  if (queue_has(q->pending, id)) {
    out.kind = RemoteCheck::Kind::kWaiting;
    out.backend_busy = !q->running.empty();
    co_return out;
  }
  // It may have finished between the two calls.
  auto again = co_await b->link->history(id);
  if (again && *again) {
    out.kind = RemoteCheck::Kind::kFinished;
    out.entry = std::move(**again);
    co_return out;
  }
  out.kind = RemoteCheck::Kind::kLost;
  out.reason = "the backend no longer knows the prompt (restarted?)";
  co_return out;
}

/// Uploads the farm-held input files the prompt names, if this backend lacks them.
asio::awaitable<Result<void>> ensure_uploads(std::shared_ptr<Farm::State> s,
                                             std::shared_ptr<Job> job,
                                             std::shared_ptr<BackendSlot> b) {
  for (const auto& [node_id, node] : *job->prompt) {
    if (!node.is_object()) continue;
    const auto* inputs = node.get_object().if_contains("inputs");
    if (inputs == nullptr || !inputs->is_object()) continue;
    for (const auto& [name, value] : inputs->get_object()) {
      if (!value.is_string()) continue;
      std::string file(value.get_string());
      if (const auto p = file.rfind(" ["); p != std::string::npos && file.ends_with("]")) {
        file.resize(p);
      }
      if (file.empty() || file.find("..") != std::string::npos || file.front() == '/') continue;
      const auto path = s->options.data_dir / "input" / file;
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec)) continue;
      if (b->uploaded.contains(file)) continue;
      auto read = [&path]() -> std::optional<std::string> {
        std::ifstream in(path, std::ios::binary);
        if (!in) return std::nullopt;
        return std::string(std::istreambuf_iterator<char>(in), {});
      };
      auto bytes = co_await net::run_blocking(s->file_pool, read);
      if (!bytes) co_return fail(Errc::kUnavailable, "cannot read input file " + file);
      const auto slash = file.rfind('/');
      std::string subfolder = slash == std::string::npos ? "" : file.substr(0, slash);
      std::string base = slash == std::string::npos ? file : file.substr(slash + 1);
      auto up = co_await b->link->upload_image(base, std::move(*bytes), "input", subfolder, true);
      if (!up) co_return up.error().to_error();
      b->uploaded.insert(file);
    }
  }
  co_return Result<void>();
}

/// The frames a client missed of a prompt whose end was read from the backend's history
/// because its WebSocket events were lost (a dropped socket, a farm restart): execution_start
/// unless one was sent, `executed` for the outputs not sent yet (with the farm's subfolders),
/// and the terminal message the history recorded (execution_success when it recorded none).
std::vector<std::pair<std::shared_ptr<const std::string>, bool>> frames_from_history(
    const comfy::HistoryEntry& entry, const std::string& prompt_id, bool start_sent,
    const std::vector<std::pair<std::string, json::value>>& executed, const std::string& backend) {
  std::vector<std::pair<std::shared_ptr<const std::string>, bool>> out;
  const auto push = [&out](const comfy::Event& e) {
    out.emplace_back(std::make_shared<const std::string>(comfy::encode_event(e)), false);
  };
  std::optional<comfy::Event> end;
  bool success = true;
  if (entry.status) {
    success = entry.status->status_str == "success";
    for (const auto& m : entry.status->messages) {
      if (std::holds_alternative<comfy::ExecutionStart>(m)) {
        if (!start_sent) push(m);
      } else if (std::holds_alternative<comfy::ExecutionSuccess>(m) ||
                 std::holds_alternative<comfy::ExecutionError>(m) ||
                 std::holds_alternative<comfy::ExecutionInterrupted>(m)) {
        end = m;
      }
    }
  }
  for (const auto& [node, ui] : entry.outputs) {
    const bool sent = std::any_of(executed.begin(), executed.end(),
                                  [&](const auto& e) { return e.first == node; });
    if (sent) continue;
    comfy::Executed ex;
    ex.node = node;
    ex.display_node = std::string(node);
    ex.output = ui;
    Farm::State::rewrite_output(ex.output, backend);
    ex.prompt_id = prompt_id;
    push(comfy::Event(std::move(ex)));
  }
  if (!end && success) {
    comfy::ExecutionSuccess done;
    done.prompt_id = prompt_id;
    done.timestamp = now_ms();
    end = comfy::Event(std::move(done));
  }
  if (end) push(*end);
  return out;
}

/// Sends the job to the backend (unless re-attaching) and follows it to its outcome.
asio::awaitable<AttemptOutcome> drive_inner(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job,
                                            std::shared_ptr<BackendSlot> b, bool reattach,
                                            std::shared_ptr<profile::JobProfiler> profiler) {
  using Clock = std::chrono::steady_clock;
  auto stream = co_await b->link->watch(job->id);
  if (!reattach) {
    auto up = co_await ensure_uploads(s, job, b);
    if (!up) co_return failed(FailureClass::kTransient, up.error().message);
    backend::SubmitOptions so;
    if (!job->extra_data.empty()) so.extra_data = job->extra_data;
    if (!job->outputs_to_execute.empty()) so.partial_execution_targets = job->outputs_to_execute;
    json::object prompt = *job->prompt;
    profiler->on_submitted(to_profile_time(std::chrono::system_clock::now()));
    auto reply = co_await b->link->submit(job->id, prompt, so);
    // A 5xx answer means the backend did not take the prompt (ComfyUI queues only on 200):
    // try the same backend twice more, briefly, before it costs the job an attempt.
    for (int extra = 0; extra < 2 && !reply && reply.error().code == backend::BackendErrc::kServerError; ++extra) {
      co_await sleep_for(std::chrono::milliseconds(100 * (extra + 1)));
      reply = co_await b->link->submit(job->id, prompt, so);
    }
    if (!reply) {
      const auto e = reply.error();
      const auto cls = classify_backend_error(e);
      const bool maybe_accepted = e.code == backend::BackendErrc::kTimeout ||
                                  e.code == backend::BackendErrc::kReset ||
                                  e.code == backend::BackendErrc::kProtocol;
      bool accepted = false;
      if (maybe_accepted) {
        // The request may have reached the backend before the answer was lost: never send the
        // prompt elsewhere while this backend may run it.
        auto rc = co_await check_remote(b, job->id);
        accepted = rc.kind != RemoteCheck::Kind::kLost;
      }
      if (!accepted) {
        if (cls == FailureClass::kBackendLost) mark_down(*s, *b, e.message);
        co_return failed(cls, e.message, backend_error_json(e));
      }
    }
  }

  AttemptOutcome out;
  bool started = reattach && job->state == JobState::kRunning;
  bool start_sent = false;  // an execution_start of this attempt reached the client
  bool terminal = false;
  auto last_event = Clock::now();
  auto waiting_since = Clock::now();  // accepted, nothing running ahead of it
  const auto check_every = std::max(std::chrono::milliseconds(200), s->options.probe_interval);
  const auto forward = [&](const backend::PromptEvent& ev, bool binary) {
    if (terminal) {
      out.held.emplace_back(ev.raw, binary);
    } else {
      s->send_to_client(job->client_id, ev.raw, binary);
    }
  };
  bool check_now = reattach;
  int unreachable = 0;  // consecutive checks that could not reach the backend
  // Giving up on the prompt there takes it off that backend (take_off): it must not render a
  // second time once it runs elsewhere.
  const std::vector<std::string> this_prompt{job->id};
  for (;;) {
    if (check_now) {
      check_now = false;
      auto rc = co_await check_remote(b, job->id);
      if (rc.kind == RemoteCheck::Kind::kLost && rc.reason.starts_with("cannot reach")) {
        const auto h = b->link->health();
        if (++unreachable < 3 && h.state != backend::BackendHealth::State::kDown &&
            rc.reason.find("refused") == std::string::npos) {
          continue;  // one failed look is not a lost backend; look again after the next wait
        }
      } else {
        unreachable = 0;
      }
      if (rc.kind == RemoteCheck::Kind::kFinished) {
        auto done = outcome_from_history(std::move(*rc.entry));
        if (terminal) {
          done.held = std::move(out.held);  // the end the client is owed came as events
        } else {
          // The events of its end were lost: the client hears it from the history.
          done.held = frames_from_history(*done.history, job->id, start_sent, out.executed, b->id);
        }
        done.executed = std::move(out.executed);
        done.started_at = out.started_at;
        co_return done;
      }
      if (rc.kind == RemoteCheck::Kind::kLost && job->cancel_requested &&
          !rc.reason.starts_with("cannot reach")) {
        // cancel_job took it out of the backend's queue before it started: cancelled, not lost.
        AttemptOutcome cancelled;
        cancelled.kind = AttemptOutcome::Kind::kCancelled;
        co_return cancelled;
      }
      if (rc.kind == RemoteCheck::Kind::kLost) {
        if (!b->link->health().websocket_connected || rc.reason.starts_with("cannot reach")) {
          mark_down(*s, *b, rc.reason);
        }
        co_return failed(FailureClass::kBackendLost, rc.reason);
      }
      const auto now = Clock::now();
      if (rc.kind == RemoteCheck::Kind::kRunning) {
        if (!started) {
          started = true;
          last_event = now;
        }
        if (now - last_event > s->options.silence_timeout) {
          co_await take_off(b->link, this_prompt);
          co_return failed(FailureClass::kBackendLost,
                           "no event from the running prompt for " +
                               std::to_string(s->options.silence_timeout.count()) + " ms");
        }
      } else if (rc.kind == RemoteCheck::Kind::kWaiting) {
        if (rc.backend_busy) waiting_since = now;
        if (now - waiting_since > s->options.start_timeout) {
          co_await take_off(b->link, this_prompt);
          co_return failed(FailureClass::kBackendLost,
                           "accepted but not started within " +
                               std::to_string(s->options.start_timeout.count()) +
                               " ms while nothing ran ahead of it");
        }
      }
    }
    const auto wait = terminal ? std::chrono::milliseconds(2000) : check_every;
    auto next = co_await stream->next(wait);
    if (!next) {
      if (next.error().code == backend::BackendErrc::kTimeout) {
        if (terminal) break;  // no `executing null` came: it is synthesized
        check_now = true;
        continue;
      }
      // The link stopped: the backend was removed or the farm is stopping.
      if (s->stopping) {
        AttemptOutcome back;
        back.kind = AttemptOutcome::Kind::kHandedBack;
        co_return back;
      }
      co_return failed(FailureClass::kBackendLost, "the backend was removed");
    }
    auto& ev = *next;
    if (const auto* le = std::get_if<backend::LinkEvent>(&ev.event)) {
      if (le->kind == backend::LinkEvent::Kind::kDisconnected) {
        // Either the process died (the next call is refused) or the socket hiccuped.
        auto probe = co_await b->link->exec_info();
        if (!probe && (probe.error().code == backend::BackendErrc::kRefused ||
                       probe.error().code == backend::BackendErrc::kReset)) {
          mark_down(*s, *b, probe.error().message);
          co_return failed(FailureClass::kBackendLost,
                           "the backend went away: " + probe.error().message);
        }
      }
      check_now = true;  // events sent while the socket was down are lost: look it up
      continue;
    }
    last_event = Clock::now();
    if (const auto* bin = std::get_if<comfy::BinaryEvent>(&ev.event)) {
      profiler->on_binary(*bin, to_profile_time(ev.received_at));
      forward(ev, true);
      continue;
    }
    const auto& e = std::get<comfy::Event>(ev.event);
    profiler->on_event(e, to_profile_time(ev.received_at));
    if (std::holds_alternative<comfy::Status>(e) || std::holds_alternative<comfy::FeatureFlags>(e)) {
      continue;
    }
    if (const auto* st = std::get_if<comfy::ExecutionStart>(&e)) {
      (void)st;
      started = true;
      out.started_at = now_ms();
      if (job->state == JobState::kDispatched) {
        job->state = JobState::kRunning;
        // Not awaited: the store thread runs calls in order, so this lands before the job's
        // final transition, and the events are not held up meanwhile.
        boost::asio::post(s->pool, [s, id = job->id, at = out.started_at] {
          auto r = s->store->transition(id, JobState::kDispatched, JobState::kRunning, at);
          if (!r) spdlog::warn("farm: job {}: {}", id, r.error().message);
        });
      }
      if (!terminal) start_sent = true;
      forward(ev, false);
      continue;
    }
    if (const auto* ex = std::get_if<comfy::Executed>(&e)) {
      json::value ui = ex->output;
      out.executed.emplace_back(ex->node, ui);
      Farm::State::rewrite_output(ui, b->id);
      comfy::Executed copy = *ex;
      copy.output = std::move(ui);
      const auto frame = std::make_shared<const std::string>(comfy::encode_event(comfy::Event(copy)));
      if (terminal) {
        out.held.emplace_back(frame, false);
      } else {
        s->send_to_client(job->client_id, frame, false);
      }
      continue;
    }
    if (const auto* x = std::get_if<comfy::Executing>(&e); x != nullptr && x->is_end_of_prompt()) {
      out.held.emplace_back(ev.raw, false);
      out.end_seen = true;
      if (!terminal) {
        // An old server without execution_success: the history tells the outcome.
        auto rc = co_await check_remote(b, job->id);
        if (rc.kind == RemoteCheck::Kind::kFinished) {
          auto done = outcome_from_history(std::move(*rc.entry));
          done.held = std::move(out.held);
          done.end_seen = true;
          done.executed = std::move(out.executed);
          done.started_at = out.started_at;
          co_return done;
        }
        co_return failed(FailureClass::kTransient, "the prompt ended without a result");
      }
      break;
    }
    if (std::holds_alternative<comfy::ExecutionSuccess>(e)) {
      terminal = true;
      out.kind = AttemptOutcome::Kind::kSucceeded;
      out.held.emplace_back(ev.raw, false);
      continue;
    }
    if (const auto* err = std::get_if<comfy::ExecutionError>(&e)) {
      if (err->exception_type == "ExecutionBlocked") {  // not terminal
        forward(ev, false);
        continue;
      }
      terminal = true;
      auto held = std::move(out.held);
      auto executed = std::move(out.executed);
      const auto started_at = out.started_at;
      out = failed_from(*err);
      out.held = std::move(held);
      out.executed = std::move(executed);
      out.started_at = started_at;
      out.held.emplace_back(ev.raw, false);
      continue;
    }
    if (std::holds_alternative<comfy::ExecutionInterrupted>(e)) {
      terminal = true;
      auto held = std::move(out.held);
      out.kind = job->cancel_requested ? AttemptOutcome::Kind::kCancelled
                                       : AttemptOutcome::Kind::kFailed;
      if (!job->cancel_requested) {
        out.failure = FailureClass::kTransient;
        out.error = failure_json(FailureClass::kTransient, "interrupted on the backend");
      }
      out.held = std::move(held);
      out.held.emplace_back(ev.raw, false);
      continue;
    }
    forward(ev, false);
  }
  co_return out;
}

asio::awaitable<AttemptOutcome> drive(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job,
                                      std::shared_ptr<BackendSlot> b, bool reattach) {
  profile::ProfilerOptions po;
  po.prompt_id = job->id;
  po.backend = b->id;
  po.label = job->id;
  std::optional<comfy::Workflow> wf;
  if (auto parsed = comfy::Workflow::from_json(json::value(*job->prompt))) wf = std::move(*parsed);
  auto profiler = std::make_shared<profile::JobProfiler>(po, std::move(wf));
  auto out = co_await drive_inner(s, job, b, reattach, profiler);
  if (out.kind != AttemptOutcome::Kind::kHandedBack) {
    if (out.history) profiler->on_history(*out.history);
    profiler->close(to_profile_time(std::chrono::system_clock::now()));
    const auto prof = profiler->profile();
    for (const auto& node : prof.nodes) {
      if (node.duration && node.class_type.find("Loader") != std::string::npos) {
        out.load_ms += std::chrono::duration<double, std::milli>(*node.duration).count();
      }
    }
    const auto analysis = profile::analyze(prof);
    out.profile = profile::to_json(prof, &analysis);
  }
  co_return out;
}

/// A /history entry in ComfyUI's shape for a job that ended without one from a backend.
json::value synthetic_history(const Job& job, std::string_view status_str,
                              const json::array& messages) {
  json::object status;
  status["status_str"] = status_str;
  status["completed"] = status_str == "success";
  status["messages"] = messages;
  json::object extra = job.extra_data;
  if (!job.client_id.empty()) extra["client_id"] = job.client_id;
  json::array item;
  item.push_back(job.number);
  item.push_back(json::value(job.id));
  item.push_back(*job.prompt);
  item.push_back(std::move(extra));
  json::array outs;
  for (const auto& o : job.outputs_to_execute) outs.push_back(json::value(o));
  item.push_back(std::move(outs));
  json::object entry;
  entry["prompt"] = std::move(item);
  entry["outputs"] = json::object();
  entry["status"] = std::move(status);
  entry["meta"] = json::object();
  return entry;
}

/// The client-facing history entry: the backend's, with the farm's number, extra_data and
/// output subfolders.
json::value client_history(const Job& job, const comfy::HistoryEntry& from, const std::string& backend) {
  comfy::History h;
  h.entries.push_back(from);
  json::value doc = h.to_json();
  json::value entry = std::move(doc.get_object()[from.prompt_id]);
  auto& o = entry.get_object();
  json::object extra = job.extra_data;
  if (!job.client_id.empty()) extra["client_id"] = job.client_id;
  if (auto* p = o.if_contains("prompt"); p != nullptr && p->is_array() && p->get_array().size() >= 4) {
    auto& arr = p->get_array();
    arr[0] = job.number;
    arr[3] = std::move(extra);
  }
  if (auto* outs = o.if_contains("outputs"); outs != nullptr && outs->is_object()) {
    for (auto& [node, ui] : outs->get_object()) Farm::State::rewrite_output(ui, backend);
  }
  return entry;
}

/// The files a node's ui dict lists ({"images": [{filename, subfolder, type}], ...}).
void add_output_files(std::vector<store::OutputRecord>& out, std::string_view node, const json::value& ui,
                      const std::string& backend) {
  if (!ui.is_object()) return;
  for (const auto& [key, list] : ui.get_object()) {
    if (!list.is_array()) continue;
    for (const auto& item : list.get_array()) {
      if (!item.is_object() || !item.get_object().contains("filename")) continue;
      const auto& io = item.get_object();
      auto str = [&](std::string_view k) {
        const auto* v = io.if_contains(k);
        return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
      };
      out.push_back({std::string(node), str("filename"), str("subfolder"), str("type"), backend});
    }
  }
}

/// Downloads a job's outputs into data_dir/outputs (the farm's copy).
asio::awaitable<void> copy_outputs(std::shared_ptr<Farm::State> s, std::shared_ptr<BackendSlot> b,
                                   std::vector<store::OutputRecord> outputs) {
  for (const auto& o : outputs) {
    if (o.type != "output") continue;
    auto v = co_await b->link->view(o.filename, o.subfolder, o.type);
    if (!v) {
      spdlog::warn("farm: copying output {} from {}: {}", o.filename, b->id, v.error().message);
      continue;
    }
    const auto dir = s->options.data_dir / "outputs" / o.type / Farm::State::farm_subfolder(b->id, o.subfolder);
    auto write = [&] {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      const auto tmp = dir / (o.filename + ".part");
      {
        std::ofstream out(tmp, std::ios::binary);
        out.write(v->bytes.data(), static_cast<std::streamsize>(v->bytes.size()));
        if (!out) return false;
      }
      std::filesystem::rename(tmp, dir / o.filename, ec);
      return !ec;
    };
    if (!co_await net::run_blocking(s->file_pool, write)) {
      spdlog::warn("farm: cannot write the copy of {}", o.filename);
    }
  }
}

/// Records the outcome, tells the client, and retries or finishes the job.
asio::awaitable<void> settle(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job,
                             std::shared_ptr<BackendSlot> b, int attempt, AttemptOutcome out,
                             bool in_scheduler) {
  const std::int64_t now = now_ms();
  b->current_jobs.erase(job->id);
  if (!s->board.empty()) {
    for (auto it = s->board.rbegin(); it != s->board.rend(); ++it) {
      if (it->job == job->id && it->backend == b->id && it->end == 0) {
        it->end = now;
        it->outcome = out.kind == AttemptOutcome::Kind::kSucceeded   ? "succeeded"
                      : out.kind == AttemptOutcome::Kind::kCancelled ? "cancelled"
                      : out.kind == AttemptOutcome::Kind::kHandedBack
                          ? "handed_back"
                          : std::string(to_string(out.failure));
        break;
      }
    }
  }
  const JobState from = job->state;
  if (out.kind == AttemptOutcome::Kind::kHandedBack) {
    spdlog::info("farm: job {} handed back (still {} on {})", job->id, store::to_string(from), b->id);
    co_return;
  }

  // The terminal frames, for the outcomes the client must see.
  const auto deliver_held = [&] {
    for (auto& [frame, binary] : out.held) s->send_to_client(job->client_id, frame, binary);
    if (!out.end_seen) {
      comfy::Executing end;
      end.prompt_id = job->id;
      s->send_event(job->client_id, comfy::Event(std::move(end)));
    }
  };

  if (out.kind == AttemptOutcome::Kind::kSucceeded) {
    const double wall_ms = out.started_at > 0 ? static_cast<double>(now - out.started_at)
                                              : static_cast<double>(now - job->attempt_started_at);
    // The scheduler learns speeds from execution without model loads (it models loads apart).
    const double run_ms = std::max(1.0, wall_ms - out.load_ms);
    // The client hears of the success first (the backend has the result, and a farm restart
    // before the store has it re-attaches and records it from the backend's history), then the
    // farm fetches the backend's history entry and records everything.
    if (in_scheduler) {
      // A job whose cost was only guessed says nothing about the backend's speed: report the
      // time its current speed predicts, which leaves the speed as it is.
      const auto* bv = s->sched.backend(b->sched_id);
      const bool cost_known = s->cost_by_structure.contains(job->needs.structural_hash) &&
                              job->cost_known;
      const double reported = cost_known || bv == nullptr ? run_ms : job->spec_cost / bv->speed;
      (void)s->sched.complete(job->sched_id, b->sched_id, std::max(0.001, reported), now);
    }
    auto& cost = s->cost_by_structure[job->needs.structural_hash];
    const auto* view = s->sched.backend(b->sched_id);
    const double sample = std::max(1.0, run_ms) * (view != nullptr ? view->speed : 1.0);
    cost = cost == 0 ? sample : 0.7 * cost + 0.3 * sample;
    b->jobs_done++;
    b->busy_ms += wall_ms;
    b->last_affinity = job->needs.affinity_key;
    job->state = JobState::kSucceeded;
    s->jobs.erase(job->id);
    s->by_sched_job.erase(job->sched_id);
    ++s->succeeded_total;
    s->pump();
    if (!out.history) {
      // The entry the events describe, until the backend's own arrives.
      json::array messages;
      json::value provisional = synthetic_history(*job, "success", messages);
      json::object outs;
      for (auto& [node, ui] : out.executed) {
        json::value copy = ui;
        Farm::State::rewrite_output(copy, b->id);
        outs[node] = std::move(copy);
      }
      provisional.get_object()["outputs"] = std::move(outs);
      s->remember_history(job->id, std::move(provisional));
    }
    deliver_held();
    if (!out.history) {
      auto h = co_await b->link->history(job->id);
      if (h && *h) out.history = std::move(**h);
    }
    std::vector<store::OutputRecord> outputs;
    json::value entry;
    if (out.history) {
      for (const auto& [node, ui] : out.history->outputs) add_output_files(outputs, node, ui, b->id);
      entry = client_history(*job, *out.history, b->id);
    } else {
      entry = s->cached_history(job->id).value_or(json::value(json::object()));
      for (const auto& [node, ui] : out.executed) add_output_files(outputs, node, ui, b->id);
    }
    s->remember_history(job->id, entry);
    store::AttemptRecord rec{job->id, attempt, b->id, job->attempt_started_at, now, "succeeded", nullptr};
    auto w = [&] {
      if (!outputs.empty()) {
        if (auto r = s->store->add_outputs(job->id, outputs); !r) return r;
      }
      if (auto r = s->store->set_result(job->id, entry); !r) return r;
      if (!out.profile.is_null()) (void)s->store->set_profile(job->id, out.profile);
      if (auto r = s->store->record_attempt(rec); !r) return r;
      return s->store->transition(job->id, from, JobState::kSucceeded, now);
    };
    auto r = co_await net::run_blocking(s->pool, w);
    if (!r) spdlog::error("farm: recording the success of {}: {}", job->id, r.error().message);
    spdlog::debug("farm: job {} succeeded on {} (attempt {}, {:.0f} ms)", job->id, b->id, attempt, run_ms);
    if (s->options.copy_outputs && !outputs.empty()) {
      asio::co_spawn(s->strand, copy_outputs(s, b, std::move(outputs)),
                     [](std::exception_ptr e) { log_exception("copying outputs", e); });
    }
    co_return;
  }

  if (out.kind == AttemptOutcome::Kind::kCancelled) {
    if (in_scheduler) (void)s->sched.fail(job->sched_id, b->sched_id, FailureClass::kWorkflowInvalid, now);
    json::array messages;
    json::value entry = out.history ? client_history(*job, *out.history, b->id)
                                    : synthetic_history(*job, "error", messages);
    store::AttemptRecord rec{job->id, attempt, b->id, job->attempt_started_at, now, "cancelled", nullptr};
    auto w = [&] {
      (void)s->store->set_result(job->id, entry);
      (void)s->store->record_attempt(rec);
      return s->store->transition(job->id, from, JobState::kCancelled, now);
    };
    auto r = co_await net::run_blocking(s->pool, w);
    if (!r) spdlog::error("farm: recording the cancellation of {}: {}", job->id, r.error().message);
    s->remember_history(job->id, entry);
    job->state = JobState::kCancelled;
    s->jobs.erase(job->id);
    s->by_sched_job.erase(job->sched_id);
    deliver_held();
    spdlog::info("farm: job {} cancelled on {}", job->id, b->id);
    co_return;
  }

  // Failed.
  ++b->failures;
  std::optional<scheduler::FailureOutcome> fo;
  if (in_scheduler) {
    auto f = s->sched.fail(job->sched_id, b->sched_id, out.failure, now);
    if (f) fo = *f;
  }
  scheduler::RetryDecision decision;
  if (fo) {
    decision = fo->decision;
  } else {
    scheduler::RetryPolicy policy(scheduler::RetryConfig{1'000'000, s->options.retry_backoff_ms, 1});
    decision = policy.decide(out.failure, attempt);
  }
  bool retry = decision.retry && attempt < job->max_attempts && !job->cancel_requested;
  if (retry && fo && !s->sched.placeable(job->sched_id)) {
    // Every backend that could run it has failed it as incompatible: waiting would be forever.
    retry = false;
    out.failure = FailureClass::kBackendIncompatible;
    if (out.error.is_object()) {
      out.error.get_object()["message"] =
          "no backend of the farm can run this workflow (" +
          std::string(out.error.get_object()["message"].is_string()
                          ? out.error.get_object()["message"].get_string().c_str()
                          : "") +
          ")";
    }
  }
  bool freed = false;
  if (decision.free_backend) {
    // Out of memory: unload the backend's models and free its cache before anything runs
    // there again (awaited, so that a retry on the same backend comes after it).
    auto f = co_await b->link->free(true, true);
    freed = static_cast<bool>(f);
    if (!f) spdlog::warn("farm: /free on {} failed: {}", b->id, f.error().message);
  }
  json::value error = out.error;
  if (error.is_object()) {
    error.get_object()["attempt"] = attempt;
    error.get_object()["backend"] = b->id;
    if (decision.free_backend) error.get_object()["freed_backend"] = freed;
  }
  store::AttemptRecord rec{job->id, attempt, b->id, job->attempt_started_at, now,
                           std::string(to_string(out.failure)), error};
  if (retry) {
    store::TransitionFields f;
    f.last_error = error;
    f.retry_count = job->retry_count + 1;
    auto w = [&] {
      (void)s->store->record_attempt(rec);
      return s->store->transition(job->id, from, JobState::kQueued, now, f);
    };
    auto r = co_await net::run_blocking(s->pool, w);
    if (!r) spdlog::error("farm: recording the retry of {}: {}", job->id, r.error().message);
    job->retry_count++;
    job->state = JobState::kQueued;
    ++s->retried_total;
    if (s->stopping) {
      // Left queued in the store: the next start runs it.
      if (fo) (void)s->sched.cancel(job->sched_id);
      s->jobs.erase(job->id);
      s->by_sched_job.erase(job->sched_id);
    } else if (!fo) {
      // Re-attached after a restart, so not in the scheduler yet.
      (void)s->enqueue(job, now + decision.delay_ms);
    }
    spdlog::info("farm: job {} attempt {} on {} failed ({}: {}); retry in {} ms", job->id, attempt,
                 b->id, to_string(out.failure),
                 out.error.is_object() && out.error.get_object().contains("message")
                     ? std::string(out.error.get_object().at("message").as_string())
                     : std::string(),
                 decision.delay_ms);
    s->arm_retry_timer();
    s->post_status();
    co_return;
  }
  if (fo && fo->decision.retry) (void)s->sched.cancel(job->sched_id);
  const bool regenerate = decision.needs_regeneration || out.failure == FailureClass::kWorkflowInvalid;
  const bool backend_reported = std::any_of(out.held.begin(), out.held.end(), [](const auto& h) {
    return h.first->find("\"execution_error\"") != std::string::npos;
  });
  if (!out.history && backend_reported) {
    // The backend ran it and recorded the error: its history entry has the node's own words
    // (node_id, node_type, exception_type), as ComfyUI's /history/{id} shows them.
    auto h = co_await b->link->history(job->id);
    if (h && *h) out.history = std::move(**h);
  }
  json::value entry;
  if (out.history) {
    entry = client_history(*job, *out.history, b->id);
  } else {
    // Tell the client in ComfyUI's words: an execution_error, then the end of the prompt.
    comfy::ExecutionError ee;
    ee.prompt_id = job->id;
    ee.exception_type = std::string("comfyfarm.") + std::string(to_string(out.failure));
    ee.exception_message = out.error.is_object() && out.error.get_object().contains("message")
                               ? std::string(out.error.get_object().at("message").as_string())
                               : std::string("the job failed");
    ee.current_inputs = json::object();
    ee.timestamp = now;
    const bool have_error_frame = std::any_of(out.held.begin(), out.held.end(), [](const auto& h) {
      return h.first->find("\"execution_error\"") != std::string::npos;
    });
    if (!have_error_frame) {
      out.held.insert(out.held.begin(),
                      {std::make_shared<const std::string>(comfy::encode_event(comfy::Event(ee))), false});
    }
    json::array messages;
    json::array m;
    m.push_back("execution_error");
    auto encoded = comfy::parse_json(comfy::encode_event(comfy::Event(ee)));
    m.push_back(encoded ? encoded->at("data") : json::value(json::object()));
    messages.push_back(std::move(m));
    entry = synthetic_history(*job, "error", messages);
  }
  store::TransitionFields f;
  f.last_error = error;
  f.needs_regeneration = regenerate;
  auto w = [&] {
    (void)s->store->record_attempt(rec);
    (void)s->store->set_result(job->id, entry);
    if (!out.profile.is_null()) (void)s->store->set_profile(job->id, out.profile);
    return s->store->transition(job->id, from, JobState::kFailed, now, f);
  };
  auto r = co_await net::run_blocking(s->pool, w);
  if (!r) spdlog::error("farm: recording the failure of {}: {}", job->id, r.error().message);
  s->remember_history(job->id, entry);
  job->state = JobState::kFailed;
  s->jobs.erase(job->id);
  s->by_sched_job.erase(job->sched_id);
  ++s->failed_total;
  deliver_held();
  spdlog::warn("farm: job {} failed on {} after {} attempt(s): {}{}", job->id, b->id, attempt,
               to_string(out.failure), regenerate ? " (needs regeneration)" : "");
}

asio::awaitable<void> run_attempt(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job,
                                  std::shared_ptr<BackendSlot> b, bool reattach) {
  const std::int64_t now = now_ms();
  int attempt = job->attempts;
  if (!reattach) {
    attempt = ++job->attempts;
    job->backend = b->id;
    job->attempt_started_at = now;
    const JobState from = job->state;
    job->state = JobState::kDispatched;
    store::TransitionFields f;
    f.backend_id = b->id;
    f.attempts = attempt;
    f.last_attempted_at = now;
    store::AttemptRecord rec{job->id, attempt, b->id, now, std::nullopt, "", nullptr};
    auto w = [&] {
      if (auto r = s->store->transition(job->id, from, JobState::kDispatched, now, f); !r) return r;
      return s->store->record_attempt(rec);
    };
    auto r = co_await net::run_blocking(s->pool, w);
    if (!r) spdlog::error("farm: job {}: dispatch not recorded: {}", job->id, r.error().message);
  } else {
    job->attempt_started_at = now;
  }
  b->current_jobs.insert(job->id);
  s->board.push_back({job->id, b->id, now, 0, ""});
  while (s->board.size() > Farm::State::kMaxBoard) s->board.pop_front();
  auto out = co_await drive(s, job, b, reattach);
  co_await settle(s, job, b, attempt, std::move(out), !reattach);
  if (s->in_flight > 0) --s->in_flight;
  s->post_status();
  s->pump();
  if (s->in_flight == 0 && s->on_idle) s->on_idle();
}

}  // namespace

// ---- recovery -------------------------------------------------------------------------------------

std::shared_ptr<Job> job_from_record(const store::JobRecord& rec) {
  auto job = std::make_shared<Job>();
  job->id = rec.id;
  job->prompt = std::make_shared<const json::object>(
      rec.workflow.is_object() ? rec.workflow.get_object() : json::object());
  if (rec.extra_data.is_object()) {
    job->extra_data = rec.extra_data.get_object();
    if (const auto* t = job->extra_data.if_contains("__outputs_to_execute"); t != nullptr && t->is_array()) {
      for (const auto& v : t->get_array()) {
        if (v.is_string()) job->outputs_to_execute.emplace_back(v.get_string());
      }
    }
    job->extra_data.erase("__outputs_to_execute");
  }
  job->client_id = rec.client_id;
  job->number = rec.number;
  job->priority = rec.priority;
  job->front = rec.front;
  job->batch = rec.batch_id;
  job->max_attempts = rec.max_attempts;
  job->state = rec.state;
  job->attempts = rec.attempts;
  job->retry_count = rec.retry_count;
  job->backend = rec.backend_id;
  job->created_at = rec.created_at;
  if (auto needs = workflow_needs(*job->prompt)) job->needs = std::move(*needs);
  return job;
}

namespace {

/// A job that was on a backend when the farm stopped: finished there (record it), still there
/// (follow it), or gone (queue it again).
asio::awaitable<void> reattach(std::shared_ptr<Farm::State> s, std::shared_ptr<Job> job) {
  std::shared_ptr<BackendSlot> b;
  if (const auto it = s->backends.find(job->backend); it != s->backends.end()) b = it->second;
  if (b) {
    // Give the backend a moment to answer (it may be starting too).
    for (int i = 0; i < 20 && b->phase != BackendSlot::Phase::kUp && !s->stopping; ++i) {
      co_await sleep_for(std::chrono::milliseconds(250));
    }
  }
  if (b && b->phase == BackendSlot::Phase::kUp) {
    auto rc = co_await check_remote(b, job->id);
    if (rc.kind != RemoteCheck::Kind::kLost) {
      spdlog::info("farm: job {} re-attached on {} ({})", job->id, b->id,
                   rc.kind == RemoteCheck::Kind::kFinished ? "finished while the farm was down"
                                                           : "still there");
      s->jobs[job->id] = job;
      ++s->in_flight;
      co_await run_attempt(s, job, b, true);
      co_return;
    }
  }
  // Not on any backend: run it again (it never finished, so nothing is rendered twice).
  const std::int64_t now = now_ms();
  store::TransitionFields f;
  f.last_error = failure_json(FailureClass::kBackendLost,
                              b ? "its backend no longer had it after a farm restart"
                                : "its backend is no longer configured");
  const JobState from = job->state;
  store::AttemptRecord rec{job->id, std::max(1, job->attempts), job->backend, job->attempt_started_at,
                           now, "backend_lost", *f.last_error};
  auto w = [&] {
    if (job->attempts > 0) (void)s->store->record_attempt(rec);
    return s->store->transition(job->id, from, JobState::kQueued, now, f);
  };
  auto r = co_await net::run_blocking(s->pool, w);
  if (!r) spdlog::error("farm: requeueing {}: {}", job->id, r.error().message);
  spdlog::info("farm: job {} requeued after restart ({})", job->id,
               b ? "not found on " + b->id : "backend " + job->backend + " unknown");
  if (auto e = s->enqueue(job, now); !e) spdlog::error("farm: job {}: {}", job->id, e.error().message);
}

}  // namespace

asio::awaitable<void> recover(std::shared_ptr<Farm::State> s) {
  auto load = [&s] { return s->store->unfinished_jobs(); };
  auto unfinished = co_await net::run_blocking(s->pool, load);
  if (!unfinished) {
    spdlog::error("farm: cannot read unfinished jobs: {}", unfinished.error().message);
    co_return;
  }
  std::size_t queued = 0;
  std::size_t attached = 0;
  for (const auto& rec : *unfinished) {
    auto job = job_from_record(rec);
    if (rec.state == JobState::kQueued) {
      if (auto r = s->enqueue(job, now_ms()); !r) {
        spdlog::error("farm: job {}: {}", rec.id, r.error().message);
      }
      ++queued;
    } else {
      ++attached;
      asio::co_spawn(s->strand, reattach(s, job),
                     [id = rec.id](std::exception_ptr e) { log_exception("re-attaching " + id, e); });
    }
  }
  if (!unfinished->empty()) {
    spdlog::info("farm: recovered {} queued job(s); re-attaching {} that were on backends", queued,
                 attached);
  }
  s->pump();
}

// ---- Farm -------------------------------------------------------------------------------------------

Result<std::unique_ptr<Farm>> Farm::create(asio::io_context& context, FarmOptions options) {
  if (options.depth == 0) return fail(Errc::kInvalidArgument, "depth must be at least 1");
  if (options.max_attempts < 1) return fail(Errc::kInvalidArgument, "max attempts must be at least 1");
  if (options.retry_backoff_ms.empty()) options.retry_backoff_ms = {0};
  auto st = std::make_shared<State>(context, std::move(options));
  if (auto r = st->open(); !r) return r.error();
  // Before anything is served: the numbers of new prompts continue after the highest one
  // stored, and GET /history lists what ended before this start (ComfyUI's web UI reads it).
  auto top = st->store->max_number();
  if (!top) return top.error();
  st->next_number = *top + 1;
  auto recent = st->store->recent_results(State::kMaxHistory);
  if (!recent) return recent.error();
  for (auto& [id, entry] : *recent) st->remember_history(id, std::move(entry));
  auto router = std::make_shared<net::Router>();
  st->add_front_routes(*router);
  st->add_api_routes(*router);
  net::HttpServerOptions ho;
  ho.listen = st->options.listen;
  ho.max_body_bytes = st->options.max_body_bytes;
  auto http = net::HttpServer::create(context, router, ho);
  if (!http) return http.error();
  st->http = std::move(*http);
  std::unique_ptr<Farm> farm(new Farm());
  farm->state_ = std::move(st);
  return farm;
}

Farm::~Farm() {
  // The routes hold the state: dropping the server breaks that cycle.
  if (state_) state_->http.reset();
}

void Farm::start() { state_->start(); }

void Farm::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
  auto st = state_;
  auto remaining = std::make_shared<std::atomic<int>>(2);
  std::function<void()> done = [remaining, on_stopped = std::move(on_stopped)] {
    if (remaining->fetch_sub(1) == 1 && on_stopped) on_stopped();
  };
  // New requests are refused at once; requests in flight get the grace period.
  st->http->stop(grace, done);
  asio::post(st->strand, [st, grace, done] { st->begin_stop(grace, done); });
}

std::string Farm::local_address() const { return state_->http->local_address(); }

json::object Farm::ready_fields() const {
  json::object o;
  o["data_dir"] = state_->options.data_dir.string();
  json::array backends;
  for (const auto& b : state_->options.backends) {
    json::object e;
    e["id"] = b.id.empty() ? backend_id_from_url(b.url) : b.id;
    e["url"] = b.url;
    backends.push_back(std::move(e));
  }
  o["backends"] = std::move(backends);
  return o;
}

}  // namespace comfyfarm::farm
