// The farm API (docs/api.md): jobs, batches ("books" of "pages"), backends, and the schedule
// (state, Gantt board, and enqueue/claim/complete/fail/requeue for external workers).
#include "comfy/json_util.hpp"
#include "farm/farm_state.hpp"
#include "net/error_response.hpp"
#include "net/run_blocking.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <charconv>

namespace comfyfarm::farm {

namespace asio = boost::asio;
using asio::use_awaitable;
using store::JobState;

namespace {

using Self = std::shared_ptr<Farm::State>;
using Fn = asio::awaitable<net::Response> (*)(Self, net::Request*);

net::Handler handler(const Self& self, Fn fn) {
  return [self, fn](net::Request& req) { return fn(self, &req); };
}

net::Response reply(const json::value& v, int status = 200) { return net::Response::json(v, status); }

net::Response error(int status, Errc code, std::string_view message, json::value details = {}) {
  json::object err;
  err["code"] = to_string(code);
  err["message"] = message;
  if (!details.is_null()) err["details"] = std::move(details);
  json::object out;
  out["error"] = std::move(err);
  return reply(out, status);
}

net::Response from_refusal(const Farm::State::Refusal& r) {
  const Errc code = r.status == 429 ? Errc::kResourceExhausted
                    : r.status == 503 ? Errc::kUnavailable
                                      : Errc::kInvalidArgument;
  std::string message = "the workflow was refused";
  if (r.body.is_object()) {
    if (const auto* e = r.body.get_object().if_contains("error"); e != nullptr && e->is_object()) {
      if (const auto* m = e->get_object().if_contains("message"); m != nullptr && m->is_string()) {
        message = m->get_string();
      }
    }
  }
  return error(r.status, code, message, r.body);
}

/// The JSON body as an object, or an error response.
std::variant<json::object, net::Response> body_object(const net::Request& req) {
  if (req.body.empty()) return json::object();
  auto parsed = comfy::parse_json(req.body);
  if (!parsed) {
    return error(400, Errc::kInvalidArgument, "the body is not valid JSON: " + parsed.error().message);
  }
  if (!parsed->is_object()) return error(400, Errc::kInvalidArgument, "the body must be a JSON object");
  return std::move(parsed->get_object());
}

std::string badge_of(const store::JobRecord& j) {
  switch (j.state) {
    case JobState::kQueued: return "Pending";
    case JobState::kDispatched:
    case JobState::kRunning: return "Rendering";
    case JobState::kSucceeded: return "Done";
    case JobState::kFailed:
    case JobState::kCancelled: return "Needs attention";
  }
  return "Pending";
}

json::value job_summary(const store::JobRecord& j) {
  json::object o;
  o["id"] = j.id;
  o["state"] = store::to_string(j.state);
  o["badge"] = badge_of(j);
  o["priority"] = j.priority;
  o["batch"] = j.batch_id;
  o["client_id"] = j.client_id;
  o["number"] = j.number;
  o["attempts"] = j.attempts;
  o["retry_count"] = j.retry_count;
  o["max_attempts"] = j.max_attempts;
  o["backend"] = j.backend_id;
  o["created_at"] = j.created_at;
  o["updated_at"] = j.updated_at;
  if (j.last_attempted_at) o["last_attempted_at"] = *j.last_attempted_at;
  o["last_error"] = j.last_error;
  o["needs_regeneration"] = j.needs_regeneration;
  o["metadata"] = j.metadata;
  o["workflow_hash"] = j.workflow_hash;
  return o;
}

/// Reads a submission from a farm API body: {"workflow"|"prompt": {...}, "priority", "batch",
/// "metadata", "max_attempts", "client_id", "prompt_id"}.
std::variant<Farm::State::Submission, net::Response> submission_of(json::object& body,
                                                                  const std::string& batch) {
  Farm::State::Submission sub;
  json::value* wf = body.if_contains("workflow");
  if (wf == nullptr) wf = body.if_contains("prompt");
  if (wf == nullptr) return error(400, Errc::kInvalidArgument, "\"workflow\" is missing");
  if (!wf->is_object()) {
    return error(400, Errc::kInvalidArgument,
                 "\"workflow\" must be an API-format workflow object (export with \"Save (API Format)\")");
  }
  sub.prompt = std::move(wf->get_object());
  if (const auto* v = body.if_contains("priority"); v != nullptr && !v->is_null()) {
    if (!v->is_int64()) return error(400, Errc::kInvalidArgument, "\"priority\" must be an integer");
    sub.priority = static_cast<int>(std::clamp<std::int64_t>(v->get_int64(), -1'000'000, 1'000'000));
  }
  if (const auto* v = body.if_contains("max_attempts"); v != nullptr && !v->is_null()) {
    if (!v->is_int64() || v->get_int64() < 1 || v->get_int64() > 100) {
      return error(400, Errc::kInvalidArgument, "\"max_attempts\" must be an integer from 1 to 100");
    }
    sub.max_attempts = static_cast<int>(v->get_int64());
  }
  if (const auto* v = body.if_contains("client_id"); v != nullptr && v->is_string()) {
    sub.client_id = v->get_string();
  }
  if (const auto* v = body.if_contains("prompt_id"); v != nullptr && !v->is_null()) {
    if (!v->is_string() || v->get_string().empty()) {
      return error(400, Errc::kInvalidArgument, "\"prompt_id\" must be a non-empty string");
    }
    sub.prompt_id = v->get_string();
  }
  if (const auto* v = body.if_contains("metadata")) sub.metadata = *v;
  sub.batch = batch;
  if (sub.batch.empty()) {
    if (const auto* v = body.if_contains("batch"); v != nullptr && v->is_string()) sub.batch = v->get_string();
  }
  return sub;
}

std::optional<std::int64_t> int_param(const net::Request& req, std::string_view name) {
  const auto v = req.query_param(name);
  if (!v) return std::nullopt;
  std::int64_t out = 0;
  const auto* end = v->data() + v->size();
  auto [p, ec] = std::from_chars(v->data(), end, out);
  if (ec != std::errc() || p != end) return std::nullopt;
  return out;
}

// ---- jobs -------------------------------------------------------------------------------------

asio::awaitable<net::Response> post_job(Self s, net::Request* req) {
  auto body = body_object(*req);
  if (auto* r = std::get_if<net::Response>(&body)) co_return std::move(*r);
  auto sub = submission_of(std::get<json::object>(body), "");
  if (auto* r = std::get_if<net::Response>(&sub)) co_return std::move(*r);
  auto result = co_await Farm::State::submit(s, std::move(std::get<Farm::State::Submission>(sub)));
  if (auto* r = std::get_if<Farm::State::Refusal>(&result)) co_return from_refusal(*r);
  const auto& a = std::get<Farm::State::Accepted>(result);
  json::object out;
  out["id"] = a.prompt_id;
  out["number"] = a.number;
  out["state"] = "queued";
  out["existed"] = a.existed;
  co_return reply(out, a.existed ? 200 : 201);
}

asio::awaitable<net::Response> list_jobs(Self s, net::Request* req) {
  store::JobFilter f;
  if (const auto st = req->query_param("state")) {
    const auto parsed = store::parse_job_state(*st);
    if (!parsed) {
      co_return error(400, Errc::kInvalidArgument,
                      "unknown state '" + *st + "' (queued, dispatched, running, succeeded, failed, cancelled)");
    }
    f.state = parsed;
  }
  if (const auto b = req->query_param("batch")) f.batch_id = *b;
  if (const auto c = req->query_param("client_id")) f.client_id = *c;
  if (req->query_param("after")) {
    const auto a = int_param(*req, "after");
    if (!a || *a < 0) co_return error(400, Errc::kInvalidArgument, "\"after\" must be a cursor from next_after");
    f.after_seq = *a;
  }
  if (req->query_param("limit")) {
    const auto l = int_param(*req, "limit");
    if (!l || *l < 1 || *l > 1000) co_return error(400, Errc::kInvalidArgument, "\"limit\" must be 1 to 1000");
    f.limit = static_cast<std::size_t>(*l);
  }
  auto load = [&] { return s->store->list_jobs(f); };
  auto page = co_await net::run_blocking(s->pool, load);
  if (!page) co_return net::error_response(page.error());
  json::array jobs;
  for (const auto& j : page->jobs) jobs.push_back(job_summary(j));
  json::object out;
  out["jobs"] = std::move(jobs);
  out["next_after"] = page->next_after_seq ? json::value(*page->next_after_seq) : json::value(nullptr);
  co_return reply(out);
}

asio::awaitable<net::Response> get_job(Self s, net::Request* req) {
  const std::string id(req->param("id").value_or(""));
  struct Detail {
    Result<store::JobRecord> job = fail(Errc::kNotFound, "");
    std::vector<store::AttemptRecord> attempts;
    std::vector<store::OutputRecord> outputs;
    std::vector<store::TransitionRecord> transitions;
    json::value profile;
    json::value result;
  };
  auto load = [&] {
    Detail d;
    d.job = s->store->get_job(id);
    if (!d.job) return d;
    if (auto a = s->store->attempts(id)) d.attempts = std::move(*a);
    if (auto o = s->store->outputs(id)) d.outputs = std::move(*o);
    if (auto t = s->store->transitions(id)) d.transitions = std::move(*t);
    if (auto p = s->store->get_profile(id)) d.profile = std::move(*p);
    if (auto r = s->store->get_result(id)) d.result = std::move(*r);
    return d;
  };
  auto d = co_await net::run_blocking(s->pool, load);
  if (!d.job) {
    if (d.job.error().code == Errc::kNotFound) co_return error(404, Errc::kNotFound, "no job " + id);
    co_return net::error_response(d.job.error());
  }
  auto out = job_summary(*d.job);
  auto& o = out.get_object();
  o["workflow"] = d.job->workflow;
  json::array attempts;
  for (const auto& a : d.attempts) {
    json::object e;
    e["attempt"] = a.attempt;
    e["backend"] = a.backend_id;
    e["started_at"] = a.started_at;
    e["ended_at"] = a.ended_at ? json::value(*a.ended_at) : json::value(nullptr);
    e["outcome"] = a.outcome;
    e["error"] = a.error;
    attempts.push_back(std::move(e));
  }
  o["attempts"] = std::move(attempts);
  json::array outputs;
  for (const auto& x : d.outputs) {
    json::object e;
    e["node_id"] = x.node_id;
    e["filename"] = x.filename;
    e["subfolder"] = Farm::State::farm_subfolder(x.backend_id, x.subfolder);
    e["type"] = x.type;
    e["backend"] = x.backend_id;
    outputs.push_back(std::move(e));
  }
  o["outputs"] = std::move(outputs);
  json::array transitions;
  for (const auto& t : d.transitions) {
    json::object e;
    e["from"] = store::to_string(t.from);
    e["to"] = store::to_string(t.to);
    e["at"] = t.at;
    transitions.push_back(std::move(e));
  }
  o["transitions"] = std::move(transitions);
  o["profile"] = std::move(d.profile);
  o["history"] = std::move(d.result);
  co_return reply(out);
}

asio::awaitable<net::Response> cancel_job_route(Self s, net::Request* req) {
  const std::string id(req->param("id").value_or(""));
  auto fn = [&] { return s->cancel_job(id); };
  auto r = co_await on_strand(*s, fn);
  if (!r) {
    auto load = [&] { return s->store->get_job(id); };
    auto rec = co_await net::run_blocking(s->pool, load);
    if (!rec) co_return error(404, Errc::kNotFound, "no job " + id);
    co_return error(409, Errc::kFailedPrecondition,
                    "job " + id + " already ended (" + std::string(store::to_string(rec->state)) + ")");
  }
  json::object out;
  out["id"] = id;
  out["cancel_requested"] = true;
  co_return reply(out);
}

asio::awaitable<net::Response> retry_job_route(Self s, net::Request* req) {
  const std::string id(req->param("id").value_or(""));
  auto r = co_await s->retry_job(id);
  if (!r) co_return net::error_response(r.error());
  json::object out;
  out["id"] = id;
  out["state"] = "queued";
  co_return reply(out);
}

// ---- batches ----------------------------------------------------------------------------------

asio::awaitable<net::Response> post_batch(Self s, net::Request* req) {
  auto body = body_object(*req);
  if (auto* r = std::get_if<net::Response>(&body)) co_return std::move(*r);
  auto& o = std::get<json::object>(body);
  auto* pages = o.if_contains("pages");
  if (pages == nullptr || !pages->is_array() || pages->get_array().empty()) {
    co_return error(400, Errc::kInvalidArgument, "\"pages\" must be a non-empty list of {\"workflow\": ...}");
  }
  std::string batch;
  if (const auto* b = o.if_contains("batch_id"); b != nullptr && b->is_string()) batch = b->get_string();
  if (batch.empty()) batch = "batch-" + std::to_string(now_ms()) + "-" + std::to_string(reinterpret_cast<std::uintptr_t>(req) % 100000);
  std::vector<Farm::State::Submission> subs;
  auto& arr = pages->get_array();
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_object()) {
      co_return error(400, Errc::kInvalidArgument, "pages[" + std::to_string(i) + "] must be an object");
    }
    auto sub = submission_of(arr[i].get_object(), batch);
    if (auto* r = std::get_if<net::Response>(&sub)) {
      co_return error(400, Errc::kInvalidArgument,
                      "pages[" + std::to_string(i) + "]: " + r->body);
    }
    auto& one = std::get<Farm::State::Submission>(sub);
    if (const auto* p = o.if_contains("priority"); p != nullptr && p->is_int64() &&
                                                   !arr[i].get_object().contains("priority")) {
      one.priority = static_cast<int>(p->get_int64());
    }
    json::object meta = one.metadata.is_object() ? one.metadata.get_object() : json::object();
    meta["page"] = static_cast<std::int64_t>(i);
    one.metadata = std::move(meta);
    // Every page is checked before any is queued: a book is accepted whole or not at all.
    if (auto refusal = s->check(one.prompt)) {
      auto resp = from_refusal(*refusal);
      json::object out;
      out["error"] = comfy::parse_json(resp.body).value().at("error");
      out["error"].get_object()["page"] = static_cast<std::int64_t>(i);
      co_return reply(out, refusal->status);
    }
    subs.push_back(std::move(one));
  }
  json::array ids;
  for (auto& sub : subs) {
    auto result = co_await Farm::State::submit(s, std::move(sub));
    if (auto* r = std::get_if<Farm::State::Refusal>(&result)) {
      auto resp = from_refusal(*r);
      json::object out = comfy::parse_json(resp.body).value().get_object();
      out["accepted"] = ids;
      out["batch_id"] = batch;
      co_return reply(out, r->status);
    }
    ids.push_back(json::value(std::get<Farm::State::Accepted>(result).prompt_id));
  }
  json::object out;
  out["batch_id"] = batch;
  out["jobs"] = std::move(ids);
  co_return reply(out, 201);
}

