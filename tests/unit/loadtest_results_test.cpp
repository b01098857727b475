// The loadtest model: the latency histogram's percentile math and error bound, the summary, the
// SLA parse/verdict, and the Locust-style CSVs.
#include "loadtest/histogram.hpp"
#include "loadtest/results.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "support/test_support.hpp"

namespace comfyfarm::loadtest {
namespace {

namespace json = boost::json;
using Outcome = JobResult::Outcome;

constexpr double kErr = LatencyHistogram::kRelativeError;

// The exact nearest-rank percentile of a sorted sample (same rank rule as the histogram).
double nearest_rank(const std::vector<double>& sorted, double p) {
  const double x = p * static_cast<double>(sorted.size()) / 100.0;
  std::size_t rank = 1;
  if (x > 1) rank = static_cast<std::size_t>(std::ceil(x - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

double rel(double got, double want) { return std::fabs(got - want) / want; }

// --- LatencyHistogram ----------------------------------------------------------------------------

TEST(LatencyHistogram, EmptyIsAllZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.percentile(0), 0);
  EXPECT_EQ(h.percentile(50), 0);
  EXPECT_EQ(h.percentile(100), 0);
}

TEST(LatencyHistogram, DocumentedBound) {
  EXPECT_DOUBLE_EQ(kErr, 1.0 / 256);
  EXPECT_LT(kErr, 0.004);
}

TEST(LatencyHistogram, SingleValueIsExact) {
  LatencyHistogram h;
  h.record(123.456);
  for (double p : {0.0, 1.0, 50.0, 99.0, 100.0}) EXPECT_DOUBLE_EQ(h.percentile(p), 123.456) << p;
  EXPECT_DOUBLE_EQ(h.mean(), 123.456);
}

TEST(LatencyHistogram, UniformOneToThousand) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(i);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_DOUBLE_EQ(h.min(), 1);
  EXPECT_DOUBLE_EQ(h.max(), 1000);
  EXPECT_DOUBLE_EQ(h.mean(), 500.5);
  EXPECT_DOUBLE_EQ(h.percentile(0), 1);
  EXPECT_DOUBLE_EQ(h.percentile(100), 1000);
  EXPECT_LE(rel(h.percentile(50), 500), kErr);
  EXPECT_LE(rel(h.percentile(90), 900), kErr);
  EXPECT_LE(rel(h.percentile(95), 950), kErr);
  EXPECT_LE(rel(h.percentile(99), 990), kErr);
  EXPECT_LE(rel(h.percentile(99.9), 999), kErr);
  // Bucket midpoints: 500 is in [500, 502) (width 2 in [256, 512)), 990 in [988, 992).
  EXPECT_DOUBLE_EQ(h.percentile(50), 501);
  EXPECT_DOUBLE_EQ(h.percentile(99), 990);
  // Nearest rank: p50.05 of 1000 values is rank 501.
  EXPECT_LE(rel(h.percentile(50.05), 501), kErr);
}

TEST(LatencyHistogram, SmallSetNearestRank) {
  LatencyHistogram h;
  for (double v : {15.0, 20.0, 35.0, 40.0, 50.0}) h.record(v);
  // Nearest rank of {15, 20, 35, 40, 50}: p30 -> rank 2 (20), p40 -> 2 (20), p50 -> 3 (35).
  EXPECT_LE(rel(h.percentile(30), 20), kErr);
  EXPECT_LE(rel(h.percentile(40), 20), kErr);
  EXPECT_LE(rel(h.percentile(50), 35), kErr);
  EXPECT_LE(rel(h.percentile(80), 40), kErr);
  EXPECT_DOUBLE_EQ(h.percentile(5), 15);   // rank 1 = min
  EXPECT_DOUBLE_EQ(h.percentile(81), 50);  // rank 5 = max
  EXPECT_DOUBLE_EQ(h.mean(), 32);
}

TEST(LatencyHistogram, RelativeErrorOverRandomValues) {
  std::mt19937_64 rng(42);
  // Log-uniform over 0.001 ms .. 10^7 ms: every power of two of the range gets values.
  std::uniform_real_distribution<double> exponent(-3.0, 7.0);
  for (int round = 0; round < 4; ++round) {
    const int n = round == 0 ? 7 : round == 1 ? 100 : round == 2 ? 1001 : 20000;
    LatencyHistogram h;
    std::vector<double> values;
    for (int i = 0; i < n; ++i) {
      const double v = std::pow(10.0, exponent(rng));
      values.push_back(v);
      h.record(v);
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    double worst = 0;
    for (int i = 0; i <= 1000; ++i) {
      const double p = i / 10.0;
      const double want = nearest_rank(values, p);
      const double got = h.percentile(p);
      ASSERT_LE(rel(got, want), kErr) << "n=" << n << " p=" << p << " want " << want << " got " << got;
      worst = std::max(worst, rel(got, want));
    }
    for (double p : {99.9, 99.99, 99.999, 33.333, 66.6667}) {
      EXPECT_LE(rel(h.percentile(p), nearest_rank(values, p)), kErr) << p;
    }
    EXPECT_GT(worst, 0);  // the bound is not vacuous: buckets do round
  }
}

TEST(LatencyHistogram, BucketEdgesMeetTheBoundExactly) {
  // A value on a bucket's lower edge is the worst case: half a width above it.
  for (double v : {1.0, 2.0, 1024.0, 0.5, 3.0, 1.0 + 1.0 / 128}) {
    LatencyHistogram h;
    h.record(v);
    h.record(v);
    h.record(4 * v);  // max elsewhere so p50 is not clamped to max
    h.record(v / 4);
    const double got = h.percentile(50);  // rank 2 of {v/4, v, v, 4v}
    EXPECT_LE(rel(got, v), kErr) << v;
    EXPECT_GT(got, v) << v;
  }
}

TEST(LatencyHistogram, RangeEdges) {
  LatencyHistogram h;
  h.record(0);
  h.record(-5);  // counts as 0
  h.record(std::nan(""));  // ignored
  h.record(0.0005);
  h.record(2e7);  // above the range: the top bucket
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 2e7);
  EXPECT_EQ(h.percentile(100), 2e7);
  EXPECT_LE(h.percentile(50), 0.0011);
  EXPECT_GE(h.percentile(50), 0);
  LatencyHistogram big;
  big.record(1e7);
  big.record(1e7 + 1);
  big.record(1.5e7);
  EXPECT_LE(rel(big.percentile(50), 1e7), kErr);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> d(1, 60000);
  LatencyHistogram a, b, all;
  for (int i = 0; i < 5000; ++i) {
    const double v = d(rng);
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  LatencyHistogram merged = a;
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_NEAR(merged.mean(), all.mean(), 1e-9 * all.mean());
  for (double p : {0.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(merged.percentile(p), all.percentile(p)) << p;
  }
  // Merging into / from an empty histogram.
  LatencyHistogram empty, into;
  into.merge(a);
  EXPECT_EQ(into.count(), a.count());
  EXPECT_EQ(into.percentile(95), a.percentile(95));
  EXPECT_EQ(into.min(), a.min());
  into.merge(empty);
  EXPECT_EQ(into.count(), a.count());
  into.clear();
  EXPECT_EQ(into.count(), 0u);
  EXPECT_EQ(into.percentile(50), 0);
  into.record(3);
  EXPECT_EQ(into.min(), 3);
}

// --- JobResult ---------------------------------------------------------------------------------

JobResult ok_job(std::uint64_t index, std::int64_t sent, std::int64_t started, std::int64_t ended,
                 int images = 1) {
  JobResult j;
  j.index = index;
  j.prompt_id = "p" + std::to_string(index);
  j.intended_at = j.sent_at = sent;
  j.accepted_at = sent + 10;
  j.started_at = started;
  j.ended_at = ended;
  j.outcome = Outcome::kSucceeded;
  j.images = images;
  return j;
}

JobResult failed_job(std::uint64_t index, std::int64_t sent, std::int64_t ended, Outcome o,
                     std::string cls, std::string error = "") {
  JobResult j;
  j.index = index;
  j.intended_at = j.sent_at = sent;
  j.ended_at = ended;
  j.outcome = o;
  j.error_class = std::move(cls);
  j.error = std::move(error);
  return j;
}

TEST(JobResult, Phases) {
  auto j = ok_job(0, 1000, 3000, 8000);
  EXPECT_EQ(j.latency_ms(), 7000);
  EXPECT_EQ(j.queue_wait_ms(), 1990);
  EXPECT_EQ(j.execution_ms(), 5000);
  auto f = failed_job(1, 1000, 2000, Outcome::kFailed, "transport");
  EXPECT_EQ(f.latency_ms(), 1000);
  EXPECT_FALSE(f.queue_wait_ms());
  EXPECT_FALSE(f.execution_ms());
}

TEST(JobResult, OpenLoopLatencyCountsFromIntendedSendTime) {
  // Intended at t=0, sent at t=5 s (the client was stalled), done at t=6 s: 6 s, not 1 s.
  const std::int64_t t0 = 1'700'000'000'000;
  JobResult j = ok_job(0, t0 + 5000, t0 + 5200, t0 + 6000);
  j.intended_at = t0;
  EXPECT_EQ(j.latency_ms(), 6000);
  RunInfo run;
  run.mode = "open";
  run.rate = 1;
  run.started_at = t0;
  run.ended_at = t0 + 6000;
  auto s = summarize({j}, run);
  EXPECT_DOUBLE_EQ(s.latency.max(), 6000);
  EXPECT_DOUBLE_EQ(s.latency.percentile(50), 6000);
  EXPECT_DOUBLE_EQ(s.execution.max(), 800);
}

TEST(JobResult, Json) {
  auto j = ok_job(3, 1000, 3000, 8000, 2);
  j.backend = "sim-0";
  j.node_ms["3"] = 4500.25;
  j.node_class["3"] = "KSampler";
  auto v = to_json(j).as_object();
  EXPECT_EQ(v.at("index").to_number<int>(), 3);
  EXPECT_EQ(v.at("prompt_id").as_string(), "p3");
  EXPECT_EQ(v.at("backend").as_string(), "sim-0");
  EXPECT_EQ(v.at("outcome").as_string(), "succeeded");
  EXPECT_EQ(v.at("latency_ms").to_number<double>(), 7000);
  EXPECT_EQ(v.at("execution_ms").to_number<double>(), 5000);
  EXPECT_EQ(v.at("images").to_number<int>(), 2);
  EXPECT_EQ(v.at("node_ms").at("3").to_number<double>(), 4500.25);
  EXPECT_EQ(v.at("node_class").at("3").as_string(), "KSampler");
  for (const char* k : {"warmup", "intended_at", "sent_at", "accepted_at", "started_at",
                        "ended_at", "error_class", "error", "queue_wait_ms"}) {
    EXPECT_TRUE(v.contains(k)) << k;
  }
  auto f = to_json(failed_job(4, 1000, 2000, Outcome::kTimeout, "timeout", "no answer")).as_object();
  EXPECT_EQ(f.at("outcome").as_string(), "timeout");
  EXPECT_TRUE(f.at("queue_wait_ms").is_null());
  EXPECT_TRUE(f.at("execution_ms").is_null());
  EXPECT_EQ(to_string(Outcome::kRejected), "rejected");
  EXPECT_EQ(to_string(Outcome::kFailed), "failed");
}

// --- summarize -----------------------------------------------------------------------------------

constexpr std::int64_t kT0 = 1'700'000'000'000;

// 2 warm-up jobs, then 10 measured: 7 succeeded (2 images each; 4 on sim-0, 3 on sim-1), 1
// timeout on sim-1, 1 workflow_invalid, 1 transport; measured span 60 s.
std::vector<JobResult> sample_jobs() {
  std::vector<JobResult> jobs;
  for (int i = 0; i < 2; ++i) {
    auto w = ok_job(static_cast<std::uint64_t>(i), kT0 - 10000, kT0 - 9000, kT0 - 1000, 5);
    w.warmup = true;
    w.backend = "sim-9";
    jobs.push_back(w);
  }
  for (int i = 0; i < 7; ++i) {
    const std::int64_t sent = kT0 + i * 1000;
    auto j = ok_job(static_cast<std::uint64_t>(2 + i), sent, sent + 1010, sent + 1010 + (i + 1) * 1000, 2);
    j.backend = i < 4 ? "sim-0" : "sim-1";
    j.node_ms["3"] = (i + 1) * 900.0;
    j.node_class["3"] = "KSampler";
    j.node_ms["8"] = 50;
    jobs.push_back(j);
  }
  auto t = failed_job(9, kT0 + 1000, kT0 + 31000, Outcome::kTimeout, "timeout", "no terminal event in 30 s");
  t.backend = "sim-1";
  jobs.push_back(t);
  jobs.push_back(failed_job(10, kT0 + 2000, kT0 + 2050, Outcome::kRejected, "workflow_invalid",
                            "prompt_no_outputs"));
  jobs.push_back(failed_job(11, kT0 + 3000, kT0 + 60000, Outcome::kFailed, "transport",
                            "connection refused"));
  return jobs;
}

RunInfo sample_run() {
  RunInfo run;
  run.server = "http://127.0.0.1:8288";
  run.workflow = "txt2img.json";
  run.mode = "closed";
  run.concurrency = 5;
  run.started_at = kT0;
  run.ended_at = kT0 + 60000;
  return run;
}

TEST(Summarize, CountsExcludeWarmup) {
  auto s = summarize(sample_jobs(), sample_run());
  EXPECT_EQ(s.jobs, 10u);
  EXPECT_EQ(s.succeeded, 7u);
  EXPECT_EQ(s.failed, 3u);
  EXPECT_DOUBLE_EQ(s.error_rate, 0.3);
  EXPECT_EQ(s.errors_by_class.size(), 3u);
  EXPECT_EQ(s.errors_by_class.at("timeout"), 1u);
  EXPECT_EQ(s.errors_by_class.at("workflow_invalid"), 1u);
  EXPECT_EQ(s.errors_by_class.at("transport"), 1u);
  EXPECT_EQ(s.images, 14u);
  EXPECT_DOUBLE_EQ(s.duration_s, 60);
  EXPECT_DOUBLE_EQ(s.throughput_jobs_s, 7.0 / 60);
  EXPECT_DOUBLE_EQ(s.throughput_images_min, 14);
  // Latencies 2010, 3010, ..., 8010 ms over the 7 succeeded jobs.
  EXPECT_EQ(s.latency.count(), 7u);
  EXPECT_DOUBLE_EQ(s.latency.min(), 2010);
  EXPECT_DOUBLE_EQ(s.latency.max(), 8010);
  EXPECT_LE(rel(s.latency.percentile(50), 5010), kErr);
  EXPECT_EQ(s.queue_wait.count(), 7u);
  EXPECT_DOUBLE_EQ(s.queue_wait.max(), 1000);
  EXPECT_DOUBLE_EQ(s.execution.min(), 1000);
  EXPECT_DOUBLE_EQ(s.execution.max(), 7000);
  // Per node: "<id> <class>", or "<id>" without a class.
  ASSERT_EQ(s.per_node.size(), 2u);
  EXPECT_EQ(s.per_node.at("3 KSampler").count(), 7u);
  EXPECT_DOUBLE_EQ(s.per_node.at("3 KSampler").max(), 6300);
  EXPECT_EQ(s.per_node.at("8").count(), 7u);
  // Per backend: warm-up's sim-9 left out, failures without a backend left out.
  ASSERT_EQ(s.per_backend.size(), 2u);
  EXPECT_EQ(s.per_backend.at("sim-0").jobs, 4u);
  EXPECT_EQ(s.per_backend.at("sim-0").succeeded, 4u);
  EXPECT_EQ(s.per_backend.at("sim-0").failed, 0u);
  EXPECT_EQ(s.per_backend.at("sim-1").jobs, 4u);
  EXPECT_EQ(s.per_backend.at("sim-1").succeeded, 3u);
  EXPECT_EQ(s.per_backend.at("sim-1").failed, 1u);
}

TEST(Summarize, DurationFallsBackToTheJobs) {
  RunInfo run = sample_run();
  run.started_at = run.ended_at = 0;
  auto s = summarize(sample_jobs(), run);
  // First measured sent_at kT0, last ended_at kT0 + 60 s (warm-up left out).
  EXPECT_DOUBLE_EQ(s.duration_s, 60);
  EXPECT_DOUBLE_EQ(s.throughput_images_min, 14);
}

TEST(Summarize, EmptyAndFailureWithoutClass) {
  auto empty = summarize({}, RunInfo{});
  EXPECT_EQ(empty.jobs, 0u);
  EXPECT_EQ(empty.error_rate, 0);
  EXPECT_EQ(empty.duration_s, 0);
  EXPECT_EQ(empty.throughput_jobs_s, 0);
  auto s = summarize({failed_job(0, kT0, kT0 + 5, Outcome::kTimeout, "")}, RunInfo{});
  EXPECT_EQ(s.errors_by_class.at("timeout"), 1u);
  EXPECT_DOUBLE_EQ(s.error_rate, 1);
}

TEST(Summarize, JsonShape) {
  auto v = summary_json(summarize(sample_jobs(), sample_run()));
  auto& o = v.as_object();
  for (const char* k : {"jobs", "succeeded", "failed", "error_rate", "errors_by_class",
                        "duration_s", "throughput", "images", "latency_ms", "queue_wait_ms",
                        "execution_ms", "per_node", "per_backend", "histogram"}) {
    EXPECT_TRUE(o.contains(k)) << k;
  }
  EXPECT_EQ(o.size(), 14u);
  EXPECT_EQ(o.at("jobs").to_number<int>(), 10);
  EXPECT_EQ(o.at("succeeded").to_number<int>(), 7);
  EXPECT_EQ(o.at("failed").to_number<int>(), 3);
  EXPECT_DOUBLE_EQ(o.at("error_rate").to_number<double>(), 0.3);
  EXPECT_EQ(o.at("errors_by_class").at("timeout").to_number<int>(), 1);
  EXPECT_DOUBLE_EQ(o.at("duration_s").to_number<double>(), 60);
  EXPECT_DOUBLE_EQ(o.at("throughput").at("jobs_per_s").to_number<double>(), 0.117);
  EXPECT_DOUBLE_EQ(o.at("throughput").at("images_per_min").to_number<double>(), 14);
  for (const char* h : {"latency_ms", "queue_wait_ms", "execution_ms"}) {
    const auto& lat = o.at(h).as_object();
    EXPECT_EQ(lat.size(), 7u) << h;
    for (const char* k : {"min", "p50", "p90", "p95", "p99", "max", "mean"}) {
      EXPECT_TRUE(lat.contains(k) && lat.at(k).is_number()) << h << "." << k;
    }
  }
  EXPECT_DOUBLE_EQ(o.at("latency_ms").at("min").to_number<double>(), 2010);
  EXPECT_DOUBLE_EQ(o.at("latency_ms").at("max").to_number<double>(), 8010);
  EXPECT_DOUBLE_EQ(o.at("latency_ms").at("mean").to_number<double>(), 5010);
  const auto& node = o.at("per_node").at("3 KSampler").as_object();
  EXPECT_EQ(node.size(), 3u);
  EXPECT_EQ(node.at("count").to_number<int>(), 7);
  EXPECT_TRUE(node.at("p50").is_number());
  EXPECT_TRUE(node.at("p95").is_number());
  EXPECT_EQ(o.at("per_backend").at("sim-1").at("failed").to_number<int>(), 1);
  EXPECT_EQ(o.at("per_backend").at("sim-1").at("jobs").to_number<int>(), 4);
  EXPECT_DOUBLE_EQ(o.at("histogram").at("relative_error").to_number<double>(), kErr);
  // Round-trips through text (what jq '.summary' reads).
  EXPECT_EQ(json::parse(json::serialize(v)), v);
}

// --- SLA -----------------------------------------------------------------------------------------

TEST(Sla, ParsesEveryKey) {
  auto t = parse_sla(json::parse(R"({"p95_s": 45, "error_rate": 0.02, "throughput_img_min": 20,
                                     "min_concurrency": 5, "recovery_s": 120})"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->p95_s, 45);
  EXPECT_EQ(t->error_rate, 0.02);
  EXPECT_EQ(t->throughput_img_min, 20);
  EXPECT_EQ(t->min_concurrency, 5);
  EXPECT_EQ(t->recovery_s, 120);
  auto partial = parse_sla(json::parse(R"({"p95_s": 30.5, "recovery_s": null})"));
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->p95_s, 30.5);
  EXPECT_FALSE(partial->error_rate);
  EXPECT_FALSE(partial->recovery_s);
  EXPECT_TRUE(parse_sla(json::parse("{}")));
}

TEST(Sla, ParseErrorsNameTheKey) {
  auto expect_error = [](const char* text, const char* key) {
    auto t = parse_sla(json::parse(text));
    ASSERT_FALSE(t) << text;
    EXPECT_EQ(t.error().code, Errc::kInvalidArgument) << text;
    EXPECT_NE(t.error().message.find(key), std::string::npos) << t.error().message;
  };
  expect_error(R"({"p95": 45})", "p95");
  expect_error(R"({"p95_s": "45"})", "p95_s");
  expect_error(R"({"error_rate": true})", "error_rate");
  expect_error(R"({"throughput_img_min": -1})", "throughput_img_min");
  expect_error(R"({"error_rate": 2})", "error_rate");
  expect_error(R"({"min_concurrency": [5]})", "min_concurrency");
  auto not_object = parse_sla(json::parse("[1]"));
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().code, Errc::kInvalidArgument);
}

TEST(Sla, LoadsAFile) {
  test::TempDir dir;
  const auto path = dir.path() / "sla.json";
  { std::ofstream(path) << R"({"p95_s": 40, "error_rate": 0.01})"; }
  auto t = load_sla_file(path);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->p95_s, 40);
  EXPECT_EQ(t->error_rate, 0.01);
  auto missing = load_sla_file(dir.path() / "nope.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  { std::ofstream(dir.path() / "bad.json") << "{not json"; }
  auto bad = load_sla_file(dir.path() / "bad.json");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("bad.json"), std::string::npos);
  { std::ofstream(dir.path() / "key.json") << R"({"p99_s": 1})"; }
  auto key = load_sla_file(dir.path() / "key.json");
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("p99_s"), std::string::npos);
}

TEST(Sla, SeedDefaults) {
  auto t = seed_sla();
  EXPECT_EQ(t.p95_s, 45);
  EXPECT_EQ(t.error_rate, 0.02);
  EXPECT_EQ(t.throughput_img_min, 20);
  EXPECT_EQ(t.min_concurrency, 5);
  EXPECT_EQ(t.recovery_s, 120);
}

// A summary whose p95 is exactly `p95_ms` (a single value: min = max), with given rates.
Summary summary_with(double p95_ms, double error_rate, double images_min) {
  Summary s;
  s.jobs = 100;
  s.succeeded = 100;
  s.latency.record(p95_ms);
  s.error_rate = error_rate;
  s.throughput_images_min = images_min;
  return s;
}

const SlaCheck& check(const SlaVerdict& v, const std::string& name) {
  auto it = std::find_if(v.checks.begin(), v.checks.end(), [&](const SlaCheck& c) { return c.name == name; });
  if (it == v.checks.end()) throw std::runtime_error("no check " + name);
  return *it;
}

TEST(Sla, PassesAtTheBoundaries) {
  RunInfo run;
  run.mode = "closed";
  run.concurrency = 5;
  auto v = evaluate(seed_sla(), summary_with(45000, 0.02, 20), run, 120.0);
  EXPECT_TRUE(v.pass());
  ASSERT_EQ(v.checks.size(), 5u);
  EXPECT_EQ(v.checks[0].name, "p95_latency");
  EXPECT_EQ(v.checks[1].name, "error_rate");
  EXPECT_EQ(v.checks[2].name, "throughput");
  EXPECT_EQ(v.checks[3].name, "concurrency");
  EXPECT_EQ(v.checks[4].name, "recovery");
  EXPECT_EQ(v.checks[0].target, "<= 45 s");
  EXPECT_EQ(v.checks[0].unit, "s");
  EXPECT_DOUBLE_EQ(v.checks[0].measured, 45);
  EXPECT_DOUBLE_EQ(v.checks[0].limit, 45);
  EXPECT_EQ(v.checks[1].target, "<= 0.02");
  EXPECT_EQ(v.checks[1].unit, "");
  EXPECT_EQ(v.checks[2].target, ">= 20 images/min");
  EXPECT_EQ(v.checks[3].target, ">= 5 jobs");
  EXPECT_EQ(v.checks[4].target, "<= 120 s");
  EXPECT_TRUE(breach_lines(v).empty());
}

TEST(Sla, FailsJustPastTheBoundaries) {
  RunInfo run;
  run.mode = "closed";
  run.concurrency = 4;
  auto v = evaluate(seed_sla(), summary_with(45001, 0.0201, 19.99), run, 120.5);
  EXPECT_FALSE(v.pass());
  for (const auto& c : v.checks) EXPECT_FALSE(c.pass) << c.name;
  EXPECT_DOUBLE_EQ(check(v, "concurrency").measured, 4);
  auto lines = breach_lines(v);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "SLA breach: p95_latency 45.001 s (target <= 45 s)");
  EXPECT_EQ(lines[1], "SLA breach: error_rate 0.0201 (target <= 0.02)");
  EXPECT_EQ(lines[2], "SLA breach: throughput 19.99 images/min (target >= 20 images/min)");
  EXPECT_EQ(lines[3], "SLA breach: concurrency 4 jobs (target >= 5 jobs)");
  EXPECT_EQ(lines[4], "SLA breach: recovery 120.5 s (target <= 120 s)");
}

TEST(Sla, OnlySetTargetsAreChecked) {
  SlaTargets t;
  t.p95_s = 45;
  t.recovery_s = 120;  // no recovery measured: skipped
  RunInfo run;
  auto v = evaluate(t, summary_with(51200, 0.5, 0), run);
  ASSERT_EQ(v.checks.size(), 1u);
  EXPECT_FALSE(v.pass());
  EXPECT_EQ(breach_lines(v), std::vector<std::string>{"SLA breach: p95_latency 51.2 s (target <= 45 s)"});
  EXPECT_TRUE(evaluate(SlaTargets{}, summary_with(1, 1, 0), run).pass());
}

TEST(Sla, NoSucceededJobFailsTheLatencyCheck) {
  Summary s;
  s.jobs = 3;
  s.failed = 3;
  s.error_rate = 1;
  SlaTargets t;
  t.p95_s = 45;
  auto v = evaluate(t, s, RunInfo{});
  ASSERT_EQ(v.checks.size(), 1u);
  EXPECT_FALSE(v.checks[0].pass);
}

TEST(Sla, OpenLoopConcurrencyIsRateTimesMedianLatency) {
  SlaTargets t;
  t.min_concurrency = 5;
  RunInfo run;
  run.mode = "open";
  run.rate = 0.5;  // jobs/s
  Summary s = summary_with(10000, 0, 0);  // p50 = 10 s -> 5 jobs in flight
  auto v = evaluate(t, s, run);
  ASSERT_EQ(v.checks.size(), 1u);
  EXPECT_DOUBLE_EQ(v.checks[0].measured, 5);
  EXPECT_TRUE(v.pass());
  run.rate = 0.4;
  EXPECT_FALSE(evaluate(t, s, run).pass());
}

TEST(Sla, Json) {
  RunInfo run;
  run.concurrency = 5;
  auto v = sla_json(evaluate(seed_sla(), summary_with(51200, 0.01, 30), run));
  EXPECT_FALSE(v.at("pass").as_bool());
  const auto& checks = v.at("checks").as_array();
  ASSERT_EQ(checks.size(), 4u);  // no recovery measured
  const auto& p95 = checks[0].as_object();
  EXPECT_EQ(p95.size(), 6u);
  EXPECT_EQ(p95.at("name").as_string(), "p95_latency");
  EXPECT_EQ(p95.at("target").as_string(), "<= 45 s");
  EXPECT_DOUBLE_EQ(p95.at("limit").to_number<double>(), 45);
  EXPECT_DOUBLE_EQ(p95.at("measured").to_number<double>(), 51.2);
  EXPECT_EQ(p95.at("unit").as_string(), "s");
  EXPECT_FALSE(p95.at("pass").as_bool());
  EXPECT_TRUE(checks[1].at("pass").as_bool());
  EXPECT_DOUBLE_EQ(checks[1].at("measured").to_number<double>(), 0.01);
}

// --- CSV -----------------------------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cell);
      cell.clear();
    } else {
      cell += c;
    }
  }
  out.push_back(cell);
  return out;
}

