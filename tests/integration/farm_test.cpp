// Process tests of `comfyfarm serve`: the farm as a real process in front of real `comfyfarm sim`
// processes on loopback. Backends and the farm are SIGKILLed mid-run; "exactly once" is checked
// on the sims' own records (their /history, and the PNGs they wrote under --output-dir).
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

std::string prefix_of(int i) { return "farmjob-" + std::to_string(i); }

/// txt2img_sd15 with checkpoint i % 4, seed 1000 + i and an output prefix of its own.
json::object txt2img(int i) { return txt2img_sd15(i, 1000 + i, prefix_of(i)); }

/// `serve` flags of these tests: short timers and quick retries.
const ServeFlags kServe{{"--retry-backoff", "0.05"}, {"--probe-interval", "0.2"}, {"--start-timeout", "2"},
                        {"--silence-timeout", "5"},  {"--log-level", "info"}};

/// How these tests poll the farm's jobs.
constexpr auto kPoll = 100ms;

// ---- waits and checks ------------------------------------------------------------------------------

/// Polls GET /api/farm/backends until `n` backends are up.
bool wait_backends_up(SimHttp& farm, std::size_t n, std::chrono::milliseconds deadline = 30s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  json::value last;
  while (std::chrono::steady_clock::now() < end) {
    auto r = farm.get("/api/farm/backends");
    if (r && r->status == 200) {
      last = parse(r->body);
      std::size_t up = 0;
      for (const auto& b : last.at("backends").as_array()) up += str(b, "state") == "up";
      if (up >= n) return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << n << " backend(s) not up within " << deadline.count() << " ms: " << comfy::dumps(last);
  return false;
}

/// Checks a farm /history/{id} entry has ComfyUI's shape for a successful prompt.
void expect_success_entry(const json::value& entry, const std::string& id, int i,
                          const std::string& backend, const std::string& client_id) {
  SCOPED_TRACE("history of " + id);
  ASSERT_TRUE(entry.is_object()) << comfy::dumps(entry);
  const auto& prompt = entry.at("prompt").as_array();
  ASSERT_EQ(prompt.size(), 5u);
  EXPECT_TRUE(prompt[0].is_int64());
  EXPECT_EQ(prompt[1].as_string(), id);
  EXPECT_EQ(prompt[2].at("3").at("inputs").at("seed").to_number<std::int64_t>(), 1000 + i);
  EXPECT_EQ(prompt[2].at("4").at("inputs").at("ckpt_name").as_string(),
            checkpoints()[static_cast<std::size_t>(i) % 4]);
  EXPECT_EQ(str(prompt[3], "client_id"), client_id);
  EXPECT_TRUE(prompt[4].is_array());
  const auto& status = entry.at("status");
  EXPECT_EQ(str(status, "status_str"), "success");
  EXPECT_EQ(status.at("completed"), json::value(true));
  EXPECT_TRUE(status.at("messages").is_array());
  const auto& images = entry.at("outputs").at("9").at("images").as_array();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_TRUE(str(images[0], "filename").starts_with(prefix_of(i) + "_")) << comfy::dumps(images[0]);
  EXPECT_EQ(str(images[0], "subfolder"), backend);
  EXPECT_EQ(str(images[0], "type"), "output");
}

// ---- 1. many jobs ------------------------------------------------------------------------------------

TEST(FarmRun, TwoHundredJobsOnFourBackendsOfTwoSpeedsEachRenderedOnce) {
  TempDir outs;
  SimProcess fast(sim_args("0.01", {"--count", "2", "--speed", "1", "--output-dir", (outs.path() / "fast").string()}));
  SimProcess slow(sim_args("0.01", {"--count", "2", "--speed", "0.5", "--output-dir", (outs.path() / "slow").string()}));
  ASSERT_TRUE(fast.ready() && slow.ready());
  const std::vector<Backend> backends{{"fast-0", fast.url(0)}, {"fast-1", fast.url(1)},
                                      {"slow-0", slow.url(0)}, {"slow-1", slow.url(1)}};
  FarmProcess farm(farm_args(kServe, backends));
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_backends_up(http, 4));

  constexpr int kJobs = 200;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(submit(http, txt2img(i), "many"));
    ASSERT_FALSE(ids.back().empty());
  }
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  auto jobs = wait_jobs_ended(http, ids, 90s, kPoll);
  ASSERT_EQ(jobs.size(), ids.size()) << farm.log();

  std::map<std::string, int> per_backend;
  for (const auto& [id, job] : jobs) {
    EXPECT_EQ(str(job, "state"), "succeeded") << id << ": " << comfy::dumps(job.at("last_error"));
    EXPECT_EQ(outcomes(job), std::vector<std::string>{"succeeded"}) << id << ": " << describe_attempts(job);
    per_backend[str(job, "backend")]++;
  }
  for (const auto& b : backends) EXPECT_GT(per_backend[b.id], 0) << b.id << " ran nothing";

  // Exactly once, by the backends' own records.
  const auto counts = rendered(io, {fast.url(0), fast.url(1), slow.url(0), slow.url(1)});
  for (const auto& id : ids) EXPECT_EQ(counts.seen(id), 1) << id;
  EXPECT_EQ(counts.entries.size(), ids.size());
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(i)), 1) << i;

  // ComfyUI's /history/{id} shape, with the farm's subfolders.
  for (int i = 0; i < kJobs; ++i) {
    const auto h = http.get_json("/history/" + ids[static_cast<std::size_t>(i)]);
    ASSERT_TRUE(h.is_object() && h.get_object().contains(ids[static_cast<std::size_t>(i)])) << comfy::dumps(h);
    expect_success_entry(h.at(ids[static_cast<std::size_t>(i)]), ids[static_cast<std::size_t>(i)], i,
                         str(jobs[ids[static_cast<std::size_t>(i)]], "backend"), "many");
  }
  // An output is served through the farm's /view with the subfolder it reported.
  const auto h0 = http.get_json("/history/" + ids[0]);
  const auto& img = h0.at(ids[0]).at("outputs").at("9").at("images").at(0);
  auto view = http.get("/view?filename=" + str(img, "filename") + "&subfolder=" + str(img, "subfolder") +
                       "&type=output");
  ASSERT_TRUE(view);
  EXPECT_EQ(view->status, 200);
  EXPECT_TRUE(view->body.starts_with("\x89PNG")) << view->body.substr(0, 200);
}

