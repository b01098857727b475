// Process tests of `comfyfarm serve`'s APIs beyond the basic run: backends removed, drained,
// resumed and added at run time; batches with a failing page and their regeneration; external
// workers (claim/complete/fail/requeue); uploads and /view's path checks; /interrupt and
// /queue; backend faults (WebSocket drops, HTTP 503s); and the aggregated /system_stats,
// /object_info and /queue. The farm and the sims are real processes on loopback; "exactly once"
// is checked on the sims' own records (their /history, and the PNGs under --output-dir).
#include "support/farm_test_util.hpp"

#include "comfy/json_util.hpp"
#include "net/io_runtime.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace comfyfarm::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// ---- workflows and flags -------------------------------------------------------------------------

std::string prefix_of(int i) { return "apijob-" + std::to_string(i); }

/// txt2img_sd15 with checkpoint i % 4, seed 2000 + i, `steps` sampler steps and an output
/// prefix of its own.
json::object txt2img(int i, int steps = 20) {
  json::object g = txt2img_sd15(i, 2000 + i, prefix_of(i));
  g["3"].as_object()["inputs"].as_object()["steps"] = steps;
  return g;
}

/// model_free_blur (EmptyImage -> ImageBlur -> ImageInvert -> SaveImage) with its own prefix.
json::object blur(const std::string& prefix) {
  static const json::object base = load_json(shared_dir() / "workflows" / "model_free_blur.json").as_object();
  json::object g = base;
  g["4"].as_object()["inputs"].as_object()["filename_prefix"] = prefix;
  return g;
}

/// `serve` flags of these tests: short timers, quick retries and a short grace period.
const ServeFlags kServe{{"--retry-backoff", "0.05"}, {"--probe-interval", "0.2"}, {"--start-timeout", "5"},
                        {"--silence-timeout", "10"}, {"--log-level", "info"},     {"--grace", "2"}};

// ---- HTTP helpers ----------------------------------------------------------------------------------

/// A request whose JSON answer is returned with its status (status -1 when it failed).
std::pair<int, json::value> call(SimHttp& http, net::Method method, const std::string& target,
                                 const std::string& body = {}) {
  auto r = body.empty() && method != net::Method::kPost
               ? http.request(method, target)
               : http.request(method, target, body, net::Headers{{"Content-Type", "application/json"}});
  EXPECT_TRUE(r) << target << ": " << (r ? "" : r.error().message);
  if (!r) return {-1, nullptr};
  auto doc = comfy::parse_json(r->body);
  return {r->status, doc ? *doc : json::value(r->body)};
}

std::pair<int, json::value> post(SimHttp& http, const std::string& target, const json::value& body) {
  return call(http, net::Method::kPost, target, comfy::dumps(body));
}

/// The backends as GET /api/farm/backends lists them, by id.
std::map<std::string, json::value> backends_of(SimHttp& farm) {
  std::map<std::string, json::value> out;
  const auto doc = farm.get_json("/api/farm/backends");
  if (!doc.is_object()) return out;
  for (const auto& b : doc.at("backends").as_array()) out[str(b, "id")] = b;
  return out;
}

/// Polls GET /api/farm/backends until the backends `ids` are all up.
bool wait_up(SimHttp& farm, const std::vector<std::string>& ids, std::chrono::milliseconds deadline = 30s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  std::map<std::string, json::value> last;
  while (std::chrono::steady_clock::now() < end) {
    last = backends_of(farm);
    const bool all = std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return last.contains(id) && str(last[id], "state") == "up";
    });
    if (all) return true;
    std::this_thread::sleep_for(50ms);
  }
  std::string s;
  for (const auto& [id, b] : last) s += "\n  " + comfy::dumps(b);
  ADD_FAILURE() << "backends not up within " << deadline.count() << " ms:" << s;
  return false;
}