asio::awaitable<Result<std::vector<store::JobRecord>>> batch_jobs(Self s, std::string batch) {
  auto load = [&]() -> Result<std::vector<store::JobRecord>> {
    std::vector<store::JobRecord> all;
    store::JobFilter f;
    f.batch_id = batch;
    f.limit = 1000;
    for (;;) {
      auto page = s->store->list_jobs(f);
      if (!page) return page.error();
      for (auto& j : page->jobs) all.push_back(std::move(j));
      if (!page->next_after_seq) break;
      f.after_seq = *page->next_after_seq;
    }
    return all;
  };
  co_return co_await net::run_blocking(s->pool, load);
}

asio::awaitable<net::Response> get_batch(Self s, net::Request* req) {
  const std::string batch(req->param("id").value_or(""));
  auto jobs = co_await batch_jobs(s, batch);
  if (!jobs) co_return net::error_response(jobs.error());
  if (jobs->empty()) co_return error(404, Errc::kNotFound, "no batch " + batch);
  std::map<std::string, std::int64_t> counts{{"Pending", 0}, {"Rendering", 0}, {"Needs attention", 0}, {"Done", 0}};
  json::array pages;
  for (const auto& j : *jobs) {
    const auto badge = badge_of(j);
    counts[badge]++;
    json::object p;
    p["id"] = j.id;
    const auto* page = j.metadata.is_object() ? j.metadata.get_object().if_contains("page") : nullptr;
    p["page"] = page != nullptr ? *page : json::value(nullptr);
    p["state"] = store::to_string(j.state);
    p["badge"] = badge;
    p["needs_regeneration"] = j.needs_regeneration;
    p["attempts"] = j.attempts;
    p["last_error"] = j.last_error;
    pages.push_back(std::move(p));
  }
  json::object c;
  c["pending"] = counts["Pending"];
  c["rendering"] = counts["Rendering"];
  c["needs_attention"] = counts["Needs attention"];
  c["done"] = counts["Done"];
  c["total"] = static_cast<std::int64_t>(jobs->size());
  json::object out;
  out["batch_id"] = batch;
  out["counts"] = std::move(c);
  out["pages"] = std::move(pages);
  co_return reply(out);
}