// ---- 2. a backend dies --------------------------------------------------------------------------------

TEST(FarmRun, BackendSigkilledMidRunLosesNoJob) {
  TempDir outs;
  std::vector<std::unique_ptr<SimProcess>> sims;
  std::vector<fs::path> out_dirs;
  std::vector<Backend> backends;
  for (int i = 0; i < 3; ++i) {
    out_dirs.push_back(outs.path() / ("sim-" + std::to_string(i)));
    sims.push_back(std::make_unique<SimProcess>(
        sim_args("0.2", {"--output-dir", out_dirs.back().string()})));
    ASSERT_TRUE(sims.back()->ready());
    backends.push_back({"b" + std::to_string(i), sims.back()->url()});
  }
  FarmProcess farm(farm_args(kServe, backends));
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_backends_up(http, 3));

  constexpr int kJobs = 24;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) ids.push_back(submit(http, txt2img(i)));

  // Kill b0 while it executes a prompt of the farm.
  SimHttp victim(io, sims[0]->url());
  const auto end = std::chrono::steady_clock::now() + 30s;
  bool busy = false;
  while (!busy && std::chrono::steady_clock::now() < end) {
    const auto q = victim.get_json("/queue");
    busy = q.is_object() && !q.at("queue_running").as_array().empty();
    if (!busy) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(busy) << "b0 never ran anything";
  sims[0]->signal(SIGKILL);
  ASSERT_TRUE(sims[0]->wait_exit(10s));

  auto jobs = wait_jobs_ended(http, ids, 90s, kPoll);
  ASSERT_EQ(jobs.size(), ids.size()) << farm.log();
  const auto survivors = rendered(io, {sims[1]->url(), sims[2]->url()});
  int lost_attempts = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    const auto& job = jobs[id];
    EXPECT_EQ(str(job, "state"), "succeeded") << id << ": " << describe_attempts(job);
    const auto o = outcomes(job);
    EXPECT_EQ(std::count(o.begin(), o.end(), "succeeded"), 1) << describe_attempts(job);
    for (const auto& a : job.at("attempts").as_array()) lost_attempts += str(a, "outcome") == "backend_lost";
    // Rendered exactly once: where it succeeded, and nowhere else. The survivors' PNGs (one
    // per render, named by the job's own prefix) and history say so; on b0's disk a render cut
    // short by the SIGKILL may have left a file, so there only "at least one" is checked.
    const bool on_victim = str(job, "backend") == "b0";
    EXPECT_EQ(files_with_prefix({out_dirs[1], out_dirs[2]}, prefix_of(i)), on_victim ? 0 : 1)
        << id << ": " << describe_attempts(job);
    if (on_victim) {
      EXPECT_GE(files_with_prefix({out_dirs[0]}, prefix_of(i)), 1) << id;
    }
    EXPECT_EQ(survivors.seen(id), on_victim ? 0 : 1) << id << ": " << describe_attempts(job);
  }
  EXPECT_GE(lost_attempts, 1) << "the prompt running on b0 was not counted as lost";
}