/// Polls a job until its state is `state`.
json::value wait_state(SimHttp& farm, const std::string& id, const std::string& state,
                       std::chrono::milliseconds deadline = 30s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  json::value job;
  while (std::chrono::steady_clock::now() < end) {
    job = farm.get_json("/api/farm/jobs/" + id);
    if (str(job, "state") == state) return job;
    if (terminal(str(job, "state"))) break;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << id << " not " << state << ": " << str(job, "state");
  return job;
}

/// Stops the farm with SIGTERM (exit 0 expected) and starts it again on the same data.
void restart_farm(FarmProcess& farm) {
  farm.signal(SIGTERM);
  const auto status = farm.wait_exit(20s);
  ASSERT_TRUE(status) << "no exit after SIGTERM:\n" << farm.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  ASSERT_TRUE(farm.restart()) << farm.log();
}

// ---- 1. a backend removed while it runs a job -------------------------------------------------------

TEST(FarmBackends, RemovedWhileRunningItsJobFinishesElsewhereRenderedOnce) {
  TempDir outs;
  const auto out0 = outs.path() / "b0";
  const auto out1 = outs.path() / "b1";
  // Slow: a 200-step sampler run takes about two seconds.
  SimProcess s0(sim_args("0.3", {"--output-dir", out0.string()}));
  SimProcess s1(sim_args("0.3", {"--output-dir", out1.string()}));
  ASSERT_TRUE(s0.ready() && s1.ready());
  FarmProcess farm(farm_args(kServe, {{"b0", s0.url()}, {"b1", s1.url()}}));
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_up(http, {"b0", "b1"}));

  auto ws = SimWs::connect(io, farm.ws_url("removal"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_until("status"));
  const auto id = submit(http, txt2img(0, 200), "removal");
  ASSERT_FALSE(id.empty());
  // In the sampler on one backend.
  ASSERT_TRUE(ws->read_until("progress", 30s)) << farm.log();
  const auto running = wait_state(http, id, "running");
  const std::string victim = str(running, "backend");
  ASSERT_TRUE(victim == "b0" || victim == "b1") << comfy::dumps(running);
  const std::string other = victim == "b0" ? "b1" : "b0";
  SimProcess& victim_sim = victim == "b0" ? s0 : s1;
  SimProcess& other_sim = victim == "b0" ? s1 : s0;
  const auto victim_out = victim == "b0" ? out0 : out1;
  const auto other_out = victim == "b0" ? out1 : out0;

  const auto [status, removed] = call(http, net::Method::kDelete, "/api/farm/backends/" + victim);
  EXPECT_EQ(status, 200) << comfy::dumps(removed);
  EXPECT_EQ(str(removed, "id"), victim) << comfy::dumps(removed);
  const auto listed = backends_of(http);
  EXPECT_FALSE(listed.contains(victim));
  EXPECT_TRUE(listed.contains(other));
  // Gone: a second DELETE and a drain answer 404.
  EXPECT_EQ(call(http, net::Method::kDelete, "/api/farm/backends/" + victim).first, 404);
  EXPECT_EQ(post(http, "/api/farm/backends/" + victim + "/drain", json::object()).first, 404);

  auto done = wait_jobs_ended(http, {id});
  ASSERT_EQ(done.size(), 1u) << farm.log();
  const auto& job = done[id];
  EXPECT_EQ(str(job, "state"), "succeeded") << describe_attempts(job);
  EXPECT_EQ(str(job, "backend"), other) << describe_attempts(job);
  const auto o = outcomes(job);
  ASSERT_GE(o.size(), 2u) << describe_attempts(job);
  EXPECT_EQ(str(job.at("attempts").at(0), "backend"), victim) << describe_attempts(job);
  EXPECT_NE(o.front(), "succeeded") << describe_attempts(job);
  EXPECT_EQ(o.back(), "succeeded") << describe_attempts(job);
  EXPECT_EQ(std::count(o.begin(), o.end(), "succeeded"), 1) << describe_attempts(job);

  // The removed backend was told to drop the prompt: it ends idle without having rendered it.
  SimHttp vs(io, victim_sim.url());
  ASSERT_TRUE(wait_queue_empty(vs));
  const auto r = rendered(io, {victim_sim.url(), other_sim.url()});
  EXPECT_EQ(r.of(id), 1) << "successful renders of " << id;
  EXPECT_EQ(rendered(io, {victim_sim.url()}).of(id), 0) << "the removed backend finished it anyway";
  EXPECT_EQ(files_with_prefix({victim_out}, prefix_of(0)), 0);
  EXPECT_EQ(files_with_prefix({other_out}, prefix_of(0)), 1);
}

// ---- 2. drain, resume, add at run time, persistence ----------------------------------------------------

TEST(FarmBackends, DrainResumeAndAnAddedBackendPersistsAcrossRestarts) {
  TempDir outs;
  SimProcess sims(sim_args("0.01", {"--count", "3", "--output-dir", outs.path().string()}));
  ASSERT_TRUE(sims.ready());
  TempDir data;
  FarmProcess farm(farm_args(kServe, {{"a", sims.url(0)}, {"b", sims.url(1)}}), data.path() / "farm");
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  auto http = std::make_unique<SimHttp>(io, farm.url());
  ASSERT_TRUE(wait_up(*http, {"a", "b"}));

  // Drained: no new jobs.
  auto [st, drained] = post(*http, "/api/farm/backends/a/drain", json::object());
  EXPECT_EQ(st, 200) << comfy::dumps(drained);
  EXPECT_EQ(drained.at("drained"), json::value(true)) << comfy::dumps(drained);
  auto list = backends_of(*http);
  EXPECT_EQ(list["a"].at("drained"), json::value(true));
  EXPECT_EQ(list["b"].at("drained"), json::value(false));
  EXPECT_EQ(list["a"].at("persisted"), json::value(false));
  std::vector<std::string> first;
  for (int i = 0; i < 8; ++i) first.push_back(submit(*http, txt2img(i)));
  auto jobs = wait_jobs_ended(*http, first);
  ASSERT_EQ(jobs.size(), first.size());
  for (const auto& [id, job] : jobs) {
    EXPECT_EQ(str(job, "state"), "succeeded") << describe_attempts(job);
    EXPECT_EQ(str(job, "backend"), "b") << describe_attempts(job);
  }
  EXPECT_EQ(rendered(io, {sims.url(0)}).entries.size(), 0u) << "the drained backend ran something";

  // Resumed: it takes jobs again (b, which placement would prefer now, is drained meanwhile).
  auto [st2, resumed] = post(*http, "/api/farm/backends/a/resume", json::object());
  EXPECT_EQ(st2, 200);
  EXPECT_EQ(resumed.at("drained"), json::value(false)) << comfy::dumps(resumed);
  EXPECT_EQ(post(*http, "/api/farm/backends/b/drain", json::object()).first, 200);
  list = backends_of(*http);
  EXPECT_EQ(list["a"].at("drained"), json::value(false));
  EXPECT_EQ(list["b"].at("drained"), json::value(true));
  std::vector<std::string> second;
  for (int i = 0; i < 6; ++i) second.push_back(submit(*http, txt2img(100 + i)));
  jobs = wait_jobs_ended(*http, second);
  ASSERT_EQ(jobs.size(), second.size());
  for (const auto& [id, job] : jobs) {
    EXPECT_EQ(str(job, "state"), "succeeded") << describe_attempts(job);
    EXPECT_EQ(str(job, "backend"), "a") << describe_attempts(job);
  }
  EXPECT_EQ(rendered(io, {sims.url(0)}).successes.size(), second.size());
  EXPECT_EQ(post(*http, "/api/farm/backends/b/resume", json::object()).first, 200);
  list = backends_of(*http);
  EXPECT_EQ(list["a"].at("drained"), json::value(false));
  EXPECT_EQ(list["b"].at("drained"), json::value(false));

  // Added at run time: used, and persisted.
  json::object add;
  add["url"] = sims.url(2);
  add["id"] = "added";
  auto [st3, added] = post(*http, "/api/farm/backends", add);
  ASSERT_EQ(st3, 201) << comfy::dumps(added);
  EXPECT_EQ(str(added, "id"), "added");
  EXPECT_EQ(str(added, "url"), sims.url(2));
  EXPECT_EQ(added.at("persisted"), json::value(true));
  EXPECT_EQ(post(*http, "/api/farm/backends", add).first, 409) << "the same id twice";
  EXPECT_EQ(post(*http, "/api/farm/backends", json::object{{"url", "gpu1:8188"}}).first, 400);
  EXPECT_EQ(post(*http, "/api/farm/backends", json::object{{"id", "x"}}).first, 400);
  EXPECT_EQ(post(*http, "/api/farm/backends", json::object{{"url", sims.url(2)}, {"id", "../x"}}).first, 400);
  ASSERT_TRUE(wait_up(*http, {"added"}));
  EXPECT_EQ(post(*http, "/api/farm/backends/a/drain", json::object()).first, 200);
  EXPECT_EQ(post(*http, "/api/farm/backends/b/drain", json::object()).first, 200);
  std::vector<std::string> third;
  for (int i = 0; i < 4; ++i) third.push_back(submit(*http, txt2img(200 + i)));
  for (const auto& [id, job] : wait_jobs_ended(*http, third)) {
    EXPECT_EQ(str(job, "state"), "succeeded") << describe_attempts(job);
    EXPECT_EQ(str(job, "backend"), "added") << describe_attempts(job);
  }
  EXPECT_EQ(rendered(io, {sims.url(2)}).successes.size(), third.size());
  // Its drained flag is persisted too.
  EXPECT_EQ(post(*http, "/api/farm/backends/added/drain", json::object()).first, 200);

  http.reset();
  restart_farm(farm);
  http = std::make_unique<SimHttp>(io, farm.url());
  ASSERT_TRUE(wait_up(*http, {"a", "b", "added"}));
  list = backends_of(*http);
  ASSERT_TRUE(list.contains("added")) << "the added backend was forgotten";
  EXPECT_EQ(str(list["added"], "url"), sims.url(2));
  EXPECT_EQ(list["added"].at("persisted"), json::value(true));
  EXPECT_EQ(list["added"].at("drained"), json::value(true));
  EXPECT_EQ(list["a"].at("persisted"), json::value(false));
  // Used after the restart once resumed.
  EXPECT_EQ(post(*http, "/api/farm/backends/added/resume", json::object()).first, 200);
  EXPECT_EQ(post(*http, "/api/farm/backends/a/drain", json::object()).first, 200);
  EXPECT_EQ(post(*http, "/api/farm/backends/b/drain", json::object()).first, 200);
  const auto after = submit(*http, txt2img(300));
  auto done = wait_jobs_ended(*http, {after});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(str(done[after], "backend"), "added") << describe_attempts(done[after]);

  // Deleted: forgotten for good.
  auto [st4, gone] = call(*http, net::Method::kDelete, "/api/farm/backends/added");
  EXPECT_EQ(st4, 200) << comfy::dumps(gone);
  EXPECT_FALSE(backends_of(*http).contains("added"));
  http.reset();
  restart_farm(farm);
  http = std::make_unique<SimHttp>(io, farm.url());
  ASSERT_TRUE(wait_up(*http, {"a", "b"}));
  list = backends_of(*http);
  EXPECT_FALSE(list.contains("added")) << "a deleted backend came back after a restart";
  EXPECT_EQ(list.size(), 2u);
}

// ---- 3. batches --------------------------------------------------------------------------------------

TEST(FarmBatches, FailingPageIsCountedAndRegeneratedAfterTheFaultIsRemoved) {
  TempDir outs;
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(
      rig.start(kServe, sim_args("0.01", {"--fault", "node-error=ImageBlur", "--output-dir", outs.path().string()})));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));

  // Five pages; page 2 uses ImageBlur, which fails on this backend.
  json::array pages;
  for (int i = 0; i < 5; ++i) {
    json::object page;
    page["workflow"] = i == 2 ? blur("apiblur") : txt2img(i);
    if (i == 0) page["metadata"] = json::object{{"chapter", 1}};
    pages.push_back(std::move(page));
  }
  json::object body;
  body["batch_id"] = "book-1";
  body["priority"] = 3;
  body["pages"] = std::move(pages);
  auto [st, created] = post(http, "/api/farm/batches", body);
  ASSERT_EQ(st, 201) << comfy::dumps(created);
  EXPECT_EQ(str(created, "batch_id"), "book-1");
  ASSERT_EQ(created.at("jobs").as_array().size(), 5u);
  std::vector<std::string> ids;
  for (const auto& j : created.at("jobs").as_array()) ids.emplace_back(j.as_string());
  const std::string failing = ids[2];

  auto jobs = wait_jobs_ended(http, ids);
  ASSERT_EQ(jobs.size(), 5u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto& job = jobs[ids[i]];
    EXPECT_EQ(str(job, "batch"), "book-1");
    EXPECT_EQ(num(job, "priority"), 3);
    EXPECT_EQ(num(job.at("metadata"), "page"), static_cast<std::int64_t>(i)) << comfy::dumps(job.at("metadata"));
    EXPECT_EQ(str(job, "state"), i == 2 ? "failed" : "succeeded") << describe_attempts(job);
  }
  EXPECT_EQ(num(jobs[ids[0]].at("metadata"), "chapter"), 1);
  EXPECT_TRUE(jobs[failing].at("needs_regeneration").as_bool());
  EXPECT_EQ(outcomes(jobs[failing]), std::vector<std::string>{"workflow_invalid"});

  auto batch = http.get_json("/api/farm/batches/book-1");
  ASSERT_TRUE(batch.is_object());
  const auto& counts = batch.at("counts");
  EXPECT_EQ(num(counts, "done"), 4) << comfy::dumps(counts);
  EXPECT_EQ(num(counts, "needs_attention"), 1) << comfy::dumps(counts);
  EXPECT_EQ(num(counts, "pending"), 0) << comfy::dumps(counts);
  EXPECT_EQ(num(counts, "rendering"), 0) << comfy::dumps(counts);
  EXPECT_EQ(num(counts, "total"), 5) << comfy::dumps(counts);
  ASSERT_EQ(batch.at("pages").as_array().size(), 5u);
  for (const auto& p : batch.at("pages").as_array()) {
    const auto page = num(p, "page");
    ASSERT_GE(page, 0);
    ASSERT_LT(page, 5);
    EXPECT_EQ(str(p, "id"), ids[static_cast<std::size_t>(page)]);
    if (page == 2) {
      EXPECT_EQ(str(p, "badge"), "Needs attention");
      EXPECT_EQ(str(p, "state"), "failed");
      EXPECT_TRUE(p.at("needs_regeneration").as_bool());
      EXPECT_EQ(str(p.at("last_error"), "class"), "workflow_invalid") << comfy::dumps(p);
      EXPECT_EQ(str(p.at("last_error").at("detail"), "node_type"), "ImageBlur") << comfy::dumps(p);
    } else {
      EXPECT_EQ(str(p, "badge"), "Done") << comfy::dumps(p);
      EXPECT_EQ(str(p, "state"), "succeeded");
    }
  }
  EXPECT_EQ(files_with_prefix({outs.path()}, "apiblur"), 0);

  // The fault goes away; the book's failed pages are run again.
  SimHttp s(io, sim.url());
  auto cleared = s.request(net::Method::kDelete, "/sim/faults");
  ASSERT_TRUE(cleared && cleared->status == 200);
  auto [st2, regen] = post(http, "/api/farm/batches/book-1/regenerate", json::object());
  ASSERT_EQ(st2, 200) << comfy::dumps(regen);
  EXPECT_EQ(regen.at("regenerated"), (json::array{json::value(failing)})) << comfy::dumps(regen);
  jobs = wait_jobs_ended(http, {failing});
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(str(jobs[failing], "state"), "succeeded") << describe_attempts(jobs[failing]);
  EXPECT_FALSE(jobs[failing].at("needs_regeneration").as_bool());
  EXPECT_EQ(num(jobs[failing], "retry_count"), 1);
  // Its one used attempt plus a full allowance again, recorded in the database.
  EXPECT_EQ(num(jobs[failing], "max_attempts"), 1 + 3);
  EXPECT_EQ(outcomes(jobs[failing]), (std::vector<std::string>{"workflow_invalid", "succeeded"}));
  EXPECT_EQ(files_with_prefix({outs.path()}, "apiblur"), 1);
  batch = http.get_json("/api/farm/batches/book-1");
  EXPECT_EQ(num(batch.at("counts"), "done"), 5) << comfy::dumps(batch.at("counts"));
  EXPECT_EQ(num(batch.at("counts"), "needs_attention"), 0) << comfy::dumps(batch.at("counts"));
  // Nothing left to regenerate.
  auto [st3, none] = post(http, "/api/farm/batches/book-1/regenerate", json::object());
  EXPECT_EQ(st3, 200);
  EXPECT_TRUE(none.at("regenerated").as_array().empty()) << comfy::dumps(none);

  // One page (a Done one) on its own.
  auto [st4, page] = post(http, "/api/farm/batches/book-1/pages/" + ids[0] + "/regenerate", json::object());
  ASSERT_EQ(st4, 200) << comfy::dumps(page);
  EXPECT_EQ(str(page, "id"), ids[0]);
  EXPECT_EQ(str(page, "state"), "queued");
  jobs = wait_jobs_ended(http, {ids[0]});
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(str(jobs[ids[0]], "state"), "succeeded") << describe_attempts(jobs[ids[0]]);
  EXPECT_EQ(num(jobs[ids[0]], "retry_count"), 1);
  EXPECT_EQ(outcomes(jobs[ids[0]]), (std::vector<std::string>{"succeeded", "succeeded"}));
  batch = http.get_json("/api/farm/batches/book-1");
  EXPECT_EQ(num(batch.at("counts"), "done"), 5) << comfy::dumps(batch.at("counts"));

  // Unknown pages and batches.
  EXPECT_EQ(post(http, "/api/farm/batches/book-1/pages/00000000-0000-4000-8000-000000000000/regenerate",
                 json::object()).first, 404);
  EXPECT_EQ(post(http, "/api/farm/batches/other/pages/" + ids[0] + "/regenerate", json::object()).first, 404);
  EXPECT_EQ(call(http, net::Method::kGet, "/api/farm/batches/nope").first, 404);
  EXPECT_EQ(post(http, "/api/farm/batches/nope/regenerate", json::object()).first, 404);
}

