// `comfyfarm loadtest` as a process against `comfyfarm sim` (real sockets on loopback, the built
// binary): job counts, throughput and latency checked against the sim's timing model, the
// percentile math against the --ndjson records, open-loop latency under an overloaded server (no
// coordinated omission), exit codes, the reports (JSON, NDJSON, Locust CSVs) and the fault
// scenarios.
//
// Expected times come from the model (docs/sim-model.md): the same workflow is played on a
// simulated clock with comfyfarm::sim_model at the sim's --time-scale, so the tests know what
// one job costs without timing anything. The sim paces steps against absolute deadlines, so a job
// never takes less than its modelled time; the upper bounds are generous (a loaded 2-core
// machine) and nothing here asserts the harness's own speed.
#include "support/sim_process.hpp"
#include "support/test_support.hpp"

#include "comfy/json_util.hpp"
#include "loadtest/histogram.hpp"
#include "sim/prompt_run.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_state.hpp"

#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace comfyfarm {
namespace {

namespace json = boost::json;
using loadtest::LatencyHistogram;

std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::filesystem::path workflow(const std::string& name) { return test::shared_dir() / "workflows" / name; }

json::value read_json(const std::filesystem::path& p) {
  auto v = comfy::parse_json(test::read_file(p));
  EXPECT_TRUE(v.has_value()) << p;
  return v ? *v : json::value();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

double num(const json::value& v) { return v.to_number<double>(); }

/// Modelled milliseconds of one txt2img_sd15 job on a sim at `time_scale`: {cold (first job:
/// loads the checkpoint), warm (a new seed: the loaders and text encoders are cached)}. Played
/// on a simulated clock, as docs/sim-model.md describes (run_to_end).
std::pair<double, double> modelled_txt2img_ms(double time_scale) {
  auto data = sim::SimData::load_default();
  EXPECT_TRUE(data) << (data ? "" : data.error().message);
  if (!data) return {0, 0};
  auto settings = sim::SimSettings::defaults(*data);
  settings.time_scale = time_scale;
  sim::SimState state(*data, settings);
  auto wf = read_json(workflow("txt2img_sd15.json")).as_object();
  std::vector<double> totals;
  for (int i = 0; i < 2; ++i) {
    wf["3"].as_object()["inputs"].as_object()["seed"] = 1000 + i;
    sim::PlanRequest req;
    req.item.number = i;
    req.item.prompt_id = "model-" + std::to_string(i);
    req.item.prompt = wf;
    req.item.extra_data.emplace("client_id", "model");
    req.item.outputs_to_execute = {"9"};
    auto run = sim::PromptRun::start(*data, state, std::move(req));
    EXPECT_TRUE(run) << (run ? "" : run.error().message);
    if (!run) return {0, 0};
    double total = 0;
    for (const auto& step : sim::run_to_end(*run, 0)) total += step.delay_ms;
    EXPECT_EQ(run->outcome(), sim::Outcome::kSuccess);
    totals.push_back(total);
  }
  std::cout << "model at --time-scale " << time_scale << ": cold job " << totals[0] << " ms, warm job "
            << totals[1] << " ms\n";
  return {totals[0], totals[1]};
}

/// The measured (non-warm-up) records of an --ndjson file.
std::vector<json::object> measured(const std::vector<json::object>& lines) {
  std::vector<json::object> out;
  for (const auto& l : lines) {
    if (!l.at("warmup").as_bool()) out.push_back(l);
  }
  return out;
}

/// Nearest rank: the smallest value with at least p % of the values at or below it.
double nearest_rank(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto n = static_cast<double>(values.size());
  const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(p / 100.0 * n)));
  return values[std::min(rank, values.size()) - 1];
}