// ---- 3. the farm dies ---------------------------------------------------------------------------------

TEST(FarmRun, FarmSigkilledMidRunAndRestartedRendersEveryJobOnce) {
  TempDir outs;
  const auto out_a = outs.path() / "a";
  const auto out_b = outs.path() / "b";
  SimProcess a(sim_args("0.3", {"--count", "2", "--output-dir", out_a.string()}));
  SimProcess b(sim_args("0.3", {"--count", "2", "--speed", "0.5", "--output-dir", out_b.string()}));
  ASSERT_TRUE(a.ready() && b.ready());
  const std::vector<Backend> backends{{"a0", a.url(0)}, {"a1", a.url(1)}, {"b0", b.url(0)}, {"b1", b.url(1)}};
  TempDir data;
  FarmProcess farm(farm_args(kServe, backends), data.path() / "farm");
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  std::vector<std::string> ids;
  constexpr int kJobs = 40;
  {
    SimHttp http(io, farm.url());
    ASSERT_TRUE(wait_backends_up(http, 4));
    for (int i = 0; i < kJobs; ++i) {
      ids.push_back(submit(http, txt2img(i)));
      ASSERT_FALSE(ids.back().empty());
    }
    // Mid-run: some done, some on backends, most queued.
    const auto end = std::chrono::steady_clock::now() + 30s;
    bool mid = false;
    while (!mid && std::chrono::steady_clock::now() < end) {
      const auto st = http.get_json("/api/schedule/state");
      mid = st.is_object() && st.at("totals").at("succeeded").to_number<std::int64_t>() >= 2 &&
            st.at("counts").at("running").to_number<std::int64_t>() >= 2;
      if (!mid) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(mid) << farm.log();
  }
  farm.kill();
  ASSERT_TRUE(farm.restart()) << farm.log();
  {
    // Killed again while it re-attaches.
    SimHttp http(io, farm.url());
    ASSERT_TRUE(wait_backends_up(http, 1));
    std::this_thread::sleep_for(100ms);
  }
  farm.kill();
  ASSERT_TRUE(farm.restart()) << farm.log();

  SimHttp http(io, farm.url());
  auto jobs = wait_jobs_ended(http, ids, 90s, kPoll);
  ASSERT_EQ(jobs.size(), ids.size()) << farm.log();
  const auto counts = rendered(io, {a.url(0), a.url(1), b.url(0), b.url(1)});
  for (int i = 0; i < kJobs; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    const auto& job = jobs[id];
    EXPECT_EQ(str(job, "state"), "succeeded") << id << ": " << describe_attempts(job);
    EXPECT_EQ(counts.seen(id), 1) << id << ": " << describe_attempts(job);
    EXPECT_EQ(files_with_prefix({out_a, out_b}, prefix_of(i)), 1) << id << ": " << describe_attempts(job);
    // The history survives the restarts (from the store).
    const auto h = http.get_json("/history/" + id);
    ASSERT_TRUE(h.is_object() && h.get_object().contains(id)) << id;
    expect_success_entry(h.at(id), id, i, str(job, "backend"), "");
  }
  EXPECT_EQ(counts.entries.size(), ids.size());
}

// ---- 4 and 9. OOM: retried, and hidden from the client ---------------------------------------------

TEST(FarmRetry, OomAttemptIsRetriedAndTheJobSucceeds) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--fault", "oom=every:2"})));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));

  // The first sampler run passes, the second raises OOM, the third passes.
  const auto first = submit(http, txt2img(0));
  auto done = wait_jobs_ended(http, {first}, 30s, kPoll);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(outcomes(done[first]), std::vector<std::string>{"succeeded"}) << describe_attempts(done[first]);

  const auto second = submit(http, txt2img(1));
  done = wait_jobs_ended(http, {second}, 30s, kPoll);
  ASSERT_EQ(done.size(), 1u);
  const auto& job = done[second];
  EXPECT_EQ(str(job, "state"), "succeeded");
  EXPECT_EQ(outcomes(job), (std::vector<std::string>{"oom", "succeeded"})) << describe_attempts(job);
  EXPECT_EQ(job.at("retry_count").to_number<std::int64_t>(), 1);
  EXPECT_FALSE(job.at("needs_regeneration").as_bool());
  const auto& err = job.at("attempts").at(0).at("error");
  EXPECT_EQ(str(err, "class"), "oom");
  EXPECT_EQ(str(err.at("detail"), "exception_type"), "torch.OutOfMemoryError");
  const auto h = http.get_json("/history/" + second);
  ASSERT_TRUE(h.is_object() && h.get_object().contains(second));
  EXPECT_EQ(str(h.at(second).at("status"), "status_str"), "success");
  // Both attempts reached the backend: the sim's history holds the prompt once (the retry has
  // the same prompt id, and its successful run replaced the failed one).
  const auto counts = rendered(io, {sim.url()});
  EXPECT_EQ(counts.seen(second), 1);
}