TEST(FarmBatches, BatchWithOneInvalidPageIsRefusedWhole) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));

  json::object ui;
  ui["last_node_id"] = 9;
  ui["nodes"] = json::array{json::object{{"id", 3}, {"type", "KSampler"}, {"widgets_values", json::array{1, 20}}}};
  ui["links"] = json::array();
  ui["version"] = 0.4;
  auto unknown = txt2img(4);
  unknown["9"].as_object()["class_type"] = "NoSuchNode";

  struct Case {
    std::string batch;
    std::size_t bad_page;
    json::object bad;
  };
  for (const auto& c : {Case{"bad-ui", 1, ui}, Case{"bad-class", 2, unknown}}) {
    SCOPED_TRACE(c.batch);
    json::array pages;
    for (std::size_t i = 0; i < 3; ++i) {
      pages.push_back(json::object{{"workflow", i == c.bad_page ? c.bad : txt2img(static_cast<int>(i))}});
    }
    auto [st, refused] = post(http, "/api/farm/batches", json::object{{"batch_id", c.batch}, {"pages", pages}});
    EXPECT_EQ(st, 400) << comfy::dumps(refused);
    ASSERT_TRUE(refused.is_object()) << comfy::dumps(refused);
    EXPECT_EQ(str(refused.at("error"), "code"), "invalid_argument") << comfy::dumps(refused);
    EXPECT_EQ(num(refused.at("error"), "page"), static_cast<std::int64_t>(c.bad_page)) << comfy::dumps(refused);
    const auto listed = http.get_json("/api/farm/jobs?batch=" + c.batch);
    EXPECT_TRUE(listed.at("jobs").as_array().empty()) << comfy::dumps(listed);
    EXPECT_EQ(call(http, net::Method::kGet, "/api/farm/batches/" + c.batch).first, 404);
  }
  // Not a page list at all.
  EXPECT_EQ(post(http, "/api/farm/batches", json::object{{"pages", json::array()}}).first, 400);
  EXPECT_EQ(post(http, "/api/farm/batches", json::object{{"pages", json::array{1}}}).first, 400);
  // Nothing was queued or run anywhere.
  EXPECT_TRUE(http.get_json("/api/farm/jobs").at("jobs").as_array().empty());
  std::this_thread::sleep_for(200ms);
  SimHttp s(io, sim.url());
  EXPECT_EQ(s.get_json("/history"), json::value(json::object()));
}

