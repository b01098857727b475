// `comfyfarm loadtest`: replays a workflow against any ComfyUI-compatible server, measures every
// job, and checks the result against SLA targets; or runs the fault scenarios (docs/sla.md).
#include "command.hpp"

#include "comfy/json_util.hpp"
#include "loadtest/results.hpp"
#include "loadtest/runner.hpp"
#include "loadtest/scenario.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>

namespace comfyfarm::app {

namespace {

namespace json = boost::json;
namespace lt = loadtest;

struct LoadFlags {
  std::string server;
  std::string workflow;
  std::optional<std::uint64_t> jobs;
  std::uint64_t concurrency = 4;
  double timeout_s = 420;
  std::string output;
  std::optional<double> rate;
  std::optional<double> duration;
  std::uint64_t warmup = 0;
  std::string vary = "seed";
  std::string ndjson;
  std::string sla_file;
  std::optional<double> sla_p95;
  std::optional<double> sla_error_rate;
  std::optional<double> sla_throughput;
  std::string scenario;
  std::string csv;
  std::string work_dir;
};

std::string one_line(std::string s) {
  for (auto& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

int harness_error(const std::string& message) {
  std::cerr << "comfyfarm loadtest: error: " << one_line(message) << "\n";
  return 2;
}

Result<void> write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) return fail(Errc::kUnavailable, "cannot write " + path);
  return {};
}

std::string seconds(double ms) { return fmt::format("{:.2f} s", ms / 1000.0); }

void print_summary(const lt::Summary& s) {
  std::cout << fmt::format("jobs {}  succeeded {}  failed {}  error rate {:.2f}%\n", s.jobs, s.succeeded,
                           s.failed, s.error_rate * 100.0);
  std::cout << fmt::format("throughput {:.2f} jobs/s, {:.1f} images/min over {:.1f} s\n",
                           s.throughput_jobs_s, s.throughput_images_min, s.duration_s);
  if (s.latency.count() > 0) {
    std::cout << fmt::format("latency   p50 {}  p90 {}  p95 {}  p99 {}  max {}\n",
                             seconds(s.latency.percentile(50)), seconds(s.latency.percentile(90)),
                             seconds(s.latency.percentile(95)), seconds(s.latency.percentile(99)),
                             seconds(s.latency.max()));
  }
  if (s.queue_wait.count() > 0) {
    std::cout << fmt::format("queue     p50 {}  p95 {}   execution p50 {}  p95 {}\n",
                             seconds(s.queue_wait.percentile(50)), seconds(s.queue_wait.percentile(95)),
                             seconds(s.execution.percentile(50)), seconds(s.execution.percentile(95)));
  }
  for (const auto& [cls, n] : s.errors_by_class) std::cout << "errors    " << cls << ": " << n << "\n";
  for (const auto& [b, c] : s.per_backend) {
    std::cout << fmt::format("backend   {}: {} jobs, {} failed\n", b, c.jobs, c.failed);
  }
}

void print_verdict(const lt::SlaVerdict& v) {
  for (const auto& c : v.checks) {
    std::cout << fmt::format("SLA {}  {} = {:.3f}{}{} (target {})\n", c.pass ? "pass  " : "BREACH", c.name,
                             c.measured, c.unit.empty() ? "" : " ", c.unit, c.target);
  }
  std::cout << (v.pass() ? "SLA verdict: PASS\n" : "SLA verdict: BREACH\n");
}

Result<lt::SlaTargets> sla_of(const LoadFlags& f) {
  lt::SlaTargets t = lt::seed_sla();
  if (!f.sla_file.empty()) {
    auto loaded = lt::load_sla_file(f.sla_file);
    if (!loaded) return loaded.error();
    t = *loaded;
  }
  if (f.sla_p95) t.p95_s = *f.sla_p95;
  if (f.sla_error_rate) t.error_rate = *f.sla_error_rate;
  if (f.sla_throughput) t.throughput_img_min = *f.sla_throughput;
  return t;
}

int run_scenarios(const LoadFlags& f, const lt::SlaTargets& sla) {
  lt::ScenarioOptions so;
  char self[4096];
  const auto n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return harness_error("cannot find the comfyfarm executable (/proc/self/exe)");
  so.binary = std::string(self, static_cast<std::size_t>(n));
  if (f.jobs) so.jobs = *f.jobs;
  so.concurrency = f.concurrency;
  so.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(f.timeout_s * 1000));
  so.work_dir = f.work_dir;
  so.sla = sla;
  so.log = [](const std::string& line) { std::cerr << "loadtest: " << line << "\n"; };
  if (!f.workflow.empty()) {
    std::ifstream in(f.workflow);
    if (!in) return harness_error("--workflow: cannot read " + f.workflow);
    auto doc = comfy::parse_json(std::string((std::istreambuf_iterator<char>(in)), {}));
    if (!doc || !doc->is_object()) return harness_error("--workflow " + f.workflow + ": not a JSON object");
    so.workflow = doc->get_object();
    so.workflow_name = f.workflow;
  }
  std::vector<std::string> names;
  if (f.scenario == "all") {
    names = lt::scenario_names();
  } else {
    names.push_back(f.scenario);
  }
  json::array reports;
  bool all_pass = true;
  for (const auto& name : names) {
    std::cout << "== scenario " << name << "\n" << std::flush;
    auto r = lt::run_scenario(name, so);
    if (!r) return harness_error("scenario " + name + ": " + r.error().message);
    for (const auto& e : r->expectations) {
      std::cout << (e.pass ? "  pass  " : "  FAIL  ") << e.name << " — " << e.detail << "\n";
    }
    if (r->recovery_s) std::cout << fmt::format("  recovery {:.3f} s\n", *r->recovery_s);
    std::cout << "  verdict: " << (r->pass() ? "PASS" : "FAIL") << "\n" << std::flush;
    all_pass = all_pass && r->pass();
    reports.push_back(lt::to_json(*r));
  }
  if (!f.output.empty()) {
    json::object out;
    out["schema"] = "comfyfarm.loadtest-scenarios/1";
    out["pass"] = all_pass;
    out["scenarios"] = std::move(reports);
    if (auto w = write_text(f.output, comfy::dumps(out) + "\n"); !w) return harness_error(w.error().message);
  }
  std::cout << (all_pass ? "scenarios: PASS\n" : "scenarios: FAIL\n");
  return all_pass ? 0 : 3;
}

int run_loadtest(const LoadFlags& f) {
  auto sla = sla_of(f);
  if (!sla) return harness_error(sla.error().message);
  if (!f.scenario.empty()) return run_scenarios(f, *sla);
  if (f.server.empty()) return harness_error("--server is required (or --scenario)");
  if (f.workflow.empty()) return harness_error("--workflow is required (or --scenario)");
  std::ifstream in(f.workflow);
  if (!in) return harness_error("--workflow: cannot read " + f.workflow);
  auto doc = comfy::parse_json(std::string((std::istreambuf_iterator<char>(in)), {}));
  if (!doc || !doc->is_object()) {
    return harness_error("--workflow " + f.workflow + ": not a JSON object" +
                         (doc ? std::string() : ": " + doc.error().message));
  }

  lt::LoadOptions o;
  o.server = f.server;
  while (!o.server.empty() && o.server.back() == '/') o.server.pop_back();
  o.workflow = doc->get_object();
  o.workflow_name = f.workflow;
  o.jobs = f.jobs.value_or(12);
  o.jobs_given = f.jobs.has_value();
  o.concurrency = f.concurrency;
  o.rate = f.rate;
  o.duration_s = f.duration;
  o.warmup = f.warmup;
  o.vary_seed = f.vary == "seed";
  o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(f.timeout_s * 1000));