TEST(FarmRetry, RetriedAttemptIsHiddenFromTheWebSocketClient) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--fault", "oom=every:2"})));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));
  const auto warmup = submit(http, txt2img(0));  // sampler run 1 passes; the next one fails
  ASSERT_EQ(wait_jobs_ended(http, {warmup}, 30s, kPoll).size(), 1u);

  auto ws = SimWs::connect(io, farm.ws_url("hidden"));
  ASSERT_TRUE(ws);
  const auto hello = ws->read_until("status");
  ASSERT_TRUE(hello);
  EXPECT_EQ(str(hello->at("data"), "sid"), "hidden");
  const auto id = submit(http, txt2img(1), "hidden");
  ASSERT_FALSE(id.empty());
  const auto msgs = prompt_messages(*ws, id, 60s, 500ms);
  SCOPED_TRACE("messages: " + types_of(msgs));

  EXPECT_EQ(count_type(msgs, "execution_error"), 0);
  EXPECT_EQ(count_type(msgs, "execution_success"), 1);
  const auto success = std::find_if(msgs.begin(), msgs.end(),
                                    [](const json::value& m) { return str(m, "type") == "execution_success"; });
  ASSERT_NE(success, msgs.end());
  ASSERT_NE(success + 1, msgs.end()) << "nothing after execution_success";
  EXPECT_EQ(str(*(success + 1), "type"), "executing");
  EXPECT_TRUE((success + 1)->at("data").at("node").is_null());
  EXPECT_EQ(success + 2, msgs.end()) << "messages after the end of the prompt";
  // The outputs the client saw name the farm's subfolder.
  for (const auto& m : msgs) {
    if (str(m, "type") != "executed") continue;
    EXPECT_EQ(str(m.at("data").at("output").at("images").at(0), "subfolder"), "gpu");
  }

  // It really was retried.
  auto done = wait_jobs_ended(http, {id}, 30s, kPoll);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(outcomes(done[id]), (std::vector<std::string>{"oom", "succeeded"})) << describe_attempts(done[id]);
}

// ---- 5. a deterministic failure -----------------------------------------------------------------------