// ---- 4. external workers ---------------------------------------------------------------------------

TEST(FarmWorkers, ClaimCompleteFailAndRequeueWhileEveryBackendIsDrained) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  ASSERT_EQ(post(http, "/api/farm/backends/gpu/drain", json::object()).first, 200);

  // An empty queue.
  auto [st0, empty] = post(http, "/api/schedule/claim", json::object{{"worker", "w1"}});
  EXPECT_EQ(st0, 200);
  EXPECT_EQ(empty, (json::value(json::object{{"job", nullptr}}))) << comfy::dumps(empty);

  // Claimed, then completed.
  auto [st1, a] = post(http, "/api/farm/jobs",
                       json::object{{"workflow", txt2img(0)}, {"priority", 2}, {"batch", "ext"}});
  ASSERT_EQ(st1, 201) << comfy::dumps(a);
  const std::string ida = str(a, "id");
  std::this_thread::sleep_for(200ms);  // no backend takes it
  EXPECT_EQ(str(http.get_json("/api/farm/jobs/" + ida), "state"), "queued");
  auto [st2, claimed] = post(http, "/api/schedule/claim", json::object{{"worker", "w1"}});
  ASSERT_EQ(st2, 200);
  ASSERT_TRUE(claimed.at("job").is_object()) << comfy::dumps(claimed);
  const auto& cj = claimed.at("job");
  EXPECT_EQ(str(cj, "id"), ida);
  EXPECT_EQ(num(cj, "attempt"), 1);
  EXPECT_EQ(num(cj, "priority"), 2);
  EXPECT_EQ(str(cj, "batch"), "ext");
  ASSERT_TRUE(cj.at("workflow").is_object()) << comfy::dumps(cj);
  EXPECT_EQ(str(cj.at("workflow").at("3"), "class_type"), "KSampler");
  EXPECT_EQ(num(cj.at("workflow").at("3").at("inputs"), "seed"), 2000);
  EXPECT_EQ(str(cj.at("workflow").at("9").at("inputs"), "filename_prefix"), prefix_of(0));
  auto job = http.get_json("/api/farm/jobs/" + ida);
  EXPECT_EQ(str(job, "state"), "dispatched");
  EXPECT_EQ(str(job, "backend"), "worker:w1");
  EXPECT_EQ(post(http, "/api/schedule/claim", json::object{{"worker", "w2"}}).second,
            (json::value(json::object{{"job", nullptr}})))
      << "a claimed job was handed out twice";
  auto [st3, completed] = post(http, "/api/schedule/complete", json::object{{"id", ida}});
  EXPECT_EQ(st3, 200) << comfy::dumps(completed);
  EXPECT_EQ(str(completed, "state"), "succeeded");
  job = http.get_json("/api/farm/jobs/" + ida);
  EXPECT_EQ(str(job, "state"), "succeeded");
  EXPECT_EQ(str(job, "badge"), "Done");
  EXPECT_EQ(outcomes(job), std::vector<std::string>{"succeeded"});
  EXPECT_EQ(str(job.at("attempts").at(0), "backend"), "worker:w1");
  EXPECT_EQ(post(http, "/api/schedule/complete", json::object{{"id", ida}}).first, 409) << "settled twice";

  // Failed with retry (queued again), requeued, then failed for good on its last attempt.
  auto [st4, b] = post(http, "/api/farm/jobs", json::object{{"workflow", txt2img(1)}, {"max_attempts", 3}});
  ASSERT_EQ(st4, 201);
  const std::string idb = str(b, "id");
  EXPECT_EQ(post(http, "/api/schedule/complete", json::object{{"id", idb}}).first, 409) << "not claimed yet";
  auto claim_b = [&](int attempt) {
    auto [s, c] = post(http, "/api/schedule/claim", json::object{{"worker", "w2"}});
    EXPECT_EQ(s, 200);
    EXPECT_EQ(str(c.at("job"), "id"), idb) << comfy::dumps(c);
    EXPECT_EQ(num(c.at("job"), "attempt"), attempt) << comfy::dumps(c);
  };
  claim_b(1);
  auto [st5, f1] = post(http, "/api/schedule/fail", json::object{{"id", idb}, {"error", "gpu on fire"}, {"retry", true}});
  EXPECT_EQ(st5, 200) << comfy::dumps(f1);
  EXPECT_EQ(str(f1, "state"), "queued");
  job = http.get_json("/api/farm/jobs/" + idb);
  EXPECT_EQ(str(job, "state"), "queued");
  EXPECT_EQ(job.at("last_error"), json::value("gpu on fire")) << comfy::dumps(job.at("last_error"));
  claim_b(2);
  auto [st6, rq] = post(http, "/api/schedule/requeue", json::object{{"id", idb}});
  EXPECT_EQ(st6, 200) << comfy::dumps(rq);
  EXPECT_EQ(str(rq, "state"), "queued");
  EXPECT_EQ(str(http.get_json("/api/farm/jobs/" + idb), "state"), "queued");
  claim_b(3);
  auto [st7, f2] = post(http, "/api/schedule/fail", json::object{{"id", idb}, {"retry", true}});
  EXPECT_EQ(st7, 200);
  EXPECT_EQ(str(f2, "state"), "failed") << "no attempt left";
  job = http.get_json("/api/farm/jobs/" + idb);
  EXPECT_EQ(str(job, "state"), "failed");
  EXPECT_TRUE(job.at("needs_regeneration").as_bool());
  EXPECT_EQ(outcomes(job), (std::vector<std::string>{"failed", "requeued", "failed"}));
  EXPECT_EQ(str(job.at("attempts").at(0), "backend"), "worker:w2");

  // Nothing left; bad bodies.
  EXPECT_EQ(post(http, "/api/schedule/claim", json::object()).second, (json::value(json::object{{"job", nullptr}})));
  EXPECT_EQ(post(http, "/api/schedule/complete", json::object()).first, 400);
  EXPECT_EQ(post(http, "/api/schedule/fail", json::object{{"id", "nope"}}).first, 409);
  EXPECT_EQ(post(http, "/api/schedule/requeue", json::object{{"id", idb}}).first, 409);
  // The drained backend never saw any of it.
  SimHttp s(io, sim.url());
  EXPECT_EQ(s.get_json("/history"), json::value(json::object()));
}