/// The report's latency percentiles against the exact nearest-rank values of the succeeded
/// measured jobs in --ndjson: within the histogram's documented relative error (plus the 0.001 ms
/// floor and the report's rounding).
void expect_percentiles_match(const std::vector<json::object>& lines, const json::value& summary) {
  std::vector<double> lat;
  for (const auto& l : measured(lines)) {
    if (l.at("outcome").as_string() != "succeeded") continue;
    // Each record's latency is its end minus its intended send time.
    EXPECT_DOUBLE_EQ(num(l.at("latency_ms")), num(l.at("ended_at")) - num(l.at("intended_at")));
    lat.push_back(num(l.at("latency_ms")));
  }
  ASSERT_FALSE(lat.empty());
  const auto& lm = summary.at("latency_ms");
  EXPECT_DOUBLE_EQ(num(summary.at("histogram").at("relative_error")), LatencyHistogram::kRelativeError);
  for (const auto& [key, p] : {std::pair{"p50", 50.0}, {"p90", 90.0}, {"p95", 95.0}, {"p99", 99.0}}) {
    const double exact = nearest_rank(lat, p);
    const double reported = num(lm.at(key));
    EXPECT_NEAR(reported, exact, exact * LatencyHistogram::kRelativeError + 0.002)
        << key << " over " << lat.size() << " jobs";
  }
  EXPECT_DOUBLE_EQ(num(lm.at("min")), *std::min_element(lat.begin(), lat.end()));
  EXPECT_DOUBLE_EQ(num(lm.at("max")), *std::max_element(lat.begin(), lat.end()));
}

/// "a,b,\"c,d\"" -> the first line of a CSV file (CRLF-terminated).
std::string first_line(const std::string& text) {
  const auto end = text.find("\r\n");
  return end == std::string::npos ? text : text.substr(0, end);
}

// ---------------------------------------------------------------------------------------------