  std::ofstream ndjson;
  if (!f.ndjson.empty()) {
    ndjson.open(f.ndjson, std::ios::trunc);
    if (!ndjson) return harness_error("--ndjson: cannot write " + f.ndjson);
    o.on_job = [&ndjson](const lt::JobResult& j) {
      ndjson << json::serialize(lt::to_json(j)) << '\n';
      ndjson.flush();
    };
  }
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    o.on_progress = [](const lt::Progress& p) {
      std::cerr << fmt::format("\r{:>6.0f} s  done {}  failed {}  in flight {}  {:.2f} jobs/s  p95 {:.2f} s   ",
                               p.elapsed_s, p.done, p.failed, p.in_flight, p.throughput_jobs_s, p.p95_s)
                << std::flush;
    };
  }
  auto run = lt::run_load(o);
  if (tty) std::cerr << "\n";
  if (!run) return harness_error(run.error().message);
  const auto summary = lt::summarize(run->jobs, run->info);
  const auto verdict = lt::evaluate(*sla, summary, run->info);
  print_summary(summary);
  print_verdict(verdict);

  if (!f.output.empty()) {
    json::object out;
    out["schema"] = "comfyfarm.loadtest/1";
    json::object info;
    info["server"] = run->info.server;
    info["workflow"] = run->info.workflow;
    info["mode"] = run->info.mode;
    info["concurrency"] = run->info.concurrency;
    info["rate"] = run->info.rate;
    info["warmup"] = f.warmup;
    info["vary"] = f.vary;
    info["timeout_s"] = f.timeout_s;
    info["started_at"] = run->info.started_at;
    info["ended_at"] = run->info.ended_at;
    info["farm"] = run->farm;
    out["run"] = std::move(info);
    out["summary"] = lt::summary_json(summary);
    out["sla"] = lt::sla_json(verdict);
    if (auto w = write_text(f.output, comfy::dumps(out) + "\n"); !w) return harness_error(w.error().message);
  }
  if (!f.csv.empty()) {
    if (auto w = lt::write_csv(f.csv, run->jobs, run->info); !w) return harness_error(w.error().message);
  }
  if (!verdict.pass()) {
    for (const auto& line : lt::breach_lines(verdict)) std::cerr << line << "\n";
    return 3;
  }
  return 0;
}

}  // namespace