// ---- 5. uploads and /view -------------------------------------------------------------------------

/// A valid 1x1 PNG followed by `tag` (bytes after IEND: each tag makes a different file).
std::string png_bytes(const std::string& tag) {
  static const unsigned char png[] = {
      0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
      0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
      0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
      0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
      0x42, 0x60, 0x82};
  return std::string(reinterpret_cast<const char*>(png), sizeof png) + tag;
}

/// POST /upload/image as a browser sends it.
std::pair<int, std::string> upload(SimHttp& http, const std::string& filename, const std::string& bytes,
                                   const std::vector<std::pair<std::string, std::string>>& fields = {}) {
  const std::string boundary = "----comfyfarmTestBoundary9f2c";
  std::string body;
  for (const auto& [name, value] : fields) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n";
  }
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" + filename +
          "\"\r\nContent-Type: image/png\r\n\r\n" + bytes + "\r\n--" + boundary + "--\r\n";
  auto r = http.request(net::Method::kPost, "/upload/image", body,
                        net::Headers{{"Content-Type", "multipart/form-data; boundary=" + boundary}});
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  if (!r) return {-1, {}};
  return {r->status, r->body};
}

TEST(FarmFront, UploadedInputReachesTheBackendAndViewRefusesPathEscapes) {
  TempDir outs;
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--output-dir", outs.path().string()})));
  auto [sim, farm, io, http] = rig.parts();
  SimHttp s(io, sim.url());
  ASSERT_TRUE(wait_up(http, {"gpu"}));

  const std::string name = "farm-upload.png";
  json::object graph;
  graph["1"] = json::object{{"class_type", "LoadImage"}, {"inputs", json::object{{"image", name}}}};
  graph["2"] = json::object{{"class_type", "ImageInvert"}, {"inputs", json::object{{"image", json::array{"1", 0}}}}};
  graph["3"] = json::object{{"class_type", "SaveImage"},
                            {"inputs", json::object{{"filename_prefix", "apiupload"}, {"images", json::array{"2", 0}}}}};

  // Before the upload no backend has the file: refused.
  auto early = http.post("/prompt", prompt_body(graph, ""));
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 400) << early->body;

  const std::string bytes = png_bytes("farm-upload-1");
  auto [st, reply] = upload(http, name, bytes);
  ASSERT_EQ(st, 200) << reply;
  EXPECT_EQ(parse(reply), (json::value(json::object{{"name", name}, {"subfolder", ""}, {"type", "input"}})));
  auto on_sim = s.get("/view?type=input&filename=" + name);
  ASSERT_TRUE(on_sim);
  EXPECT_EQ(on_sim->status, 404) << "the backend had the file before any job needed it";

  const auto id = submit(http, graph);
  ASSERT_FALSE(id.empty());
  auto done = wait_jobs_ended(http, {id}, 30s);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(str(done[id], "state"), "succeeded") << comfy::dumps(done[id].at("last_error"));
  EXPECT_EQ(outcomes(done[id]), std::vector<std::string>{"succeeded"});
  EXPECT_EQ(files_with_prefix({outs.path()}, "apiupload"), 1);
  // The farm sent the same bytes to the backend.
  on_sim = s.get("/view?type=input&filename=" + name);
  ASSERT_TRUE(on_sim);
  EXPECT_EQ(on_sim->status, 200);
  EXPECT_EQ(on_sim->body, bytes);
  // And serves them itself (also under /api).
  for (const std::string prefix : {"", "/api"}) {
    auto v = http.get(prefix + "/view?type=input&filename=" + name);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, 200) << prefix;
    EXPECT_EQ(v->body, bytes) << prefix;
  }
  // Another file of the same name gets "name (1).png"; the same bytes reuse the name.
  auto [st2, again] = upload(http, name, bytes);
  EXPECT_EQ(st2, 200);
  EXPECT_EQ(str(parse(again), "name"), name);
  auto [st3, other] = upload(http, name, png_bytes("farm-upload-2"));
  EXPECT_EQ(st3, 200);
  EXPECT_EQ(str(parse(other), "name"), "farm-upload (1).png") << other;
  // Unsafe uploads.
  EXPECT_EQ(upload(http, "x.png", bytes, {{"subfolder", "../escape"}}).first, 400);
  EXPECT_EQ(upload(http, "x.png", bytes, {{"subfolder", "/tmp"}}).first, 400);
  EXPECT_EQ(upload(http, "x.png", bytes, {{"type", "output"}}).first, 400);
  EXPECT_FALSE(fs::exists(farm.data_dir() / "escape"));

  // Path escapes on /view: never a file's contents.
  const std::string secret = "TOP-SECRET-comfyfarm-test";
  {
    std::ofstream out(farm.data_dir() / "secret.txt");
    out << secret;
  }
  {
    std::ofstream out(farm.data_dir().parent_path() / "secret.txt");
    out << secret;
  }
  const std::vector<std::string> escapes{
      "/view?type=input&filename=../secret.txt",
      "/view?type=input&filename=..%2Fsecret.txt",
      "/view?type=input&filename=..",
      "/view?type=input&filename=secret.txt&subfolder=..",
      "/view?type=input&filename=secret.txt&subfolder=../..",
      "/view?type=input&filename=secret.txt&subfolder=%2E%2E",
      "/view?type=input&filename=comfyfarm.db&subfolder=..",
      "/view?type=input&filename=%2Fetc%2Fpasswd",
      "/view?type=input&filename=/etc/passwd",
      "/view?type=input&filename=passwd&subfolder=/etc",
      "/view?type=input&filename=passwd&subfolder=%2Fetc",
      "/view?type=input&filename=..%5Csecret.txt",
      "/view?type=input&filename=" + name + "&subfolder=x/..",
      "/view?type=output&filename=secret.txt&subfolder=../..",
      "/view?type=output&filename=comfyfarm.db&subfolder=../..",
      "/view?type=output&filename=secret.txt&subfolder=gpu/../../..",
      "/view?type=output&filename=passwd&subfolder=gpu/../../../../../../../etc",
      "/view?type=temp&filename=secret.txt&subfolder=..%2F..",
      "/view?type=output&filename=..&subfolder=gpu",
      "/view?type=../input&filename=" + name,
      "/view?type=input&filename=secret.txt&subfolder=...%2F..",
      "/api/view?type=input&filename=../secret.txt",
      "/api/view?type=input&filename=secret.txt&subfolder=../..",
  };
  for (const auto& target : escapes) {
    auto r = http.get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_TRUE(r->status == 400 || r->status == 403 || r->status == 404) << target << ": " << r->status;
    EXPECT_EQ(r->body.find(secret), std::string::npos) << target;
    EXPECT_EQ(r->body.find("SQLite format"), std::string::npos) << target;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << target;
  }
}