TEST(FarmRetry, NodeErrorFailsOnceNeedsRegenerationAndIsNotRetried) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--fault", "node-error=KSampler"})));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));

  auto ws = SimWs::connect(io, farm.ws_url("broken"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_until("status"));
  const auto id = submit(http, txt2img(0), "broken");
  ASSERT_FALSE(id.empty());
  const auto msgs = prompt_messages(*ws, id, 60s, 500ms);
  SCOPED_TRACE("messages: " + types_of(msgs));
  ASSERT_EQ(count_type(msgs, "execution_error"), 1);
  EXPECT_EQ(count_type(msgs, "execution_success"), 0);
  const auto err = *std::find_if(msgs.begin(), msgs.end(),
                                 [](const json::value& m) { return str(m, "type") == "execution_error"; });
  EXPECT_EQ(str(err.at("data"), "node_type"), "KSampler");
  EXPECT_EQ(str(err.at("data"), "exception_type"), "RuntimeError");

  auto done = wait_jobs_ended(http, {id}, 30s, kPoll);
  ASSERT_EQ(done.size(), 1u);
  const auto& job = done[id];
  EXPECT_EQ(str(job, "state"), "failed");
  EXPECT_TRUE(job.at("needs_regeneration").as_bool());
  EXPECT_EQ(outcomes(job), std::vector<std::string>{"workflow_invalid"}) << describe_attempts(job);
  EXPECT_EQ(job.at("attempts").as_array().size(), 1u);
  // The backend ran it once.
  const auto counts = rendered(io, {sim.url()});
  EXPECT_EQ(counts.seen(id), 1);
  // /history/{id} as ComfyUI answers it for a failed prompt: the node's own error.
  const auto h = http.get_json("/history/" + id);
  ASSERT_TRUE(h.is_object() && h.get_object().contains(id)) << comfy::dumps(h);
  const auto& status = h.at(id).at("status");
  EXPECT_EQ(str(status, "status_str"), "error");
  EXPECT_EQ(status.at("completed"), json::value(false));
  bool found = false;
  for (const auto& m : status.at("messages").as_array()) {
    if (m.at(0).as_string() != "execution_error") continue;
    found = true;
    EXPECT_EQ(str(m.at(1), "node_id"), "3") << comfy::dumps(m);
    EXPECT_EQ(str(m.at(1), "node_type"), "KSampler") << comfy::dumps(m);
    EXPECT_EQ(str(m.at(1), "exception_type"), "RuntimeError") << comfy::dumps(m);
  }
  EXPECT_TRUE(found) << comfy::dumps(status);
}

// ---- 6. validation errors as ComfyUI words them --------------------------------------------------------

TEST(FarmFront, ValidationErrorBodiesEqualTheBackendsOwn) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, farm_http] = rig.parts();
  SimHttp sim_http(io, sim.url());
  ASSERT_TRUE(wait_backends_up(farm_http, 1));

  std::vector<std::pair<std::string, json::object>> cases;
  {
    auto g = txt2img(0);
    g["4"].as_object()["inputs"].as_object()["ckpt_name"] = "no-such-model.safetensors";
    cases.emplace_back("unknown checkpoint", std::move(g));
  }
  {
    auto g = txt2img(0);
    g["3"].as_object()["inputs"].as_object().erase("model");
    cases.emplace_back("missing required input", std::move(g));
  }
  {
    auto g = txt2img(0);
    g["3"].as_object()["inputs"].as_object()["steps"] = -3;
    cases.emplace_back("value below the minimum", std::move(g));
  }
  {
    auto g = txt2img(0);
    g["9"].as_object()["class_type"] = "NoSuchNode";
    cases.emplace_back("unknown class", std::move(g));
  }
  for (const auto& [what, graph] : cases) {
    SCOPED_TRACE(what);
    auto from_sim = sim_http.post("/prompt", prompt_body(graph, "v"));
    auto from_farm = farm_http.post("/prompt", prompt_body(graph, "v"));
    ASSERT_TRUE(from_sim && from_farm);
    EXPECT_EQ(from_sim->status, 400) << from_sim->body;
    EXPECT_EQ(from_farm->status, from_sim->status) << from_farm->body;
    EXPECT_EQ(parse(from_farm->body), parse(from_sim->body)) << "farm: " << from_farm->body
                                                             << "\nsim:  " << from_sim->body;
  }
  // Nothing was queued anywhere.
  EXPECT_EQ(sim_http.get_json("/history"), json::value(json::object()));
  const auto list = farm_http.get_json("/api/farm/jobs");
  EXPECT_TRUE(list.at("jobs").as_array().empty()) << comfy::dumps(list);
}

// ---- 7. bad input -------------------------------------------------------------------------------------