// Closed loop, one job at a time on one sim: counts, images, throughput and per-job time as the
// model says; warm-up jobs are in --ndjson and out of the summary.
TEST(Loadtest, ClosedLoopMatchesTheTimingModel) {
  constexpr double kScale = 0.1;
  const auto [cold_ms, warm_ms] = modelled_txt2img_ms(kScale);
  ASSERT_GT(warm_ms, 50.0);
  ASSERT_GT(cold_ms, warm_ms);
  test::SimProcess sim({"--time-scale", "0.1", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  constexpr int kJobs = 10;
  auto r = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                               quote(workflow("txt2img_sd15.json")) + " --jobs 10 --warmup 2 --concurrency 1 " +
                               "--timeout 30 --output " + quote(dir.path() / "r.json") +
                               " --ndjson " + quote(dir.path() / "r.ndjson"));
  // Exit 3: the seed's concurrency target (>= 5) is breached at --concurrency 1, nothing else.
  ASSERT_EQ(r.exit_code, 3) << r.err << r.out;
  EXPECT_NE(r.err.find("SLA breach: concurrency"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("SLA breach: p95_latency"), std::string::npos) << r.err;

  const auto report = read_json(dir.path() / "r.json");
  const auto& s = report.at("summary");
  EXPECT_EQ(num(s.at("jobs")), kJobs);
  EXPECT_EQ(num(s.at("succeeded")), kJobs);
  EXPECT_EQ(num(s.at("failed")), 0);
  EXPECT_EQ(num(s.at("error_rate")), 0);
  EXPECT_EQ(num(s.at("images")), kJobs);  // batch_size 1: one image per job
  EXPECT_EQ(report.at("run").at("mode").as_string(), "closed");

  // Throughput: one job at a time, each at least its modelled time (the sim paces against
  // deadlines) plus a round trip; generous above for a loaded machine.
  const double per_job_ms = 1000.0 / num(s.at("throughput").at("jobs_per_s"));
  EXPECT_GE(per_job_ms, warm_ms * 0.95) << "model: " << warm_ms << " ms per warm job";
  EXPECT_LE(per_job_ms, warm_ms * 1.5 + 40) << "model: " << warm_ms << " ms per warm job";
  EXPECT_NEAR(num(s.at("throughput").at("images_per_min")), num(s.at("throughput").at("jobs_per_s")) * 60.0,
              num(s.at("throughput").at("images_per_min")) * 0.01);
  EXPECT_NEAR(num(s.at("duration_s")) * 1000.0, per_job_ms * kJobs, 5.0);
  // Execution (execution_start -> end) of a warm job is the model's time; no queue at C = 1.
  EXPECT_GE(num(s.at("execution_ms").at("p50")), warm_ms * 0.9);
  EXPECT_LE(num(s.at("execution_ms").at("p50")), warm_ms * 1.3 + 20);
  EXPECT_LE(num(s.at("queue_wait_ms").at("p50")), 20.0);
  // Per node: the sampler ran in every measured job.
  ASSERT_TRUE(s.at("per_node").as_object().contains("3 KSampler")) << comfy::dumps(s.at("per_node"));
  EXPECT_EQ(num(s.at("per_node").at("3 KSampler").at("count")), kJobs);

  // --ndjson: the 2 warm-up jobs first, flagged, then the 10 measured ones.
  const auto lines = test::read_jsonl(dir.path() / "r.ndjson");
  ASSERT_EQ(lines.size(), 12u);
  int warm = 0;
  for (const auto& l : lines) {
    if (l.at("warmup").as_bool()) {
      ++warm;
      EXPECT_LT(num(l.at("index")), 2);
    }
    EXPECT_EQ(l.at("outcome").as_string(), "succeeded") << comfy::dumps(l);
    EXPECT_EQ(num(l.at("images")), 1);
    EXPECT_FALSE(l.at("prompt_id").as_string().empty());
  }
  EXPECT_EQ(warm, 2);
  // The first warm-up job loaded the checkpoint (the cold cost the model predicts).
  const auto first = *std::find_if(lines.begin(), lines.end(),
                                   [](const json::object& l) { return num(l.at("index")) == 0; });
  EXPECT_GE(num(first.at("latency_ms")), cold_ms * 0.9);
  // Every measured job has its phases: queue wait and execution add up to its latency (give or
  // take the POST's round trip).
  for (const auto& l : measured(lines)) {
    ASSERT_TRUE(l.at("queue_wait_ms").is_number() && l.at("execution_ms").is_number()) << comfy::dumps(l);
    EXPECT_GE(num(l.at("execution_ms")), warm_ms * 0.9) << comfy::dumps(l);
    EXPECT_LE(num(l.at("queue_wait_ms")) + num(l.at("execution_ms")), num(l.at("latency_ms")) + 1) << comfy::dumps(l);
  }
  expect_percentiles_match(lines, s);
}

// Open loop on an overloaded server: jobs are due at 4x the server's capacity; latency counts
// from each job's intended send time, so the queue the server builds shows in p95. A closed loop
// on the same server sees about one job's time.
TEST(Loadtest, OpenLoopCountsQueueingFromTheIntendedSendTime) {
  constexpr double kScale = 0.05;
  const auto [cold_ms, warm_ms] = modelled_txt2img_ms(kScale);
  ASSERT_GT(warm_ms, 20.0);
  test::SimProcess sim({"--time-scale", "0.05", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  constexpr int kJobs = 40;
  const double rate = 4.0 * 1000.0 / warm_ms;  // jobs/s: 4x capacity
  auto open = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                                  quote(workflow("txt2img_sd15.json")) + " --jobs 40 --warmup 1 --rate " +
                                  std::to_string(rate) + " --timeout 60 --output " + quote(dir.path() / "o.json") +
                                  " --ndjson " + quote(dir.path() / "o.ndjson"));
  ASSERT_TRUE(open.exit_code == 0 || open.exit_code == 3) << open.err << open.out;
  auto closed = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                                    quote(workflow("txt2img_sd15.json")) +
                                    " --jobs 10 --concurrency 1 --timeout 60 --output " +
                                    quote(dir.path() / "c.json"));
  ASSERT_TRUE(closed.exit_code == 0 || closed.exit_code == 3) << closed.err << closed.out;

  const auto o = read_json(dir.path() / "o.json");
  const auto c = read_json(dir.path() / "c.json");
  EXPECT_EQ(o.at("run").at("mode").as_string(), "open");
  EXPECT_EQ(num(o.at("summary").at("jobs")), kJobs);
  EXPECT_EQ(num(o.at("summary").at("succeeded")), kJobs) << comfy::dumps(o.at("summary").at("errors_by_class"));
  const double open_p95 = num(o.at("summary").at("latency_ms").at("p95"));
  const double closed_p95 = num(c.at("summary").at("latency_ms").at("p95"));
  // Job k (k = 1..40 after the warm-up) is due at k*T/4 but cannot end before (k+1)*T on a server
  // that runs one job at a time: its latency is at least about 0.75*k*T. Over 40 jobs p95 is
  // about 29*T; (N/2)*T is a safe floor.
  EXPECT_GE(open_p95, kJobs / 2.0 * warm_ms) << "T = " << warm_ms << " ms";
  EXPECT_LE(closed_p95, 3 * warm_ms + 100) << "T = " << warm_ms << " ms";
  EXPECT_GT(open_p95, 5 * closed_p95);
  // The server's throughput is still its capacity, whatever the offered rate.
  const double per_job_ms = 1000.0 / num(o.at("summary").at("throughput").at("jobs_per_s"));
  EXPECT_GE(per_job_ms, warm_ms * 0.95);

  const auto lines = test::read_jsonl(dir.path() / "o.ndjson");
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kJobs + 1));
  auto jobs = measured(lines);
  std::sort(jobs.begin(), jobs.end(),
            [](const json::object& a, const json::object& b) { return num(a.at("index")) < num(b.at("index")); });
  const double interval_ms = 1000.0 / rate;
  const double first_intended = num(jobs.front().at("intended_at"));
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    const double k = num(j.at("index"));
    // Due on the schedule, whatever the server did (ms-rounded epoch times).
    EXPECT_NEAR(num(j.at("intended_at")) - first_intended, (k - 1) * interval_ms, 2.0) << "job " << k;
    // The queue shows in the latency: at least (k+1)*T from the run's start, minus k*T/4 of
    // schedule (0.9: the ms rounding of the sim's pacing).
    EXPECT_GE(num(j.at("latency_ms")), 0.9 * (k + 1 - k / 4.0) * warm_ms) << "job " << k;
  }
  expect_percentiles_match(lines, o.at("summary"));
}