asio::awaitable<net::Response> regenerate_batch(Self s, net::Request* req) {
  const std::string batch(req->param("id").value_or(""));
  auto jobs = co_await batch_jobs(s, batch);
  if (!jobs) co_return net::error_response(jobs.error());
  if (jobs->empty()) co_return error(404, Errc::kNotFound, "no batch " + batch);
  json::array ids;
  for (const auto& j : *jobs) {
    if (j.state != JobState::kFailed && j.state != JobState::kCancelled) continue;
    auto r = co_await s->retry_job(j.id);
    if (r) ids.push_back(json::value(j.id));
  }
  json::object out;
  out["batch_id"] = batch;
  out["regenerated"] = std::move(ids);
  co_return reply(out);
}

asio::awaitable<net::Response> regenerate_page(Self s, net::Request* req) {
  const std::string batch(req->param("id").value_or(""));
  const std::string job(req->param("job").value_or(""));
  auto load = [&] { return s->store->get_job(job); };
  auto rec = co_await net::run_blocking(s->pool, load);
  if (!rec || rec->batch_id != batch) co_return error(404, Errc::kNotFound, "no page " + job + " in batch " + batch);
  auto r = co_await s->retry_job(job);
  if (!r) co_return net::error_response(r.error());
  json::object out;
  out["id"] = job;
  out["state"] = "queued";
  co_return reply(out);
}