TEST(FarmFront, MalformedJsonUiFormatAndUnknownJobAreRefused) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01")));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));

  auto bad = http.post("/prompt", "{\"prompt\": {\"3\": ");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  const auto bad_doc = parse(bad->body);
  ASSERT_TRUE(bad_doc.is_object()) << bad->body;
  EXPECT_TRUE(bad_doc.at("error").is_object()) << bad->body;
  EXPECT_FALSE(str(bad_doc.at("error"), "message").empty()) << bad->body;

  json::object ui;
  ui["last_node_id"] = 9;
  ui["nodes"] = json::array{json::object{{"id", 3}, {"type", "KSampler"}, {"widgets_values", json::array{1, 20}}}};
  ui["links"] = json::array();
  ui["version"] = 0.4;
  auto ui_reply = http.post("/prompt", prompt_body(ui, ""));
  ASSERT_TRUE(ui_reply);
  EXPECT_EQ(ui_reply->status, 400);
  const auto ui_doc = parse(ui_reply->body);
  EXPECT_NE(str(ui_doc.at("error"), "message").find("API format"), std::string::npos) << ui_reply->body;
  // The farm API says the same.
  json::object api_body;
  api_body["workflow"] = ui;
  auto api_reply = http.post("/api/farm/jobs", comfy::dumps(api_body));
  ASSERT_TRUE(api_reply);
  EXPECT_EQ(api_reply->status, 400) << api_reply->body;
  EXPECT_NE(api_reply->body.find("API format"), std::string::npos) << api_reply->body;

  auto missing = http.get("/api/farm/jobs/00000000-0000-4000-8000-000000000000");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404) << missing->body;
  EXPECT_EQ(str(parse(missing->body).at("error"), "code"), "not_found") << missing->body;
  // ComfyUI answers {} for an unknown /history id.
  EXPECT_EQ(http.get_json("/history/00000000-0000-4000-8000-000000000000"), json::value(json::object()));
  const auto list = http.get_json("/api/farm/jobs");
  EXPECT_TRUE(list.at("jobs").as_array().empty()) << comfy::dumps(list);
}

TEST(FarmFront, OversizedBodyGets413AndLosesNothing) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01"), "gpu", {"--max-body-mb", "0.05"}));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));
  const auto kept = submit(http, txt2img(0));
  ASSERT_FALSE(kept.empty());

  // A prompt padded past the 0.05 MiB limit: 413 with a JSON error.
  json::object big = txt2img(1);
  big["6"].as_object()["inputs"].as_object()["text"] = std::string(80 * 1024, 'x');
  auto too_big = http.post("/prompt", prompt_body(big, ""));
  ASSERT_TRUE(too_big) << "the farm must answer, not drop the connection silently";
  EXPECT_EQ(too_big->status, 413) << too_big->body;
  EXPECT_TRUE(parse(too_big->body).at("error").is_object()) << too_big->body;

  // The farm still works, and what it had accepted is still there and finishes.
  SimHttp again(io, farm.url());
  const auto after = submit(again, txt2img(2));
  ASSERT_FALSE(after.empty());
  for (const auto& id : {kept, after}) {
    json::value job;
    for (int i = 0; i < 600; ++i) {
      job = again.get_json("/api/farm/jobs/" + id);
      if (job.is_object() && str(job, "state") == "succeeded") break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(str(job, "state"), "succeeded") << id;
  }
  EXPECT_EQ(again.get_json("/api/farm/jobs").at("jobs").as_array().size(), 2u);
}

TEST(FarmFront, FullQueueRefusesWith429AndKeepsWhatItHolds) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--fault", "stall"}), "stalled",
                                    {"--queue-capacity", "2", "--start-timeout", "60", "--grace", "1"}));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));

  const auto first = submit(http, txt2img(0));
  const auto second = submit(http, txt2img(1));
  ASSERT_FALSE(first.empty() || second.empty());
  auto third = http.post("/prompt", prompt_body(txt2img(2), ""));
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 429) << third->body;
  const auto doc = parse(third->body);
  ASSERT_TRUE(doc.is_object()) << third->body;
  EXPECT_EQ(str(doc.at("error"), "type"), "queue_full") << third->body;
  EXPECT_TRUE(doc.at("node_errors").is_object()) << third->body;
  // The farm API refuses with 429 too.
  json::object api_body;
  api_body["workflow"] = txt2img(3);
  auto api = http.post("/api/farm/jobs", comfy::dumps(api_body));
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 429) << api->body;

  // The two accepted ones are still there; the refused ones left no trace.
  const auto q = http.get_json("/queue");
  std::set<std::string> in_queue;
  for (const char* key : {"queue_running", "queue_pending"}) {
    for (const auto& item : q.at(key).as_array()) in_queue.emplace(item.at(1).as_string());
  }
  EXPECT_EQ(in_queue, (std::set<std::string>{first, second})) << comfy::dumps(q);
  for (const auto& id : {first, second}) {
    const auto job = http.get_json("/api/farm/jobs/" + id);
    EXPECT_FALSE(terminal(str(job, "state"))) << comfy::dumps(job);
  }
  const auto list = http.get_json("/api/farm/jobs");
  EXPECT_EQ(list.at("jobs").as_array().size(), 2u) << comfy::dumps(list);
}