// Percentiles: the report's p50/p90/p95/p99 against the exact nearest-rank values recomputed
// from --ndjson, over a run with a wide spread of latencies (open loop at twice the capacity of
// a fast sim: each job waits longer than the one before).
TEST(Loadtest, PercentilesAreNearestRankWithinTheHistogramBound) {
  const auto [cold_ms, warm_ms] = modelled_txt2img_ms(0.02);
  ASSERT_GT(warm_ms, 5.0);
  test::SimProcess sim({"--time-scale", "0.02", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  auto r = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                               quote(workflow("txt2img_sd15.json")) + " --jobs 60 --rate " +
                               std::to_string(2.0 * 1000.0 / warm_ms) + " --timeout 60 --output " +
                               quote(dir.path() / "r.json") + " --ndjson " + quote(dir.path() / "r.ndjson"));
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.err << r.out;
  const auto report = read_json(dir.path() / "r.json");
  EXPECT_EQ(num(report.at("summary").at("succeeded")), 60);
  const auto lines = test::read_jsonl(dir.path() / "r.ndjson");
  ASSERT_EQ(lines.size(), 60u);
  // A spread worth checking: the values are not all in one bucket.
  std::vector<double> lat;
  for (const auto& l : lines) lat.push_back(num(l.at("latency_ms")));
  EXPECT_GT(nearest_rank(lat, 99), 2 * nearest_rank(lat, 10));
  expect_percentiles_match(lines, report.at("summary"));
}

// Exit codes: 0 when the SLA holds, 3 on a breach (printed on stderr), 2 for harness errors.
TEST(Loadtest, PassExitsZeroAndWritesLocustCsvs) {
  test::SimProcess sim({"--time-scale", "0.02", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  const auto prefix = dir.path() / "run";
  // The seed's targets: p95 <= 45 s, error rate <= 2 %, >= 20 images/min, >= 5 in flight. The
  // five jobs sent at once first are warm-up (they load the checkpoint).
  auto r = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                               quote(workflow("txt2img_sd15.json")) +
                               " --jobs 10 --warmup 5 --concurrency 5 --timeout 60 --output " +
                               quote(dir.path() / "r.json") +
                               " --csv " + quote(prefix));
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("SLA verdict: PASS"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("SLA breach"), std::string::npos) << r.err;
  const auto report = read_json(dir.path() / "r.json");
  EXPECT_TRUE(report.at("sla").at("pass").as_bool());
  std::vector<std::string> names;
  for (const auto& check : report.at("sla").at("checks").as_array()) {
    names.emplace_back(check.at("name").as_string());
    EXPECT_TRUE(check.at("pass").as_bool()) << comfy::dumps(check);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"p95_latency", "error_rate", "throughput", "concurrency"}));

  // Locust's CSVs: their header lines, CRLF, and the rows for these 10 jobs.
  const auto stats = test::read_file(prefix.string() + "_stats.csv");
  const auto history = test::read_file(prefix.string() + "_stats_history.csv");
  const auto failures = test::read_file(prefix.string() + "_failures.csv");
  EXPECT_EQ(first_line(stats),
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
            "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,"
            "80%,90%,95%,98%,99%,99.9%,99.99%,100%");
  EXPECT_EQ(first_line(history),
            "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
            "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
            "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
            "Total Average Content Size");
  EXPECT_EQ(failures, "Method,Name,Error,Occurrences\r\n");
  EXPECT_NE(stats.find("\r\nJOB,end_to_end,10,0,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\r\nJOB,queue_wait,10,0,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\r\nJOB,execution,10,0,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\r\nJOB,Aggregated,10,0,"), std::string::npos) << stats;
  EXPECT_GE(test::count_lines(history), 2) << history;
  EXPECT_NE(history.find(",5,JOB,Aggregated,"), std::string::npos) << history;  // User Count = C

  // An SLA file without the concurrency target passes at --concurrency 1.
  write_file(dir.path() / "sla.json", R"({"p95_s": 30, "error_rate": 0, "throughput_img_min": 1})");
  auto f = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                               quote(workflow("txt2img_sd15.json")) + " --jobs 3 --concurrency 1 --sla " +
                               quote(dir.path() / "sla.json"));
  EXPECT_EQ(f.exit_code, 0) << f.err << f.out;
}