// ---- 6. /interrupt and /queue ------------------------------------------------------------------------

TEST(FarmFront, InterruptCancelsTheRunningJobAndQueueDeleteAndClearCancelQueuedOnes) {
  TempDir outs;
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.3", {"--output-dir", outs.path().string()}), "gpu",
                                    {"--depth", "1"}));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));

  auto ws = SimWs::connect(io, farm.ws_url("intr"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_until("status"));
  const auto a = submit(http, txt2img(0, 400), "intr");  // long: interrupted mid-sampler
  ASSERT_FALSE(a.empty());
  ASSERT_TRUE(ws->read_until("progress", 30s)) << farm.log();
  std::vector<std::string> queued;
  for (int i = 1; i <= 3; ++i) queued.push_back(submit(http, txt2img(i), "intr"));

  // GET /queue in ComfyUI's shape: the running one, then the farm's queued ones in order.
  const auto q = http.get_json("/queue");
  EXPECT_EQ(http.get_json("/api/queue"), q);
  ASSERT_EQ(q.at("queue_running").as_array().size(), 1u) << comfy::dumps(q);
  ASSERT_EQ(q.at("queue_pending").as_array().size(), 3u) << comfy::dumps(q);
  std::int64_t last_number = -1;
  for (const char* key : {"queue_running", "queue_pending"}) {
    for (const auto& item : q.at(key).as_array()) {
      ASSERT_TRUE(item.is_array()) << comfy::dumps(item);
      const auto& arr = item.as_array();
      ASSERT_EQ(arr.size(), 5u) << comfy::dumps(item);
      EXPECT_TRUE(arr[0].is_int64()) << comfy::dumps(item);
      EXPECT_TRUE(arr[1].is_string());
      ASSERT_TRUE(arr[2].is_object());
      EXPECT_EQ(str(arr[2].at("3"), "class_type"), "KSampler");
      ASSERT_TRUE(arr[3].is_object());
      EXPECT_EQ(str(arr[3], "client_id"), "intr");
      EXPECT_EQ(arr[4], (json::value(json::array{"9"}))) << comfy::dumps(item);
      EXPECT_GT(arr[0].as_int64(), last_number);
      last_number = arr[0].as_int64();
    }
  }
  EXPECT_EQ(q.at("queue_running").at(0).at(1).as_string(), a);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(q.at("queue_pending").at(i).at(1).as_string(), queued[i]);

  // delete: the one named, queued.
  auto del = http.post("/queue", comfy::dumps(json::object{{"delete", json::array{json::value(queued[0]), "unknown-id"}}}));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  wait_state(http, queued[0], "cancelled");
  auto q2 = http.get_json("/queue");
  ASSERT_EQ(q2.at("queue_pending").as_array().size(), 2u) << comfy::dumps(q2);
  EXPECT_EQ(q2.at("queue_pending").at(0).at(1).as_string(), queued[1]);
  EXPECT_EQ(q2.at("queue_running").as_array().size(), 1u);
  // delete of a running job leaves it alone (as ComfyUI).
  ASSERT_TRUE(http.post("/queue", comfy::dumps(json::object{{"delete", json::array{json::value(a)}}})));
  EXPECT_EQ(str(http.get_json("/api/farm/jobs/" + a), "state"), "running");
  // clear: every queued one, not the running one.
  auto clr = http.post("/api/queue", comfy::dumps(json::object{{"clear", true}}));
  ASSERT_TRUE(clr);
  EXPECT_EQ(clr->status, 200);
  for (std::size_t i = 1; i < 3; ++i) wait_state(http, queued[i], "cancelled");
  auto q3 = http.get_json("/queue");
  EXPECT_TRUE(q3.at("queue_pending").as_array().empty()) << comfy::dumps(q3);
  ASSERT_EQ(q3.at("queue_running").as_array().size(), 1u) << comfy::dumps(q3);
  EXPECT_EQ(q3.at("queue_running").at(0).at(1).as_string(), a);
  auto bad = http.post("/queue", "[1, 2]");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);

  // /interrupt with a prompt_id: the running job is cancelled, and its client hears so.
  auto unknown = http.post("/interrupt", comfy::dumps(json::object{{"prompt_id", "no-such-prompt"}}));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 200);
  EXPECT_EQ(str(http.get_json("/api/farm/jobs/" + a), "state"), "running");
  auto intr = http.post("/interrupt", comfy::dumps(json::object{{"prompt_id", a}}));
  ASSERT_TRUE(intr);
  EXPECT_EQ(intr->status, 200);
  const auto msgs = prompt_messages(*ws, a, 30s);
  SCOPED_TRACE("messages: " + types_of(msgs));
  EXPECT_EQ(count_type(msgs, "execution_interrupted"), 1);
  EXPECT_EQ(count_type(msgs, "execution_success"), 0);
  EXPECT_EQ(count_type(msgs, "execution_error"), 0);
  auto done = wait_jobs_ended(http, {a}, 30s);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(str(done[a], "state"), "cancelled") << describe_attempts(done[a]);
  EXPECT_EQ(str(done[a], "badge"), "Needs attention");
  EXPECT_EQ(outcomes(done[a]), std::vector<std::string>{"cancelled"});
  const auto h = http.get_json("/history/" + a);
  ASSERT_TRUE(h.is_object() && h.get_object().contains(a)) << comfy::dumps(h);
  EXPECT_EQ(str(h.at(a).at("status"), "status_str"), "error");

  // The farm's queue ends empty.
  ASSERT_TRUE(wait_queue_empty(http, 10s));
  EXPECT_EQ(num(http.get_json("/prompt").at("exec_info"), "queue_remaining"), 0);
  SimHttp s(io, sim.url());
  ASSERT_TRUE(wait_queue_empty(s));
  // Nothing was rendered: the interrupted one stopped in its sampler, the others never ran.
  const auto r = rendered(io, {sim.url()});
  EXPECT_EQ(r.of(a), 0);
  for (const auto& id : queued) EXPECT_EQ(r.seen(id), 0) << id;
  EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(0)), 0);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(i)), 0) << i;
}

// ---- 7. backend faults ---------------------------------------------------------------------------