TEST(FarmStart, CorruptDatabaseIsRefusedAndLeftUntouched) {
  TempDir dir;
  const auto db = dir.path() / "comfyfarm.db";
  std::string garbage = "SQLite format 3";
  garbage.push_back('\0');
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  {
    std::ofstream out(db, std::ios::binary);
    out << garbage;
  }
  const auto r = run_comfyfarm("serve --listen 127.0.0.1:0 --data '" + dir.path().string() + "'", 30);
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.exit_code, 124) << "serve started on a corrupt database:\n" << r.err;
  EXPECT_NE(r.err.find(db.string()), std::string::npos) << r.err;
  EXPECT_EQ(read_file(db), garbage) << "the corrupt file was changed";
  EXPECT_FALSE(fs::exists(dir.path() / "comfyfarm.db-wal") && fs::file_size(dir.path() / "comfyfarm.db-wal") > 0);

  // Not a database at all: refused the same way.
  const std::string text = "this is not a database\n";
  {
    std::ofstream out(db, std::ios::binary | std::ios::trunc);
    out << text;
  }
  const auto r2 = run_comfyfarm("serve --listen 127.0.0.1:0 --data '" + dir.path().string() + "'", 30);
  EXPECT_NE(r2.exit_code, 0) << r2.err;
  EXPECT_NE(r2.exit_code, 124) << r2.err;
  EXPECT_NE(r2.err.find(db.string()), std::string::npos) << r2.err;
  EXPECT_EQ(read_file(db), text);
}

// ---- 8. SIGTERM ----------------------------------------------------------------------------------------

TEST(FarmStop, SigtermExitsZeroWithinTheGracePeriodAndTheNextStartFinishesTheWork) {
  TempDir outs;
  SimProcess sim(sim_args("1", {"--output-dir", outs.path().string()}));  // real-time: ~1-2 s a job
  ASSERT_TRUE(sim.ready());
  TempDir data;
  FarmProcess farm(farm_args(kServe, {{"gpu", sim.url()}}, {"--grace", "1"}), data.path() / "farm");
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  std::vector<std::string> ids;
  {
    SimHttp http(io, farm.url());
    ASSERT_TRUE(wait_backends_up(http, 1));
    for (int i = 0; i < 3; ++i) ids.push_back(submit(http, txt2img(i)));
    const auto end = std::chrono::steady_clock::now() + 30s;
    bool running = false;
    while (!running && std::chrono::steady_clock::now() < end) {
      running = str(http.get_json("/api/farm/jobs/" + ids[0]), "state") == "running";
      if (!running) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(running);
  }
  farm.signal(SIGTERM);
  // Grace 1 s; the rest is slack for a loaded machine, not a performance bound.
  const auto status = farm.wait_exit(15s);
  ASSERT_TRUE(status) << "no exit after SIGTERM:\n" << farm.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status << "\n" << farm.log();

  // The next start finishes what was handed back, once.
  ASSERT_TRUE(farm.restart());
  SimHttp http(io, farm.url());
  auto jobs = wait_jobs_ended(http, ids, 60s, kPoll);
  ASSERT_EQ(jobs.size(), ids.size()) << farm.log();
  const auto counts = rendered(io, {sim.url()});
  for (int i = 0; i < 3; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    EXPECT_EQ(str(jobs[id], "state"), "succeeded") << describe_attempts(jobs[id]);
    EXPECT_EQ(counts.seen(id), 1) << id;
    EXPECT_EQ(files_with_prefix({outs.path()}, prefix_of(i)), 1) << id;
  }
}

// ---- found by these tests -------------------------------------------------------------------------------

TEST(FarmRetry, PromptGivenUpOnAStalledBackendIsNotRenderedThereLater) {
  SimProcess stalled(sim_args("0.01", {"--fault", "stall"}));
  SimProcess good(sim_args("0.01"));
  ASSERT_TRUE(stalled.ready() && good.ready());
  FarmProcess farm(farm_args(kServe, {{"stalled", stalled.url()}, {"good", good.url()}}, {"--start-timeout", "1"}));
  ASSERT_TRUE(farm.ready());
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_backends_up(http, 2));
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(submit(http, txt2img(i)));
  auto jobs = wait_jobs_ended(http, ids, 60s, kPoll);
  ASSERT_EQ(jobs.size(), ids.size());
  int moved = 0;
  for (const auto& [id, job] : jobs) {
    EXPECT_EQ(str(job, "state"), "succeeded") << describe_attempts(job);
    moved += outcomes(job).size() > 1;
  }
  EXPECT_GE(moved, 1) << "nothing was placed on the stalled backend";

  // The stalled backend recovers: whatever the farm gave up on must not run there now.
  SimHttp s(io, stalled.url());
  auto cleared = s.request(net::Method::kDelete, "/sim/faults");
  ASSERT_TRUE(cleared && cleared->status == 200);
  ASSERT_TRUE(wait_queue_empty(s));
  const auto counts = rendered(io, {stalled.url(), good.url()});
  for (const auto& id : ids) {
    EXPECT_EQ(counts.seen(id), 1) << id << ": " << describe_attempts(jobs[id]);
  }
}