CommandMain register_loadtest(CLI::App& root) {
  auto f = std::make_shared<LoadFlags>();
  auto* cmd = root.add_subcommand(
      "loadtest",
      "Replay a workflow against a ComfyUI server or the farm, measure every job and check SLA\n"
      "targets; or run fault scenarios on a simulated farm (docs/sla.md).");
  cmd->footer(
      "Exit status: 0 the SLA held (every scenario expectation held), 3 a breach (printed on\n"
      "stderr), 2 the harness itself failed (bad flags, server unreachable).\n"
      "Without --sla/--sla-* the seed's targets apply: p95 <= 45 s, error rate <= 2%,\n"
      ">= 20 images/min, >= 5 concurrent jobs.\n"
      "Examples:\n"
      "  comfyfarm loadtest --server http://127.0.0.1:8288 --workflow txt2img.json --jobs 60 \\\n"
      "      --concurrency 5 --timeout 420 --output report.json     # then: jq '.summary' report.json\n"
      "  comfyfarm loadtest --server http://127.0.0.1:8288 --workflow w.json --rate 2 --duration 60\n"
      "  comfyfarm loadtest --scenario all --output scenarios.json");
  cmd->add_option("--server", f->server, "http://HOST:PORT of a ComfyUI server or the farm");
  cmd->add_option("--workflow", f->workflow, "An API-format workflow (\"Save (API Format)\")");
  cmd->add_option("--jobs", f->jobs, "Measured jobs [default: 12; with --duration: no cap]")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}));
  cmd->add_option("--concurrency", f->concurrency, "Closed loop: jobs in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000}));
  cmd->add_option("--timeout", f->timeout_s, "Seconds one job may take from its send")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--output", f->output, "Write the JSON report here (.summary, .sla)");
  cmd->add_option("--rate", f->rate,
                  "Open loop: start this many jobs per second whatever the server does; latency "
                  "counts from each job's intended send time")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--duration", f->duration, "Stop starting jobs after this many seconds")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", f->warmup, "Jobs run first and left out of the results")->capture_default_str();
  cmd->add_option("--vary", f->vary, "seed: a new sampler seed per job so the cache cannot help; none")
      ->capture_default_str()
      ->check(CLI::IsMember({"seed", "none"}));
  cmd->add_option("--ndjson", f->ndjson, "Write one JSON line per job as it ends");
  cmd->add_option("--sla", f->sla_file,
                  "SLA targets file: {\"p95_s\": 45, \"error_rate\": 0.02, \"throughput_img_min\": 20, "
                  "\"min_concurrency\": 5, \"recovery_s\": 120}")
      ->check(CLI::ExistingFile);
  cmd->add_option("--sla-p95", f->sla_p95, "SLA: end-to-end p95 latency at most this many seconds")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--sla-error-rate", f->sla_error_rate, "SLA: failed fraction at most this (0.02 = 2%)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--sla-throughput", f->sla_throughput, "SLA: at least this many images per minute")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--scenario", f->scenario,
                  "Run a fault scenario on a simulated farm: validation, oom, network-blip, crash, "
                  "latency, or all")
      ->check(CLI::IsMember({"validation", "oom", "network-blip", "crash", "latency", "all"}));
  cmd->add_option("--csv", f->csv, "Write Locust-style PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv");
  cmd->add_option("--work-dir", f->work_dir, "Scenarios: keep the processes' data and logs here");
  return [f] { return run_loadtest(*f); };
}

}  // namespace comfyfarm::app