TEST(Csv, WritesLocustFiles) {
  test::TempDir dir;
  const std::string prefix = (dir.path() / "run").string();
  auto jobs = sample_jobs();
  jobs.push_back(failed_job(12, kT0 + 4000, kT0 + 4100, Outcome::kFailed, "transport",
                            "connection refused"));
  jobs.push_back(failed_job(13, kT0 + 4000, kT0 + 4100, Outcome::kFailed, "execution_error",
                            "RuntimeError: boom, \"quoted\""));
  auto r = write_csv(prefix, jobs, sample_run(), 10.0);
  ASSERT_TRUE(r) << r.error().message;

  auto stats = lines_of(test::read_file(prefix + "_stats.csv"));
  ASSERT_EQ(stats.size(), 5u);
  EXPECT_EQ(stats[0],
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
            "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,"
            "66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%");
  const std::vector<std::string> names = {"end_to_end", "queue_wait", "execution", "Aggregated"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto cells = cells_of(stats[i + 1]);
    ASSERT_EQ(cells.size(), 22u) << stats[i + 1];
    EXPECT_EQ(cells[0], "JOB");
    EXPECT_EQ(cells[1], names[i]);
  }
  auto e2e = cells_of(stats[1]);
  EXPECT_EQ(e2e[2], "12");       // measured jobs
  EXPECT_EQ(e2e[3], "5");        // failed
  EXPECT_EQ(e2e[5], "5010");     // average latency of the 7 succeeded
  EXPECT_EQ(e2e[6], "2010");     // min
  EXPECT_EQ(e2e[7], "8010");     // max
  EXPECT_EQ(e2e[8], "2");        // images per succeeded job
  EXPECT_EQ(e2e[9], "0.2");      // 12 jobs / 60 s
  EXPECT_EQ(e2e[21], "8010");    // 100%
  auto queue = cells_of(stats[2]);
  EXPECT_EQ(queue[2], "7");
  EXPECT_EQ(queue[3], "0");
  EXPECT_EQ(cells_of(stats[4])[2], "12");

  auto history = lines_of(test::read_file(prefix + "_stats_history.csv"));
  ASSERT_EQ(history.size(), 7u);  // header + 60 s in 10 s windows
  EXPECT_EQ(history[0],
            "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
            "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
            "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
            "Total Average Content Size");
  std::uint64_t total = 0;
  for (std::size_t i = 1; i < history.size(); ++i) {
    auto cells = cells_of(history[i]);
    ASSERT_EQ(cells.size(), 24u) << history[i];
    EXPECT_EQ(cells[0], std::to_string(kT0 / 1000 + static_cast<std::int64_t>(i) * 10));
    EXPECT_EQ(cells[1], "5");
    EXPECT_EQ(cells[2], "JOB");
    EXPECT_EQ(cells[3], "Aggregated");
    total = std::stoull(cells[17]);
  }
  EXPECT_EQ(total, 12u);
  // First window [0, 10 s): 4 succeeded (ended at 2.01, 4.01, 6.01, 8.01 s), the rejection at
  // 2.05 s and the two failures at 4.1 s.
  auto first = cells_of(history[1]);
  EXPECT_EQ(first[17], "7");
  EXPECT_EQ(first[18], "3");
  EXPECT_EQ(first[4], "0.7");
  EXPECT_EQ(first[5], "0.3");
  auto third = cells_of(history[3]);  // [20 s, 30 s): nothing ended
  EXPECT_EQ(third[4], "0");
  EXPECT_EQ(third[6], "N/A");

  auto failures = lines_of(test::read_file(prefix + "_failures.csv"));
  ASSERT_EQ(failures.size(), 5u);
  EXPECT_EQ(failures[0], "Method,Name,Error,Occurrences");
  EXPECT_EQ(failures[1], "JOB,transport,connection refused,2");  // most frequent first
  bool quoted = false;
  for (const auto& l : failures) {
    if (l == R"(JOB,execution_error,"RuntimeError: boom, ""quoted""",1)") quoted = true;
  }
  EXPECT_TRUE(quoted);
}

TEST(Csv, OpenLoopUserCountIsInFlight) {
  test::TempDir dir;
  const std::string prefix = (dir.path() / "open").string();
  RunInfo run;
  run.mode = "open";
  run.rate = 1;
  run.started_at = kT0;
  run.ended_at = kT0 + 4000;
  // Three jobs sent at 0, 0.5, 1 s ending at 1.5, 3.5, 4 s: in flight at 1 s -> 3, 2 s -> 2,
  // 3 s -> 2, 4 s -> 0.
  std::vector<JobResult> jobs = {ok_job(0, kT0, kT0 + 100, kT0 + 1500),
                                 ok_job(1, kT0 + 500, kT0 + 600, kT0 + 3500),
                                 ok_job(2, kT0 + 1000, kT0 + 1100, kT0 + 4000)};
  ASSERT_TRUE(write_csv(prefix, jobs, run, 1.0));
  auto history = lines_of(test::read_file(prefix + "_stats_history.csv"));
  ASSERT_EQ(history.size(), 5u);
  EXPECT_EQ(cells_of(history[1])[1], "3");
  EXPECT_EQ(cells_of(history[2])[1], "2");
  EXPECT_EQ(cells_of(history[3])[1], "2");
  EXPECT_EQ(cells_of(history[4])[1], "0");
}

TEST(Csv, EmptyRunAndErrors) {
  test::TempDir dir;
  const std::string prefix = (dir.path() / "empty").string();
  ASSERT_TRUE(write_csv(prefix, {}, RunInfo{}));
  auto stats = lines_of(test::read_file(prefix + "_stats.csv"));
  ASSERT_EQ(stats.size(), 5u);
  auto cells = cells_of(stats[1]);
  EXPECT_EQ(cells[2], "0");
  EXPECT_EQ(cells[11], "N/A");
  EXPECT_EQ(lines_of(test::read_file(prefix + "_stats_history.csv")).size(), 1u);
  EXPECT_EQ(lines_of(test::read_file(prefix + "_failures.csv")).size(), 1u);

  auto bad_interval = write_csv(prefix, {}, RunInfo{}, 0);
  ASSERT_FALSE(bad_interval);
  EXPECT_EQ(bad_interval.error().code, Errc::kInvalidArgument);
  auto bad_path = write_csv((dir.path() / "no" / "such" / "dir" / "x").string(), {}, RunInfo{});
  ASSERT_FALSE(bad_path);
  EXPECT_NE(bad_path.error().message.find("x_stats.csv"), std::string::npos);
}

}  // namespace
}  // namespace comfyfarm::loadtest