TEST(FarmRetry, JobLostOnTheOnlyBackendRunsThereOnceItRecovers) {
  FarmOnOneSim rig;
  ASSERT_NO_FATAL_FAILURE(rig.start(kServe, sim_args("0.01", {"--fault", "stall"}), "only",
                                    {"--start-timeout", "1", "--max-attempts", "5", "--grace", "1"}));
  auto [sim, farm, io, http] = rig.parts();
  ASSERT_TRUE(wait_backends_up(http, 1));
  const auto id = submit(http, txt2img(0));
  ASSERT_FALSE(id.empty());
  // The first attempt is given up after the start timeout...
  const auto end = std::chrono::steady_clock::now() + 20s;
  json::value job;
  for (;;) {
    job = http.get_json("/api/farm/jobs/" + id);
    const auto o = outcomes(job);
    if (std::find(o.begin(), o.end(), "backend_lost") != o.end()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), end) << comfy::dumps(job);
    std::this_thread::sleep_for(20ms);
  }
  // ...then the backend recovers. It is the only one: the job must run there in the end.
  SimHttp s(io, sim.url());
  auto cleared = s.request(net::Method::kDelete, "/sim/faults");
  ASSERT_TRUE(cleared && cleared->status == 200);
  auto done = wait_jobs_ended(http, {id}, 15s, kPoll);
  ASSERT_EQ(done.size(), 1u) << "still " << str(http.get_json("/api/farm/jobs/" + id), "state")
                             << " after its only backend recovered: " << describe_attempts(job);
  EXPECT_EQ(str(done[id], "state"), "succeeded") << describe_attempts(done[id]);
  const auto counts = rendered(io, {sim.url()});
  EXPECT_EQ(counts.seen(id), 1);
}

}  // namespace
}  // namespace comfyfarm::test

namespace comfyfarm::test {
namespace {

// Every flag can be set in the --config file; flags given on the command line win over it.
TEST(FarmStart, ConfigFileSettingsApplyAndFlagsWin) {
  TempDir dir;
  const auto config = dir.path() / "farm.json";
  std::ofstream(config) << R"({"sim": 2, "sim_time_scale": 0.01, "sim-speeds": [1, 0.5],
                               "depth": 3, "max_attempts": 7, "queue_capacity": 5,
                               "log_level": "warn"})";
  FarmProcess farm({"--config", config.string(), "--queue-capacity", "50"});
  ASSERT_TRUE(farm.ready()) << farm.log();
  net::IoRuntime io(1);
  SimHttp http(io, farm.url());
  ASSERT_TRUE(wait_backends_up(http, 2));
  const auto backends = http.get_json("/api/farm/backends").at("backends").as_array();
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_EQ(str(backends[0], "id"), "sim-0");
  EXPECT_EQ(num(backends[0], "depth"), 3);
  // max_attempts from the file; queue_capacity 5 from the file is overridden by the flag (50):
  // ten submissions are all accepted.
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    auto graph = txt2img(i);
    graph["4"].as_object()["inputs"].as_object()["ckpt_name"] = "v1-5-pruned-emaonly.safetensors";  // built-in models
    ids.push_back(submit(http, graph));
  }
  for (const auto& id : ids) ASSERT_FALSE(id.empty());
  const auto ended = wait_jobs_ended(http, ids);
  ASSERT_EQ(ended.size(), ids.size());
  for (const auto& [id, job] : ended) {
    EXPECT_EQ(str(job, "state"), "succeeded") << id;
    EXPECT_EQ(num(job, "max_attempts"), 7) << id;
  }
}

}  // namespace
}  // namespace comfyfarm::test