TEST(Loadtest, BreachExitsThreeAndPrintsTheBreachedLine) {
  test::SimProcess sim({"--time-scale", "0.02", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  auto r = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                               quote(workflow("txt2img_sd15.json")) +
                               " --jobs 5 --concurrency 5 --sla-p95 0.001 --output " + quote(dir.path() / "r.json"));
  ASSERT_EQ(r.exit_code, 3) << r.err << r.out;
  EXPECT_NE(r.err.find("SLA breach: p95_latency"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(target <= 0.001 s)"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;  // only the breached target
  EXPECT_NE(r.out.find("SLA verdict: BREACH"), std::string::npos) << r.out;
  const auto report = read_json(dir.path() / "r.json");  // the report is written all the same
  EXPECT_FALSE(report.at("sla").at("pass").as_bool());
  EXPECT_EQ(num(report.at("summary").at("succeeded")), 5);
}

TEST(Loadtest, HarnessErrorsExitTwo) {
  test::TempDir dir;
  const auto wf = quote(workflow("txt2img_sd15.json"));
  // Nothing listens on a port we just released.
  std::string dead;
  {
    test::SimProcess sim({"--time-scale", "0", "--log-level", "warn"});
    ASSERT_TRUE(sim.ready()) << sim.log();
    dead = sim.url();
  }
  auto unreachable = test::run_comfyfarm("loadtest --server " + dead + " --workflow " + wf + " --jobs 2");
  EXPECT_EQ(unreachable.exit_code, 2) << unreachable.err;
  EXPECT_NE(unreachable.err.find("cannot reach"), std::string::npos) << unreachable.err;

  test::SimProcess sim({"--time-scale", "0", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  auto missing = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " +
                                     quote(dir.path() / "absent.json") + " --jobs 2");
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("absent.json"), std::string::npos) << missing.err;

  write_file(dir.path() / "sla.json", R"({"p95_s": 45, "p99_s": 60})");
  auto bad_sla = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " + wf + " --jobs 2 --sla " +
                                     quote(dir.path() / "sla.json"));
  EXPECT_EQ(bad_sla.exit_code, 2) << bad_sla.err;
  EXPECT_NE(bad_sla.err.find("p99_s"), std::string::npos) << bad_sla.err;

  // A UI-format workflow ("Save", not "Save (API Format)": nodes/links arrays) is refused before
  // any job is sent, with the way out in the message.
  write_file(dir.path() / "ui.json",
             R"({"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 4, "type": "CheckpointLoaderSimple",
                 "widgets_values": ["v1-5-pruned-emaonly.safetensors"]}], "links": [[1, 4, 0, 3, 0, "MODEL"]],
                 "groups": [], "config": {}, "extra": {}, "version": 0.4})");
  auto ui = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " + quote(dir.path() / "ui.json") +
                                " --jobs 2 --output " + quote(dir.path() / "ui-report.json"));
  EXPECT_EQ(ui.exit_code, 2) << ui.err;
  EXPECT_NE(ui.err.find("API format"), std::string::npos) << ui.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "ui-report.json"));
}