// ---- backends ---------------------------------------------------------------------------------

json::value backend_json(const Farm::State& s, const BackendSlot& b) {
  json::object o;
  o["id"] = b.id;
  o["url"] = b.url;
  o["state"] = to_string(b.phase);
  o["drained"] = b.drained;
  o["persisted"] = b.persisted;
  o["depth"] = s.options.depth;
  json::array loaded;
  if (!b.last_affinity.empty()) {
    std::string_view rest = b.last_affinity;
    while (!rest.empty()) {
      const auto bar = rest.find('|');
      loaded.push_back(json::value(rest.substr(0, bar)));
      if (bar == std::string_view::npos) break;
      rest.remove_prefix(bar + 1);
    }
  }
  o["loaded_models"] = std::move(loaded);
  const auto* view = s.sched.backend(b.sched_id);
  o["speed"] = view != nullptr ? view->speed : 1.0;
  json::array current;
  for (const auto& j : b.current_jobs) current.push_back(json::value(j));
  o["current_jobs"] = std::move(current);
  o["jobs_done"] = b.jobs_done;
  o["failures"] = b.failures;
  o["busy_ms"] = b.busy_ms;
  o["last_error"] = b.last_error;
  const auto h = b.link->health();
  o["websocket_connected"] = h.websocket_connected;
  o["queue_remaining"] = h.queue_remaining;
  return o;
}

