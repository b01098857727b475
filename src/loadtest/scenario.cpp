#include "loadtest/scenario.hpp"

#include "comfy/json_util.hpp"
#include "net/http_client.hpp"
#include "net/io_runtime.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace comfyfarm::loadtest {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- processes ------------------------------------------------------------------------------

/// A child process (comfyfarm sim or serve) with its output in a log file. The destructor stops
/// it: SIGTERM, then SIGKILL after 5 s.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), log_(std::move(o.log_)) {}
  Child& operator=(Child&& o) noexcept {
    if (this != &o) {
      stop();
      pid_ = std::exchange(o.pid_, -1);
      log_ = std::move(o.log_);
    }
    return *this;
  }
  ~Child() { stop(); }

  static Result<Child> spawn(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return fail(Errc::kUnavailable, std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
      }
      execv(args[0], args.data());
      _exit(127);
    }
    Child c;
    c.pid_ = pid;
    c.log_ = log;
    return c;
  }

  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    kill_now();
  }
  const std::filesystem::path& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

Result<json::object> wait_ready(const std::filesystem::path& file, Child& child, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream in(file);
    if (in) {
      std::string text((std::istreambuf_iterator<char>(in)), {});
      auto doc = comfy::parse_json(text);
      if (doc && doc->is_object()) return doc->get_object();
    }
    if (!child.running()) {
      return fail(Errc::kUnavailable, "process exited before it was ready (log: " + child.log().string() + ")");
    }
    std::this_thread::sleep_for(20ms);
  }
  return fail(Errc::kTimeout, "not ready after " + std::to_string(deadline.count()) + " ms (log: " +
                                  child.log().string() + ")");
}

// ---- a simulated farm -----------------------------------------------------------------------