TEST(FarmFaults, WebSocketDroppedWhenEachPromptStartsStillSucceedsOnceAndTheClientHearsIt) {
  TempDir outs;
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(
      rig.start(kServe, sim_args("0.01", {"--fault", "ws-drop", "--output-dir", outs.path().string()})));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  auto ws = SimWs::connect(io, farm.ws_url("dropped"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_until("status"));

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const auto id = submit(http, txt2img(i), "dropped");
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
    const auto msgs = prompt_messages(*ws, id, 30s);
    SCOPED_TRACE("messages: " + types_of(msgs));
    EXPECT_EQ(count_type(msgs, "execution_start"), 1);
    EXPECT_EQ(count_type(msgs, "execution_success"), 1);
    EXPECT_EQ(count_type(msgs, "execution_error"), 0);
    // The output as ComfyUI reports it (the farm's subfolder), then the end of the prompt.
    ASSERT_EQ(count_type(msgs, "executed"), 1);
    const auto executed = *std::find_if(msgs.begin(), msgs.end(),
                                        [](const json::value& m) { return str(m, "type") == "executed"; });
    EXPECT_EQ(str(executed.at("data"), "node"), "9");
    EXPECT_EQ(str(executed.at("data").at("output").at("images").at(0), "subfolder"), "gpu");
    ASSERT_GE(msgs.size(), 2u);
    EXPECT_EQ(str(msgs[msgs.size() - 2], "type"), "execution_success");
    EXPECT_EQ(str(msgs.back(), "type"), "executing");
    auto done = wait_jobs_ended(http, {id}, 30s);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(str(done[id], "state"), "succeeded") << describe_attempts(done[id]);
    EXPECT_EQ(outcomes(done[id]), std::vector<std::string>{"succeeded"}) << describe_attempts(done[id]);
    const auto h = http.get_json("/history/" + id);
    ASSERT_TRUE(h.is_object() && h.get_object().contains(id)) << comfy::dumps(h);
    EXPECT_EQ(str(h.at(id).at("status"), "status_str"), "success");
    EXPECT_EQ(h.at(id).at("outputs").at("9").at("images").as_array().size(), 1u) << comfy::dumps(h);
  }
  const auto r = rendered(io, {sim.url()});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.seen(ids[static_cast<std::size_t>(i)]), 1);
    EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(i)), 1) << i;
  }
}

TEST(FarmFaults, HttpErrorsOnAThirdOfRequestsStillSucceedEveryJobOnce) {
  TempDir outs;
  SimProcess sims(sim_args("0.01", {"--count", "2", "--fault", "http-error=0.3", "--seed", "7",
                                    "--output-dir", outs.path().string()}));
  ASSERT_TRUE(sims.ready());
  FarmProcess farm(farm_args(kServe, {{"e0", sims.url(0)}, {"e1", sims.url(1)}},
                             // An attempt's submission fails with P 0.3: with 10 attempts, a job
                             // fails them all with P 6e-6.
                             {"--max-attempts", "10"}));
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_up(http, {"e0", "e1"}));

  constexpr int kJobs = 12;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(submit(http, txt2img(i)));
    ASSERT_FALSE(ids.back().empty());
  }
  auto jobs = wait_jobs_ended(http, ids);
  ASSERT_EQ(jobs.size(), ids.size()) << farm.log();
  // The sims' own records, read once their faults are off (/sim/* is never failed).
  for (std::size_t i = 0; i < 2; ++i) {
    SimHttp s(io, sims.url(i));
    auto cleared = s.request(net::Method::kDelete, "/sim/faults");
    ASSERT_TRUE(cleared && cleared->status == 200);
  }
  const auto r = rendered(io, {sims.url(0), sims.url(1)});
  int retried = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    const auto& job = jobs[id];
    EXPECT_EQ(str(job, "state"), "succeeded") << id << ": " << describe_attempts(job) << " "
                                              << comfy::dumps(job.at("last_error"));
    const auto o = outcomes(job);
    EXPECT_EQ(std::count(o.begin(), o.end(), "succeeded"), 1) << describe_attempts(job);
    retried += o.size() > 1;
    // A 503 is a transient failure (docs/api.md): retried, never blamed on the workflow.
    for (std::size_t k = 0; k + 1 < o.size(); ++k) EXPECT_EQ(o[k], "transient") << describe_attempts(job);
    EXPECT_EQ(r.of(id), 1) << id << ": " << describe_attempts(job);
    EXPECT_EQ(r.seen(id), 1) << id << ": " << describe_attempts(job);
    EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(i)), 1) << id << ": " << describe_attempts(job);
  }
  std::cout << "[ info ] " << retried << " of " << kJobs << " job(s) needed more than one attempt\n";
}

// ---- 8. the aggregated views ----------------------------------------------------------------------

TEST(FarmFront, SystemStatsHasADevicePerBackendAndObjectInfoIsTheUnion) {
  net::IoRuntime io(1);
  // Backend b knows a class backend a lacks, and each has a checkpoint of its own.
  SimProcess a({"--time-scale", "0.01", "--log-level", "warn", "--gpu-name", "GPU Alpha", "--models",
                "farm-a.safetensors"});
  ASSERT_TRUE(a.ready());
  SimHttp sa(io, a.url());
  auto extra = sa.get_json("/object_info/ImageInvert").at("ImageInvert");
  extra.as_object()["name"] = "ExtraInvertB";
  extra.as_object()["display_name"] = "Extra Invert (b only)";
  TempDir dir;
  const auto catalog = dir.path() / "extra.json";
  {
    std::ofstream out(catalog);
    out << comfy::dumps(json::object{{"ExtraInvertB", extra}});
  }
  SimProcess b({"--time-scale", "0.01", "--log-level", "warn", "--gpu-name", "GPU Beta", "--models",
                "farm-b.safetensors", "--catalog", catalog.string()});
  ASSERT_TRUE(b.ready());
  SimHttp sb(io, b.url());
  FarmProcess farm(farm_args(kServe, {{"a", a.url()}, {"b", b.url()}}));
  ASSERT_TRUE(farm.ready());
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_up(http, {"a", "b"}));

  // One device per backend, named after it.
  for (const std::string prefix : {"", "/api"}) {
    SCOPED_TRACE(prefix);
    const auto stats = http.get_json(prefix + "/system_stats");
    ASSERT_TRUE(stats.is_object()) << comfy::dumps(stats);
    EXPECT_EQ(str(stats.at("system"), "comfyui_version"), "comfyfarm");
    const auto& devices = stats.at("devices").as_array();
    ASSERT_EQ(devices.size(), 2u) << comfy::dumps(stats);
    std::map<std::string, std::string> names;
    for (const auto& d : devices) names[str(d, "comfyfarm_backend")] = str(d, "name");
    ASSERT_TRUE(names.contains("a") && names.contains("b")) << comfy::dumps(stats);
    EXPECT_TRUE(names["a"].starts_with("a: ")) << names["a"];
    EXPECT_NE(names["a"].find("GPU Alpha"), std::string::npos) << names["a"];
    EXPECT_TRUE(names["b"].starts_with("b: ")) << names["b"];
    EXPECT_NE(names["b"].find("GPU Beta"), std::string::npos) << names["b"];
    for (const auto& d : devices) EXPECT_GT(num(d, "vram_total"), 0) << comfy::dumps(d);
  }

  // The union of the classes, with merged combo lists.
  const auto oa = sa.get_json("/object_info");
  const auto ob = sb.get_json("/object_info");
  const auto oi = http.get_json("/object_info");
  ASSERT_TRUE(oa.is_object() && ob.is_object() && oi.is_object());
  EXPECT_FALSE(oa.get_object().contains("ExtraInvertB"));
  ASSERT_TRUE(ob.get_object().contains("ExtraInvertB"));
  std::set<std::string> expected;
  for (const auto& [k, v] : oa.get_object()) expected.emplace(k);
  for (const auto& [k, v] : ob.get_object()) expected.emplace(k);
  std::set<std::string> got;
  for (const auto& [k, v] : oi.get_object()) got.emplace(k);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(str(oi.at("ExtraInvertB"), "display_name"), "Extra Invert (b only)");
  std::set<std::string> ckpts;
  for (const auto& c : oi.at("CheckpointLoaderSimple").at("input").at("required").at("ckpt_name").at(0).as_array()) {
    ckpts.emplace(c.as_string());
  }
  EXPECT_TRUE(ckpts.contains("farm-a.safetensors") && ckpts.contains("farm-b.safetensors"))
      << comfy::dumps(oi.at("CheckpointLoaderSimple"));
  EXPECT_EQ(http.get_json("/api/object_info"), oi);
  const auto one = http.get_json("/object_info/ExtraInvertB");
  ASSERT_TRUE(one.is_object() && one.get_object().contains("ExtraInvertB")) << comfy::dumps(one);
  EXPECT_EQ(one.at("ExtraInvertB"), oi.at("ExtraInvertB"));
  EXPECT_EQ(http.get_json("/api/object_info/ExtraInvertB"), one);
  EXPECT_EQ(http.get_json("/object_info/NoSuchNode"), json::value(json::object()));

  // Each job goes where its checkpoint is.
  const auto ja = submit(http, txt2img(0));  // farm-a
  const auto jb = submit(http, txt2img(1));  // farm-b
  auto done = wait_jobs_ended(http, {ja, jb});
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(str(done[ja], "state"), "succeeded") << describe_attempts(done[ja]);
  EXPECT_EQ(str(done[ja], "backend"), "a");
  EXPECT_EQ(str(done[jb], "state"), "succeeded") << describe_attempts(done[jb]);
  EXPECT_EQ(str(done[jb], "backend"), "b");
}