asio::awaitable<net::Response> list_backends(Self s, net::Request*) {
  auto fn = [&] {
    json::array out;
    for (const auto& [id, b] : s->backends) out.push_back(backend_json(*s, *b));
    return out;
  };
  auto out = co_await on_strand(*s, fn);
  json::object o;
  o["backends"] = std::move(out);
  co_return reply(o);
}

asio::awaitable<net::Response> post_backend(Self s, net::Request* req) {
  auto body = body_object(*req);
  if (auto* r = std::get_if<net::Response>(&body)) co_return std::move(*r);
  const auto& o = std::get<json::object>(body);
  const auto* url = o.if_contains("url");
  if (url == nullptr || !url->is_string() || url->get_string().empty()) {
    co_return error(400, Errc::kInvalidArgument, "\"url\" (http://host:port of a ComfyUI server) is missing");
  }
  std::string id;
  if (const auto* v = o.if_contains("id"); v != nullptr && v->is_string()) id = v->get_string();
  if (id.empty()) id = backend_id_from_url(url->get_string());
  if (id.find('/') != std::string::npos || id.find("..") != std::string::npos) {
    co_return error(400, Errc::kInvalidArgument, "a backend id may not contain '/' or '..'");
  }
  store::BackendRecord rec;
  rec.id = id;
  rec.url = std::string(url->get_string());
  rec.state = "added";
  rec.added_at = now_ms();
  auto add = [&] {
    auto r = s->add_backend(rec.id, rec.url, true, rec.added_at, false);
    return r ? Result<void>() : Result<void>(r.error());
  };
  auto added = co_await on_strand(*s, add);
  if (!added) co_return net::error_response(added.error());
  auto persist = [&] { return s->store->add_backend(rec); };
  if (auto r = co_await net::run_blocking(s->pool, persist); !r) {
    spdlog::warn("farm: backend {} not persisted: {}", id, r.error().message);
  }
  auto fn = [&] { return backend_json(*s, *s->backends.at(id)); };
  auto out = co_await on_strand(*s, fn);
  co_return reply(out, 201);
}