struct Cluster {
  explicit Cluster(const ScenarioOptions& o) : opts(o) {}
  ~Cluster() {
    farm.stop();
    for (auto& s : sims) s.stop();
    if (remove_dir) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  const ScenarioOptions& opts;
  std::filesystem::path dir;
  bool remove_dir = false;
  net::IoRuntime io{1};
  std::vector<Child> sims;
  std::vector<std::string> sim_urls;
  Child farm;
  std::string farm_url;

  void log(const std::string& line) const {
    if (opts.log) opts.log(line);
  }

  Result<void> prepare(const std::string& name) {
    if (opts.work_dir.empty()) {
      char tmpl[] = "/tmp/comfyfarm-scenario-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) return fail(Errc::kUnavailable, "cannot make a temporary directory");
      dir = tmpl;
      remove_dir = true;
    } else {
      dir = opts.work_dir / name;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      std::filesystem::create_directories(dir, ec);
      if (ec) return fail(Errc::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
    }
    return {};
  }

  Result<void> start_sim(const std::vector<std::string>& extra) {
    const auto i = sims.size();
    const auto ready = dir / fmt::format("sim-{}.json", i);
    std::vector<std::string> argv{opts.binary.string(), "sim", "--listen", "127.0.0.1:0", "--ready-file",
                                  ready.string(), "--output-dir", (dir / fmt::format("sim-{}", i)).string(),
                                  "--log-level", "warn", "--seed", std::to_string(100 + i)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = Child::spawn(argv, dir / fmt::format("sim-{}.log", i));
    if (!child) return child.error();
    auto doc = wait_ready(ready, *child, 20s);
    if (!doc) return fail(doc.error().code, "simulated backend " + std::to_string(i) + ": " + doc.error().message);
    sim_urls.push_back("http://" + std::string(doc->at("http").as_string()));
    sims.push_back(std::move(*child));
    return {};
  }

  Result<void> start_farm(const std::vector<std::string>& extra = {}) {
    const auto ready = dir / "farm.json";
    std::filesystem::remove(ready);
    std::vector<std::string> argv{opts.binary.string(), "serve", "--listen", "127.0.0.1:0", "--ready-file",
                                  ready.string(), "--data", (dir / "farm").string(), "--log-level", "warn",
                                  "--retry-backoff", "0.2", "--probe-interval", "0.25", "--start-timeout", "10",
                                  "--silence-timeout", "30", "--grace", "2"};
    for (std::size_t i = 0; i < sim_urls.size(); ++i) {
      argv.push_back("--backend");
      argv.push_back(fmt::format("sim-{}={}", i, sim_urls[i]));
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = Child::spawn(argv, dir / "farm.log");
    if (!child) return child.error();
    auto doc = wait_ready(ready, *child, 20s);
    if (!doc) return fail(doc.error().code, "farm: " + doc.error().message);
    farm_url = "http://" + std::string(doc->at("http").as_string());
    farm = std::move(*child);
    // Wait until every backend is up, so that load starts on the whole farm.
    for (int i = 0; i < 200; ++i) {
      auto b = get_json(farm_url + "/api/farm/backends");
      if (b && b->is_object()) {
        const auto& list = b->get_object().at("backends").as_array();
        const auto up = std::count_if(list.begin(), list.end(), [](const json::value& v) {
          return v.at("state").as_string() == "up";
        });
        if (static_cast<std::size_t>(up) == sim_urls.size()) return {};
      }
      std::this_thread::sleep_for(50ms);
    }
    return fail(Errc::kTimeout, "the farm's backends did not come up (log: " + (dir / "farm.log").string() + ")");
  }

  Result<net::Response> call(net::Method method, const std::string& url, std::string body = {}) {
    net::Headers headers;
    if (!body.empty()) headers.set("Content-Type", "application/json");
    net::HttpClientOptions ho;
    ho.request_timeout = 30s;
    auto fut = asio::co_spawn(io.executor(), net::http_request(io.executor(), method, url, headers, body, ho),
                              asio::use_future);
    return fut.get();
  }

  Result<json::value> get_json(const std::string& url) {
    auto r = call(net::Method::kGet, url);
    if (!r) return r.error();
    if (r->status != 200) return fail(Errc::kProtocol, "GET " + url + ": " + std::to_string(r->status));
    auto doc = comfy::parse_json(r->body);
    if (!doc) return doc.error();
    return std::move(*doc);
  }

  /// Every job the farm knows, with attempts.
  Result<std::vector<json::object>> farm_jobs() {
    std::vector<json::object> out;
    std::string after;
    for (;;) {
      auto page = get_json(farm_url + "/api/farm/jobs?limit=1000" + (after.empty() ? "" : "&after=" + after));
      if (!page) return page.error();
      for (const auto& j : page->at("jobs").as_array()) {
        auto detail = get_json(farm_url + "/api/farm/jobs/" + std::string(j.at("id").as_string()));
        if (!detail) return detail.error();
        out.push_back(detail->as_object());
      }
      const auto& next = page->at("next_after");
      if (next.is_null()) break;
      after = std::to_string(next.to_number<std::int64_t>());
    }
    return out;
  }

  /// How many times each prompt id is in the simulators' /history (the ones still running).
  std::map<std::string, int> rendered() {
    std::map<std::string, int> count;
    for (std::size_t i = 0; i < sim_urls.size(); ++i) {
      if (!sims[i].running()) continue;
      auto h = get_json(sim_urls[i] + "/history");
      if (!h || !h->is_object()) continue;
      for (const auto& [id, entry] : h->get_object()) {
        const auto* st = entry.as_object().if_contains("status");
        if (st != nullptr && st->is_object() && st->as_object().at("status_str").as_string() == "success") {
          ++count[std::string(id)];
        }
      }
    }
    return count;
  }
};

LoadOptions load_options(const Cluster& c, const json::object& workflow, const std::string& scenario) {
  LoadOptions o;
  o.server = c.farm_url;
  o.workflow = workflow;
  o.workflow_name = c.opts.workflow_name.empty() ? "built-in txt2img" : c.opts.workflow_name;
  o.jobs = c.opts.jobs;
  o.concurrency = c.opts.concurrency;
  o.timeout = c.opts.timeout;
  o.scenario = scenario;
  return o;
}

void expect(ScenarioReport& r, std::string name, bool pass, std::string detail) {
  r.expectations.push_back({std::move(name), pass, std::move(detail)});
}

std::string count_text(const std::map<std::string, std::uint64_t>& m) {
  std::string out;
  for (const auto& [k, v] : m) out += (out.empty() ? "" : ", ") + k + " " + std::to_string(v);
  return out.empty() ? "none" : out;
}

/// Each succeeded prompt id rendered exactly once on the live backends (and never on a live one
/// when the farm says it was rendered on a backend that died).
std::pair<bool, std::string> exactly_once(Cluster& c, const LoadRun& run) {
  const auto counts = c.rendered();
  std::size_t twice = 0;
  std::size_t missing = 0;
  for (const auto& j : run.jobs) {
    if (j.outcome != JobResult::Outcome::kSucceeded) continue;
    const auto it = counts.find(j.prompt_id);
    const int n = it == counts.end() ? 0 : it->second;
    if (n > 1) ++twice;
    if (n == 0) ++missing;  // rendered on a backend that is gone: checked through the farm
  }
  return {twice == 0, fmt::format("{} rendered twice, {} on a backend no longer running", twice, missing)};
}

// ---- the scenarios ----------------------------------------------------------------------------

json::object workflow_of(const ScenarioOptions& o) { return o.workflow.empty() ? default_workflow() : o.workflow; }

Result<ScenarioReport> validation(const ScenarioOptions& o) {
  ScenarioReport r;
  r.name = "validation";
  Cluster c(o);
  if (auto p = c.prepare(r.name); !p) return p.error();
  if (auto s = c.start_sim({"--time-scale", "0.02", "--fault", "node-error=ImageInvert"}); !s) return s.error();
  if (auto f = c.start_farm(); !f) return f.error();
  c.log("validation: malformed and empty prompts, a workflow that fails at run time, a book page");

  // 1. Malformed and empty prompts: ComfyUI's error body, nothing queued.
  auto empty = c.call(net::Method::kPost, c.farm_url + "/prompt", "{}");
  auto empty_sim = c.call(net::Method::kPost, c.sim_urls[0] + "/prompt", "{}");
  expect(r, "an empty prompt is rejected with ComfyUI's error",
         empty && empty_sim && empty->status == 400 && empty->body == empty_sim->body,
         empty ? fmt::format("farm {} {}", empty->status, empty->body.substr(0, 120)) : empty.error().message);
  json::object bad = workflow_of(o);
  for (auto& [id, node] : bad) {
    auto& inputs = node.as_object()["inputs"].as_object();
    if (inputs.contains("steps")) inputs["steps"] = -5;  // below the minimum
  }
  json::object body;
  body["prompt"] = bad;
  const std::string bad_text = comfy::dumps(body);
  auto farm_bad = c.call(net::Method::kPost, c.farm_url + "/prompt", bad_text);
  auto sim_bad = c.call(net::Method::kPost, c.sim_urls[0] + "/prompt", bad_text);
  expect(r, "an invalid workflow gets ComfyUI's exact 400 body",
         farm_bad && sim_bad && farm_bad->status == 400 && farm_bad->body == sim_bad->body,
         farm_bad ? fmt::format("farm {}, sim {}", farm_bad->status, sim_bad ? sim_bad->status : 0) : farm_bad.error().message);
  auto malformed = c.call(net::Method::kPost, c.farm_url + "/prompt", "{\"prompt\": {");
  expect(r, "malformed JSON is rejected with a JSON error", malformed && malformed->status == 400 &&
             malformed->body.find("\"error\"") != std::string::npos,
         malformed ? std::to_string(malformed->status) : malformed.error().message);

  // 2. Under load: every job of an invalid workflow is counted as workflow_invalid.
  auto lo = load_options(c, bad, r.name);
  lo.jobs = std::min<std::uint64_t>(o.jobs, 12);
  auto run = run_load(lo);
  if (!run) return run.error();
  const auto summary = summarize(run->jobs, run->info);
  const auto wi = summary.errors_by_class.contains("workflow_invalid") ? summary.errors_by_class.at("workflow_invalid") : 0;
  expect(r, "invalid jobs are counted as workflow_invalid", wi == summary.jobs,
         fmt::format("{} of {} ({})", wi, summary.jobs, count_text(summary.errors_by_class)));
  auto queued = c.get_json(c.farm_url + "/api/farm/jobs");
  expect(r, "nothing invalid was queued", queued && queued->at("jobs").as_array().empty(),
         queued ? fmt::format("{} jobs in the farm", queued->at("jobs").as_array().size()) : queued.error().message);

  // 3. A run-time node error: failed once, not retried, flagged; a book page needs regeneration.
  json::object failing = workflow_of(o);
  json::object inv;
  inv["class_type"] = "ImageInvert";
  std::string decode_id;
  for (auto& [id, node] : failing) {
    if (node.as_object().at("class_type").as_string() == "VAEDecode") decode_id = id;
  }
  json::object book;
  json::array pages;
  pages.push_back(json::object{{"workflow", workflow_of(o)}});
  if (!decode_id.empty()) {
    json::object inputs;
    inputs["image"] = json::array{json::value(decode_id), 0};
    inv["inputs"] = std::move(inputs);
    failing["900"] = std::move(inv);
    json::object pv;
    pv["class_type"] = "PreviewImage";
    pv["inputs"] = json::object{{"images", json::array{"900", 0}}};
    failing["901"] = std::move(pv);
  }
  pages.push_back(json::object{{"workflow", failing}});
  book["pages"] = std::move(pages);
  book["batch_id"] = "scenario-book";
  auto posted = c.call(net::Method::kPost, c.farm_url + "/api/farm/batches", comfy::dumps(book));
  if (!posted || posted->status != 201) {
    expect(r, "a book is accepted", false, posted ? posted->body.substr(0, 200) : posted.error().message);
    return r;
  }
  json::value status;
  for (int i = 0; i < 600; ++i) {
    auto b = c.get_json(c.farm_url + "/api/farm/batches/scenario-book");
    if (b) {
      status = *b;
      const auto& counts = b->at("counts");
      if (counts.at("pending").to_number<std::int64_t>() + counts.at("rendering").to_number<std::int64_t>() == 0) break;
    }
    std::this_thread::sleep_for(50ms);
  }
  bool flagged = false;
  std::string attempts;
  if (status.is_object()) {
    for (const auto& p : status.at("pages").as_array()) {
      if (p.at("badge").as_string() == "Needs attention" && p.at("needs_regeneration").as_bool()) {
        flagged = true;
        attempts = std::to_string(p.at("attempts").to_number<std::int64_t>());
      }
    }
  }
  expect(r, "the failing page is flagged needs_regeneration (Needs attention)", flagged,
         status.is_object() ? comfy::dumps(status.at("counts")) : "no batch status");
  expect(r, "a deterministic node error is not retried", attempts == "1", "attempts: " + (attempts.empty() ? "?" : attempts));
  r.run = std::move(*run);
  return r;
}

Result<ScenarioReport> oom(const ScenarioOptions& o) {
  ScenarioReport r;
  r.name = "oom";
  Cluster c(o);
  if (auto p = c.prepare(r.name); !p) return p.error();
  if (auto s = c.start_sim({"--time-scale", "0.02", "--fault", "oom=every:3"}); !s) return s.error();
  if (auto s = c.start_sim({"--time-scale", "0.02"}); !s) return s.error();
  if (auto f = c.start_farm(); !f) return f.error();
  c.log("oom: sim-0 raises OutOfMemoryError on every third sampler run");
  auto run = run_load(load_options(c, workflow_of(o), r.name));
  if (!run) return run.error();
  const auto summary = summarize(run->jobs, run->info);
  expect(r, "every job succeeds", summary.succeeded == summary.jobs,
         fmt::format("{} of {} ({})", summary.succeeded, summary.jobs, count_text(summary.errors_by_class)));
  auto jobs = c.farm_jobs();
  if (!jobs) return jobs.error();
  std::size_t retried = 0;
  std::size_t freed = 0;
  std::vector<double> waits;
  for (const auto& j : *jobs) {
    const auto& att = j.at("attempts").as_array();
    for (std::size_t k = 0; k + 1 < att.size(); ++k) {
      if (att[k].at("outcome").as_string() != "oom") continue;
      ++retried;
      const auto& err = att[k].at("error");
      if (err.is_object() && err.as_object().contains("freed_backend") && err.at("freed_backend").as_bool()) ++freed;
      const auto end = att[k].at("ended_at");
      if (end.is_int64()) waits.push_back(static_cast<double>(att[k + 1].at("started_at").as_int64() - end.as_int64()));
    }
  }
  std::sort(waits.begin(), waits.end());
  expect(r, "the backend's memory is freed (/free) before the retry", retried > 0 && freed == retried,
         fmt::format("{} of {} out-of-memory attempts followed by /free", freed, retried));
  expect(r, "out-of-memory attempts are retried and then succeed", retried > 0 && summary.succeeded == summary.jobs,
         fmt::format("{} retries after oom; wait before the retry: median {:.0f} ms, max {:.0f} ms", retried,
                     waits.empty() ? 0.0 : waits[waits.size() / 2], waits.empty() ? 0.0 : waits.back()));
  auto [once, text] = exactly_once(c, *run);
  expect(r, "nothing rendered twice", once, text);
  r.run = std::move(*run);
  r.sla = evaluate(o.sla, summary, r.run->info);
  return r;
}

Result<ScenarioReport> network_blip(const ScenarioOptions& o) {
  ScenarioReport r;
  r.name = "network-blip";
  Cluster c(o);
  if (auto p = c.prepare(r.name); !p) return p.error();
  for (int i = 0; i < 2; ++i) {
    if (auto s = c.start_sim({"--time-scale", "0.05"}); !s) return s.error();
  }
  if (auto f = c.start_farm(); !f) return f.error();
  auto lo = load_options(c, workflow_of(o), r.name);
  Result<LoadRun> run = fail(Errc::kInternal, "not run");
  std::atomic<bool> load_done{false};
  std::thread load([&] {
    run = run_load(lo);
    load_done = true;
  });
  // The blip starts once a backend runs a job of the load (a fixed delay can miss a short load
  // altogether), and lasts 2 s or until the load ends, whichever comes first.
  for (int i = 0; i < 400 && !load_done; ++i) {
    auto b = c.get_json(c.farm_url + "/api/farm/backends");
    bool busy = false;
    if (b) {
      for (const auto& be : b->at("backends").as_array()) busy = busy || !be.at("current_jobs").as_array().empty();
    }
    if (busy) break;
    std::this_thread::sleep_for(10ms);
  }
  c.log("network-blip: WebSockets dropped at every prompt start and 150 ms HTTP latency, for up to 2 s");
  const std::int64_t blip_on = epoch_ms();
  for (const auto& url : c.sim_urls) {
    (void)c.call(net::Method::kPost, url + "/sim/faults", R"({"ws-drop": 1, "http-latency": 150})");
  }
  for (int i = 0; i < 40 && !load_done; ++i) std::this_thread::sleep_for(50ms);
  for (const auto& url : c.sim_urls) (void)c.call(net::Method::kDelete, url + "/sim/faults");
  const std::int64_t blip_off = epoch_ms();
  c.log("network-blip: faults off");
  load.join();
  if (!run) return run.error();
  const auto summary = summarize(run->jobs, run->info);
  const auto hit = std::count_if(run->jobs.begin(), run->jobs.end(), [&](const JobResult& j) {
    return j.sent_at != 0 && j.sent_at <= blip_off && (j.ended_at == 0 || j.ended_at >= blip_on);
  });
  expect(r, "the blip hit jobs in flight", hit > 0,
         fmt::format("{} of {} jobs in flight during the {} ms blip", hit, run->jobs.size(), blip_off - blip_on));
  expect(r, "every job completes (none lost)", summary.succeeded == summary.jobs,
         fmt::format("{} of {} ({})", summary.succeeded, summary.jobs, count_text(summary.errors_by_class)));
  auto [once, text] = exactly_once(c, *run);
  expect(r, "no job duplicated", once, text);
  r.run = std::move(*run);
  r.sla = evaluate(o.sla, summary, r.run->info);
  return r;
}

Result<ScenarioReport> crash(const ScenarioOptions& o) {
  ScenarioReport r;
  r.name = "crash";
  Cluster c(o);
  if (auto p = c.prepare(r.name); !p) return p.error();
  for (int i = 0; i < 3; ++i) {
    if (auto s = c.start_sim({"--time-scale", "0.1"}); !s) return s.error();
  }
  if (auto f = c.start_farm(); !f) return f.error();
  auto lo = load_options(c, workflow_of(o), r.name);
  Result<LoadRun> run = fail(Errc::kInternal, "not run");
  std::thread load([&] { run = run_load(lo); });
  // Kill sim-0 while it runs something.
  std::int64_t killed_at = 0;
  for (int i = 0; i < 400 && killed_at == 0; ++i) {
    auto b = c.get_json(c.farm_url + "/api/farm/backends");
    if (b) {
      for (const auto& be : b->at("backends").as_array()) {
        if (be.at("id").as_string() == "sim-0" && !be.at("current_jobs").as_array().empty()) {
          // The clock is read before the kill: kill_now() also waits for the process to be
          // reaped, and the farm may already have requeued its jobs by then.
          killed_at = epoch_ms();
          c.sims[0].kill_now();
          c.log("crash: sim-0 SIGKILLed while it held " +
                std::to_string(be.at("current_jobs").as_array().size()) + " job(s)");
          break;
        }
      }
    }
    if (killed_at == 0) std::this_thread::sleep_for(25ms);
  }
  load.join();
  if (!run) return run.error();
  const auto summary = summarize(run->jobs, run->info);
  expect(r, "the backend was killed mid-run", killed_at != 0, killed_at != 0 ? "SIGKILL sent" : "sim-0 never got a job");
  expect(r, "every job completes elsewhere", summary.succeeded == summary.jobs,
         fmt::format("{} of {} ({})", summary.succeeded, summary.jobs, count_text(summary.errors_by_class)));
  auto jobs = c.farm_jobs();
  if (!jobs) return jobs.error();
  std::size_t affected = 0;
  std::int64_t recovered_at = killed_at;
  std::size_t double_success = 0;
  for (const auto& j : *jobs) {
    const auto& att = j.at("attempts").as_array();
    std::size_t successes = 0;
    for (std::size_t k = 0; k < att.size(); ++k) {
      if (att[k].at("outcome").as_string() == "succeeded") ++successes;
      if (att[k].at("backend").as_string() == "sim-0" && att[k].at("outcome").as_string() == "backend_lost") {
        ++affected;
        if (k + 1 < att.size()) recovered_at = std::max(recovered_at, att[k + 1].at("started_at").as_int64());
      }
    }
    if (successes > 1) ++double_success;
  }
  if (killed_at != 0) r.recovery_s = static_cast<double>(recovered_at - killed_at) / 1000.0;
  const double target = o.sla.recovery_s.value_or(120.0);
  expect(r, "its jobs are requeued and running again within the recovery target",
         affected > 0 && r.recovery_s && *r.recovery_s <= target,
         fmt::format("{} job(s) affected; recovery {:.3f} s (target <= {:.0f} s)", affected, r.recovery_s.value_or(-1), target));
  auto [once, text] = exactly_once(c, *run);
  expect(r, "no job rendered twice", once && double_success == 0,
         text + fmt::format("; {} job(s) with two successful attempts", double_success));
  r.run = std::move(*run);
  r.sla = evaluate(o.sla, summary, r.run->info, r.recovery_s);
  return r;
}

/// The workflow with a slow node (ImageBlur) inserted before its first SaveImage.
json::object with_slow_node(json::object wf) {
  for (auto& [id, node] : wf) {
    auto& n = node.as_object();
    if (n.at("class_type").as_string() != "SaveImage") continue;
    auto& inputs = n["inputs"].as_object();
    json::object blur;
    blur["class_type"] = "ImageBlur";
    json::object bi;
    bi["image"] = inputs["images"];
    bi["blur_radius"] = 1;
    bi["sigma"] = 1.0;
    blur["inputs"] = std::move(bi);
    inputs["images"] = json::array{"950", 0};
    wf["950"] = std::move(blur);
    break;
  }
  return wf;
}

Result<ScenarioReport> latency(const ScenarioOptions& o) {
  ScenarioReport r;
  r.name = "latency";
  Cluster c(o);
  if (auto p = c.prepare(r.name); !p) return p.error();
  // ImageBlur made slow: 1,500 ms of model time, 150 ms at --time-scale 0.1.
  const auto timing = c.dir / "slow-node.json";
  {
    std::ofstream out(timing);
    out << R"({"schema": "comfyfarm-sim-timing/1", "classes": {"ImageBlur": {"base_ms": 1500}}})";
  }
  constexpr double kTimeScale = 0.1;
  constexpr double kAddedMs = 1500 * kTimeScale;
  for (int i = 0; i < 2; ++i) {
    if (auto s = c.start_sim({"--time-scale", "0.1", "--timing", timing.string()}); !s) return s.error();
  }
  // One job per backend at a time: no queueing, so the node's time adds straight to p95. The
  // farm holds one prompt per backend (--depth 1): with its default depth of 2 it may queue a
  // job behind a backend's running prompt when that one is expected to end first, and on a
  // loaded machine that one queued job (a whole job's time) becomes the p95 of a short run.
  if (auto f = c.start_farm({"--depth", "1"}); !f) return f.error();
  auto base_opts = load_options(c, workflow_of(o), r.name);
  base_opts.concurrency = 2;
  base_opts.warmup = 2;
  auto base = run_load(base_opts);
  if (!base) return base.error();
  auto slow_opts = base_opts;
  slow_opts.workflow = with_slow_node(workflow_of(o));
  auto slow = run_load(slow_opts);
  if (!slow) return slow.error();
  const auto sb = summarize(base->jobs, base->info);
  const auto ss = summarize(slow->jobs, slow->info);
  const double p95b = sb.latency.percentile(95);
  const double p95s = ss.latency.percentile(95);
  const double rise = p95s - p95b;
  c.log(fmt::format("latency: p95 {:.0f} ms without the slow node, {:.0f} ms with it", p95b, p95s));
  expect(r, "p95 rises by the slow node's modelled time (within 30%)",
         rise >= kAddedMs * 0.7 && rise <= kAddedMs * 1.3,
         fmt::format("p95 {:.0f} -> {:.0f} ms: +{:.0f} ms, predicted +{:.0f} ms", p95b, p95s, rise, kAddedMs));
  // An SLA between the two: the baseline passes it, the slow run breaches it.
  SlaTargets sla;
  sla.p95_s = (p95b + kAddedMs / 2) / 1000.0;
  const auto vb = evaluate(sla, sb, base->info);
  const auto vs = evaluate(sla, ss, slow->info);
  expect(r, "the SLA verdict reflects it (baseline passes, slow run breaches)", vb.pass() && !vs.pass(),
         fmt::format("p95 target {:.3f} s: baseline {}, slow {}", *sla.p95_s, vb.pass() ? "pass" : "breach",
                     vs.pass() ? "pass" : "breach"));
  r.sla = vs;
  r.run = std::move(*slow);
  return r;
}

}  // namespace

bool ScenarioReport::pass() const {
  return !expectations.empty() &&
         std::all_of(expectations.begin(), expectations.end(), [](const Expectation& e) { return e.pass; });
}

const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names{"validation", "oom", "network-blip", "crash", "latency"};
  return names;
}

Result<ScenarioReport> run_scenario(const std::string& name, const ScenarioOptions& options) {
  if (options.binary.empty()) return fail(Errc::kInvalidArgument, "no comfyfarm binary to start");
  if (name == "validation") return validation(options);
  if (name == "oom") return oom(options);
  if (name == "network-blip") return network_blip(options);
  if (name == "crash") return crash(options);
  if (name == "latency") return latency(options);
  return fail(Errc::kInvalidArgument, "unknown scenario '" + name + "'");
}

json::value to_json(const ScenarioReport& report) {
  json::object o;
  o["name"] = report.name;
  o["pass"] = report.pass();
  json::array ex;
  for (const auto& e : report.expectations) {
    json::object x;
    x["name"] = e.name;
    x["pass"] = e.pass;
    x["detail"] = e.detail;
    ex.push_back(std::move(x));
  }
  o["expectations"] = std::move(ex);
  o["recovery_s"] = report.recovery_s ? json::value(*report.recovery_s) : json::value(nullptr);
  if (report.run) o["summary"] = summary_json(summarize(report.run->jobs, report.run->info));
  if (report.sla) o["sla"] = sla_json(*report.sla);
  return o;
}

json::object default_workflow() {
  static const char* kText = R"({
  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
  "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
  "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
  "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
  "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}},
  "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
  "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "loadtest", "images": ["8", 0]}}
})";
  return comfy::parse_json(kText).value().as_object();
}

}  // namespace comfyfarm::loadtest