// ---- routes the farm does not serve itself ---------------------------------------------------

TEST(FarmFront, RoutesTheFarmLacksAreAnsweredByABackend) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  SimHttp direct(io, sim.url());

  // GET /models/{folder} is ComfyUI's, not the farm's: the backend answers, byte for byte.
  auto via_farm = http.get("/models/checkpoints");
  auto from_sim = direct.get("/models/checkpoints");
  ASSERT_TRUE(via_farm && from_sim);
  EXPECT_EQ(via_farm->status, 200);
  EXPECT_EQ(via_farm->body, from_sim->body);
  // A POST reaches it too (here the simulator's own fault switch).
  auto set = http.post("/sim/faults", R"({"http-latency": 7})");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->status, 200) << set->body;
  EXPECT_EQ(direct.get_json("/sim/faults").at("specs").as_array().size(), 1u);
  // The backend's 404 stays a 404.
  auto missing = http.get("/no/such/route");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // "/" is the backend's web UI; the farm's own page is at /farm.
  auto root = http.get("/");
  auto sim_root = direct.get("/");
  ASSERT_TRUE(root && sim_root);
  EXPECT_EQ(root->body, sim_root->body);
  auto page = http.get("/farm");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("comfyfarm"), std::string::npos);
  // The farm's own routes are not passed on: /prompt and /queue are the farm's.
  EXPECT_TRUE(http.get_json("/queue").at("queue_running").as_array().empty());

  // Without a backend up, a clear 503.
  sim.signal(SIGKILL);
  ASSERT_TRUE(sim.wait_exit(10s));
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    auto r = http.get("/models/checkpoints");
    refused = r && r->status == 503 && r->body.find("no_backend") != std::string::npos;
    if (!refused) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(refused);
  auto fallback = http.get("/");
  ASSERT_TRUE(fallback);
  EXPECT_NE(fallback->body.find("comfyfarm"), std::string::npos) << fallback->body;
}

// A prompt without a client_id: as on ComfyUI, every socket gets its progress_state snapshots,
// and nobody its other events (execution_start, executed, execution_success...).
TEST(FarmFront, PromptWithoutClientIdBroadcastsOnlyProgressState) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  auto ws = SimWs::connect(io, farm.ws_url("observer"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_json(10s));  // the greeting status
  const auto id = submit(http, txt2img(1), "");  // no client_id
  ASSERT_FALSE(id.empty());
  const auto ended = wait_jobs_ended(http, {id});
  ASSERT_EQ(str(ended.at(id), "state"), "succeeded");
  std::vector<std::string> types;
  while (auto m = ws->read_json(500ms)) {
    const auto& data = m->at("data");
    if (data.is_object() && data.as_object().contains("prompt_id") && str(data, "prompt_id") == id) {
      types.push_back(str(*m, "type"));
    }
  }
  ASSERT_FALSE(types.empty()) << "the observer got nothing of the prompt";
  for (const auto& t : types) EXPECT_EQ(t, "progress_state");
}

// GET /history (the list, as ComfyUI's web UI reads it) still shows the jobs that ended before a
// restart, in the order they ended.
TEST(FarmFront, HistoryListSurvivesARestart) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(submit(http, txt2img(i)));
    ASSERT_FALSE(ids.back().empty());
    const auto ended = wait_jobs_ended(http, {ids.back()});  // one at a time: a known end order
    ASSERT_EQ(str(ended.at(ids.back()), "state"), "succeeded");
  }
  farm.signal(SIGTERM);
  ASSERT_TRUE(farm.wait_exit(30s));
  ASSERT_TRUE(farm.restart());
  SimHttp after(io, farm.url());
  const auto list = after.get_json("/history");
  ASSERT_TRUE(list.is_object());
  std::vector<std::string> listed;
  for (const auto& [id, entry] : list.as_object()) {
    listed.emplace_back(id);
    EXPECT_EQ(str(entry.at("status"), "status_str"), "success") << id;
  }
  EXPECT_EQ(listed, ids);
  const auto last = after.get_json("/history?max_items=1");
  ASSERT_EQ(last.as_object().size(), 1u);
  EXPECT_TRUE(last.as_object().contains(ids.back()));
}

// A file that appears on a backend after it came up (here an input image uploaded to it
// directly) becomes valid for the farm once its catalog is read again.
TEST(FarmFront, ABackendsNewInputsAreValidAfterTheCatalogRefresh) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01"), "gpu", {"--catalog-refresh", "0.3"}));
  auto [sim, farm, io, http] = rig.parts();
  SimHttp direct(io, sim.url());
  ASSERT_TRUE(wait_up(http, {"gpu"}));
  const std::string name = "appeared-later.png";
  json::object graph;
  graph["1"] = json::object{{"class_type", "LoadImage"}, {"inputs", json::object{{"image", name}}}};
  graph["2"] = json::object{{"class_type", "ImageInvert"}, {"inputs", json::object{{"image", json::array{"1", 0}}}}};
  graph["3"] = json::object{{"class_type", "SaveImage"},
                            {"inputs", json::object{{"filename_prefix", "refresh"}, {"images", json::array{"2", 0}}}}};
  auto before = http.post("/prompt", prompt_body(graph, ""));
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 400) << before->body;

  auto [st, reply] = upload(direct, name, png_bytes("later"));  // to the backend, not the farm
  ASSERT_EQ(st, 200) << reply;
  int status = 0;
  std::string id;
  for (int i = 0; i < 100 && status != 200; ++i) {
    std::this_thread::sleep_for(100ms);
    auto r = http.post("/prompt", prompt_body(graph, ""));
    ASSERT_TRUE(r);
    status = r->status;
    if (status == 200) id = str(parse(r->body), "prompt_id");
  }
  ASSERT_EQ(status, 200) << "the farm never learned of the backend's new input";
  const auto done = wait_jobs_ended(http, {id});
  EXPECT_EQ(str(done.at(id), "state"), "succeeded");
}

}  // namespace
}  // namespace comfyfarm::test