asio::awaitable<net::Response> backend_action(Self s, net::Request* req, std::string action) {
  const std::string id(req->param("id").value_or(""));
  auto fn = [&]() -> Result<json::value> {
    const auto it = s->backends.find(id);
    if (it == s->backends.end()) return fail(Errc::kNotFound, "no backend " + id);
    auto b = it->second;
    if (action == "drain") s->set_drained(b, true);
    if (action == "resume") s->set_drained(b, false);
    if (action == "remove") s->remove_backend(b);
    return backend_json(*s, *b);
  };
  auto r = co_await on_strand(*s, fn);
  if (!r) co_return net::error_response(r.error());
  {
    auto persist = [&]() -> Result<void> {
      auto rec = s->store->get_backend(id);
      if (!rec) return {};  // configured, not persisted
      if (action == "remove") return s->store->remove_backend(id);
      rec->drained = action == "drain";
      return s->store->update_backend(*rec);
    };
    if (auto p = co_await net::run_blocking(s->pool, persist); !p) {
      spdlog::warn("farm: backend {}: {}", id, p.error().message);
    }
  }
  co_return reply(*r);
}

asio::awaitable<net::Response> drain_backend(Self s, net::Request* req) { return backend_action(s, req, "drain"); }
asio::awaitable<net::Response> resume_backend(Self s, net::Request* req) { return backend_action(s, req, "resume"); }
asio::awaitable<net::Response> delete_backend(Self s, net::Request* req) { return backend_action(s, req, "remove"); }

// ---- schedule ---------------------------------------------------------------------------------

asio::awaitable<net::Response> schedule_state(Self s, net::Request*) {
  auto fn = [&] {
    json::array queued;
    json::array running;
    std::vector<const Job*> q;
    for (const auto& [id, j] : s->jobs) {
      if (j->state == JobState::kQueued) {
        q.push_back(j.get());
      } else {
        json::object r;
        r["id"] = id;
        r["backend"] = j->backend;
        r["state"] = store::to_string(j->state);
        r["attempt"] = j->attempts;
        r["started_at"] = j->attempt_started_at;
        running.push_back(std::move(r));
      }
    }
    std::sort(q.begin(), q.end(), [](const Job* a, const Job* b) {
      if (a->priority != b->priority) return a->priority > b->priority;
      return a->number < b->number;
    });
    for (const auto* j : q) {
      json::object e;
      e["id"] = j->id;
      e["priority"] = j->priority;
      e["batch"] = j->batch;
      e["attempts"] = j->attempts;
      queued.push_back(std::move(e));
    }
    json::array backends;
    for (const auto& [id, b] : s->backends) backends.push_back(backend_json(*s, *b));
    json::object counts;
    counts["queued"] = static_cast<std::int64_t>(q.size());
    counts["ready"] = static_cast<std::int64_t>(s->sched.queue().ready_size());
    counts["delayed"] = static_cast<std::int64_t>(s->sched.queue().delayed_size());
    counts["running"] = static_cast<std::int64_t>(running.size());
    json::object totals;
    totals["submitted"] = s->submitted_total;
    totals["succeeded"] = s->succeeded_total;
    totals["failed"] = s->failed_total;
    totals["retried"] = s->retried_total;
    json::object out;
    out["counts"] = std::move(counts);
    out["totals"] = std::move(totals);
    out["queued"] = std::move(queued);
    out["running"] = std::move(running);
    out["backends"] = std::move(backends);
    return out;
  };
  auto out = co_await on_strand(*s, fn);
  co_return reply(out);
}

asio::awaitable<net::Response> schedule_board(Self s, net::Request* req) {
  const auto since = int_param(*req, "since").value_or(0);
  auto fn = [&] {
    json::array segments;
    for (const auto& seg : s->board) {
      if (seg.end != 0 && seg.end < since) continue;
      json::object e;
      e["job"] = seg.job;
      e["backend"] = seg.backend;
      e["start"] = seg.start;
      e["end"] = seg.end == 0 ? json::value(nullptr) : json::value(seg.end);
      e["outcome"] = seg.outcome.empty() ? json::value("running") : json::value(seg.outcome);
      segments.push_back(std::move(e));
    }
    json::array backends;
    for (const auto& [id, b] : s->backends) backends.push_back(json::value(id));
    json::object out;
    out["now"] = now_ms();
    out["backends"] = std::move(backends);
    out["segments"] = std::move(segments);
    return out;
  };
  auto out = co_await on_strand(*s, fn);
  co_return reply(out);
}