// A workflow the server rejects (400 from /prompt): every job is rejected, never retried,
// counted as workflow_invalid; the error budget is breached (exit 3).
TEST(Loadtest, RejectedWorkflowIsCountedAsWorkflowInvalid) {
  test::SimProcess sim({"--time-scale", "0", "--log-level", "warn"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  auto wf = read_json(workflow("txt2img_sd15.json")).as_object();
  wf["3"].as_object()["inputs"].as_object()["steps"] = -5;  // below KSampler's minimum
  write_file(dir.path() / "bad.json", comfy::dumps(wf));
  auto r = test::run_comfyfarm("loadtest --server " + sim.url() + " --workflow " + quote(dir.path() / "bad.json") +
                               " --jobs 6 --concurrency 5 --vary none --output " + quote(dir.path() / "r.json") +
                               " --ndjson " + quote(dir.path() / "r.ndjson") + " --csv " +
                               quote(dir.path() / "bad"));
  ASSERT_EQ(r.exit_code, 3) << r.err << r.out;
  EXPECT_NE(r.err.find("SLA breach: error_rate"), std::string::npos) << r.err;
  const auto s = read_json(dir.path() / "r.json").at("summary");
  EXPECT_EQ(num(s.at("jobs")), 6);
  EXPECT_EQ(num(s.at("succeeded")), 0);
  EXPECT_EQ(num(s.at("failed")), 6);
  EXPECT_EQ(num(s.at("error_rate")), 1);
  ASSERT_TRUE(s.at("errors_by_class").as_object().contains("workflow_invalid")) << comfy::dumps(s);
  EXPECT_EQ(num(s.at("errors_by_class").at("workflow_invalid")), 6);
  for (const auto& l : test::read_jsonl(dir.path() / "r.ndjson")) {
    EXPECT_EQ(l.at("outcome").as_string(), "rejected");
    EXPECT_EQ(l.at("error_class").as_string(), "workflow_invalid");
    EXPECT_EQ(std::string(l.at("error").as_string()).substr(0, 4), "400:") << comfy::dumps(l);
    EXPECT_EQ(num(l.at("started_at")), 0);  // never ran
  }
  // Nothing reached the sim's queue or history.
  net::IoRuntime io(1);
  test::SimHttp http(io, sim.url());
  EXPECT_TRUE(http.get_json("/history").as_object().empty());
  const auto failures = test::read_file(dir.path() / "bad_failures.csv");
  EXPECT_NE(failures.find("\r\nJOB,workflow_invalid,"), std::string::npos) << failures;
  EXPECT_NE(failures.find(",6\r\n"), std::string::npos) << failures;
}

// Every fault scenario on a simulated farm with a small job count; each expectation must hold.
TEST(Loadtest, ScenariosAllPass) {
  test::TempDir dir;
  const auto out = dir.path() / "scenarios.json";
  auto r = test::run_comfyfarm("loadtest --scenario all --jobs 8 --output " + quote(out) + " --work-dir " +
                                   quote(dir.path() / "work"),
                               110);
  const auto report = read_json(out);
  ASSERT_TRUE(report.is_object()) << r.err << r.out;
  std::vector<std::string> names;
  std::string failing;
  for (const auto& sc : report.at("scenarios").as_array()) {
    names.emplace_back(sc.at("name").as_string());
    for (const auto& e : sc.at("expectations").as_array()) {
      if (!e.at("pass").as_bool()) {
        failing += std::string(sc.at("name").as_string()) + ": " + std::string(e.at("name").as_string()) + " — " +
                   std::string(e.at("detail").as_string()) + "\n";
      }
    }
    EXPECT_FALSE(sc.at("expectations").as_array().empty()) << sc.at("name").as_string();
  }
  EXPECT_EQ(failing, "") << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_TRUE(report.at("pass").as_bool());
  EXPECT_EQ(names, (std::vector<std::string>{"validation", "oom", "network-blip", "crash", "latency"}));
}

}  // namespace
}  // namespace comfyfarm