/// External workers: claim takes the next ready job out of the farm's queue and marks it
/// dispatched to "worker:<name>"; complete/fail/requeue settle it.
asio::awaitable<net::Response> schedule_claim(Self s, net::Request* req) {
  auto body = body_object(*req);
  if (auto* r = std::get_if<net::Response>(&body)) co_return std::move(*r);
  const auto& o = std::get<json::object>(body);
  std::string worker = "external";
  if (const auto* w = o.if_contains("worker"); w != nullptr && w->is_string() && !w->get_string().empty()) {
    worker = w->get_string();
  }
  auto fn = [&]() -> std::shared_ptr<Job> {
    const auto ready = s->sched.queue().ready(1);
    if (ready.empty()) return nullptr;
    const auto it = s->by_sched_job.find(ready.front());
    if (it == s->by_sched_job.end()) return nullptr;
    auto job = it->second;
    if (!s->sched.cancel(job->sched_id)) return nullptr;
    s->by_sched_job.erase(it);
    job->state = JobState::kDispatched;
    job->backend = "worker:" + worker;
    job->attempts++;
    job->attempt_started_at = now_ms();
    s->board.push_back({job->id, job->backend, job->attempt_started_at, 0, ""});
    return job;
  };
  auto job = co_await on_strand(*s, fn);
  if (!job) co_return reply(json::object{{"job", nullptr}});
  store::TransitionFields f;
  f.backend_id = job->backend;
  f.attempts = job->attempts;
  f.last_attempted_at = job->attempt_started_at;
  store::AttemptRecord rec{job->id, job->attempts, job->backend, job->attempt_started_at, std::nullopt, "", nullptr};
  auto w = [&] {
    if (auto r = s->store->transition(job->id, JobState::kQueued, JobState::kDispatched, job->attempt_started_at, f); !r) return r;
    return s->store->record_attempt(rec);
  };
  if (auto r = co_await net::run_blocking(s->pool, w); !r) co_return net::error_response(r.error());
  json::object j;
  j["id"] = job->id;
  j["workflow"] = *job->prompt;
  j["attempt"] = job->attempts;
  j["priority"] = job->priority;
  j["batch"] = job->batch;
  co_return reply(json::object{{"job", std::move(j)}});
}

asio::awaitable<net::Response> schedule_settle(Self s, net::Request* req, std::string action) {
  auto body = body_object(*req);
  if (auto* r = std::get_if<net::Response>(&body)) co_return std::move(*r);
  const auto& o = std::get<json::object>(body);
  const auto* idv = o.if_contains("id");
  if (idv == nullptr || !idv->is_string()) co_return error(400, Errc::kInvalidArgument, "\"id\" is missing");
  const std::string id(idv->get_string());
  auto fn = [&]() -> Result<std::shared_ptr<Job>> {
    const auto it = s->jobs.find(id);
    if (it == s->jobs.end() || !it->second->backend.starts_with("worker:") ||
        it->second->state == JobState::kQueued) {
      return fail(Errc::kFailedPrecondition, "job " + id + " is not claimed by a worker");
    }
    return it->second;
  };
  auto found = co_await on_strand(*s, fn);
  if (!found) co_return net::error_response(found.error());
  auto job = *found;
  const std::int64_t now = now_ms();
  const JobState from = job->state;
  JobState to = JobState::kSucceeded;
  std::string outcome = "succeeded";
  json::value err;
  if (action == "fail") {
    to = JobState::kFailed;
    outcome = "failed";
    err = o.contains("error") ? o.at("error") : json::value("failed by the worker");
    const auto* retry = o.if_contains("retry");
    if (retry != nullptr && retry->is_bool() && retry->get_bool() && job->attempts < job->max_attempts) {
      to = JobState::kQueued;
    }
  } else if (action == "requeue") {
    to = JobState::kQueued;
    outcome = "requeued";
  }
  store::TransitionFields f;
  if (!err.is_null()) f.last_error = err;
  if (action == "fail" && to == JobState::kFailed) f.needs_regeneration = true;
  store::AttemptRecord rec{id, job->attempts, job->backend, job->attempt_started_at, now, outcome, err};
  auto w = [&] {
    (void)s->store->record_attempt(rec);
    return s->store->transition(id, from, to, now, f);
  };
  if (auto r = co_await net::run_blocking(s->pool, w); !r) co_return net::error_response(r.error());
  auto apply = [&] {
    for (auto it = s->board.rbegin(); it != s->board.rend(); ++it) {
      if (it->job == id && it->end == 0) {
        it->end = now;
        it->outcome = outcome;
        break;
      }
    }
    if (to == JobState::kQueued) {
      job->sched_id = 0;
      (void)s->enqueue(job, now);
    } else {
      s->jobs.erase(id);
      job->state = to;
      if (to == JobState::kSucceeded) ++s->succeeded_total; else ++s->failed_total;
      s->post_status();
    }
    return true;
  };
  co_await on_strand(*s, apply);
  json::object out;
  out["id"] = id;
  out["state"] = store::to_string(to);
  co_return reply(out);
}

asio::awaitable<net::Response> schedule_complete(Self s, net::Request* req) { return schedule_settle(s, req, "complete"); }
asio::awaitable<net::Response> schedule_fail(Self s, net::Request* req) { return schedule_settle(s, req, "fail"); }
asio::awaitable<net::Response> schedule_requeue(Self s, net::Request* req) { return schedule_settle(s, req, "requeue"); }

}  // namespace

asio::awaitable<Result<void>> Farm::State::retry_job(std::string id) {
  auto self = shared_from_this();
  auto load = [&] { return store->get_job(id); };
  auto rec = co_await net::run_blocking(pool, load);
  if (!rec) co_return rec.error();
  if (!store::is_terminal(rec->state)) {
    co_return fail(Errc::kFailedPrecondition, "job " + id + " has not ended (" +
                                                  std::string(store::to_string(rec->state)) + ")");
  }
  const std::int64_t now = now_ms();
  store::TransitionFields f;
  f.needs_regeneration = false;
  f.retry_count = rec->retry_count + 1;
  // A regenerated job gets its full number of attempts again, counted on from the ones it used.
  f.max_attempts = rec->attempts + rec->max_attempts;
  auto w = [&] { return store->transition(id, rec->state, JobState::kQueued, now, f); };
  if (auto r = co_await net::run_blocking(pool, w); !r) co_return r.error();
  auto job = job_from_record(*rec);
  job->state = JobState::kQueued;
  job->retry_count = rec->retry_count + 1;
  job->max_attempts = *f.max_attempts;
  auto fn = [&] {
    history_index.erase(id);
    std::erase_if(history, [&](const auto& e) { return e.first == id; });
    return enqueue(job, now);
  };
  co_return co_await on_strand(*self, fn);
}

void Farm::State::add_api_routes(net::Router& r) {
  const auto get = net::Method::kGet;
  const auto post = net::Method::kPost;
  auto self = shared_from_this();
  r.add(post, "/api/farm/jobs", handler(self, &post_job));
  r.add(get, "/api/farm/jobs", handler(self, &list_jobs));
  r.add(get, "/api/farm/jobs/{id}", handler(self, &get_job));
  r.add(post, "/api/farm/jobs/{id}/cancel", handler(self, &cancel_job_route));
  r.add(post, "/api/farm/jobs/{id}/retry", handler(self, &retry_job_route));
  r.add(post, "/api/farm/batches", handler(self, &post_batch));
  r.add(get, "/api/farm/batches/{id}", handler(self, &get_batch));
  r.add(post, "/api/farm/batches/{id}/regenerate", handler(self, &regenerate_batch));
  r.add(post, "/api/farm/batches/{id}/pages/{job}/regenerate", handler(self, &regenerate_page));
  r.add(get, "/api/farm/backends", handler(self, &list_backends));
  r.add(post, "/api/farm/backends", handler(self, &post_backend));
  r.add(net::Method::kDelete, "/api/farm/backends/{id}", handler(self, &delete_backend));
  r.add(post, "/api/farm/backends/{id}/drain", handler(self, &drain_backend));
  r.add(post, "/api/farm/backends/{id}/resume", handler(self, &resume_backend));
  r.add(get, "/api/schedule/state", handler(self, &schedule_state));
  r.add(get, "/api/schedule/board", handler(self, &schedule_board));
  r.add(post, "/api/schedule/enqueue", handler(self, &post_job));
  r.add(post, "/api/schedule/claim", handler(self, &schedule_claim));
  r.add(post, "/api/schedule/complete", handler(self, &schedule_complete));
  r.add(post, "/api/schedule/fail", handler(self, &schedule_fail));
  r.add(post, "/api/schedule/requeue", handler(self, &schedule_requeue));
}

}  // namespace comfyfarm::farm
