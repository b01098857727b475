// What a load test measures per job, and the summary, SLA verdict and reports made from it.
// Pure: no I/O except the writers, which take the stream or path they write to.
#pragma once

#include "core/error.hpp"
#include "loadtest/histogram.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace comfyfarm::loadtest {

/// One job of a load test. Times are milliseconds since the Unix epoch; 0 = did not happen.
struct JobResult {
  enum class Outcome { kSucceeded, kFailed, kTimeout, kRejected };

  std::uint64_t index = 0;  ///< 0-based order of the job in the run
  std::string prompt_id;    ///< "" when POST /prompt failed
  std::string backend;      ///< the farm backend that ran it, when known ("" otherwise)
  bool warmup = false;      ///< warm-up jobs are reported apart and left out of the summary
  std::int64_t intended_at = 0;  ///< when it should have been sent (open loop); = sent_at closed loop
  std::int64_t sent_at = 0;      ///< POST /prompt written
  std::int64_t accepted_at = 0;  ///< POST /prompt answered 200
  std::int64_t started_at = 0;   ///< execution_start received
  std::int64_t ended_at = 0;     ///< terminal event (or the timeout / the refusal)
  Outcome outcome = Outcome::kFailed;
  /// "workflow_invalid" (400 from /prompt, or a node error), "timeout", "transport" (connection
  /// refused/reset), "server_error" (5xx), "queue_full" (429), "interrupted", "execution_error"
  /// (a node raised; the exception type is in `error`). "" when it succeeded.
  std::string error_class;
  std::string error;     ///< one line for humans
  int images = 0;        ///< images listed by its `executed` events
  /// Per node id: execution time in ms (from the job's events; cached nodes are left out).
  std::map<std::string, double> node_ms;
  /// Per node id: the node's class type, for labels ("3 KSampler").
  std::map<std::string, std::string> node_class;

  /// End-to-end latency: intended_at -> ended_at (so an open-loop run counts the time a job
  /// waited to be sent: no coordinated omission). sent_at stands in for an intended_at of 0;
  /// 0 when the job never ended (or never was sent).
  [[nodiscard]] double latency_ms() const;
  /// accepted_at -> started_at; nullopt when it never started.
  [[nodiscard]] std::optional<double> queue_wait_ms() const;
  /// started_at -> ended_at; nullopt when it never started.
  [[nodiscard]] std::optional<double> execution_ms() const;
};

std::string_view to_string(JobResult::Outcome outcome) noexcept;

/// One line of --ndjson: every field above under its own name (outcome as to_string's text,
/// node_ms and node_class as objects), plus latency_ms, queue_wait_ms and execution_ms (null
/// when the job never started).
[[nodiscard]] boost::json::value to_json(const JobResult& job);

/// The run as a whole.
struct RunInfo {
  std::string server;
  std::string workflow;  ///< the file
  std::string mode;      ///< "closed" (concurrency) or "open" (rate)
  std::uint64_t concurrency = 0;
  double rate = 0;         ///< jobs/s, open loop
  std::int64_t started_at = 0;  ///< first measured job sent (after warm-up)
  std::int64_t ended_at = 0;    ///< last measured job ended
  std::string scenario;    ///< "" for a plain run
};

/// The summary of the measured (non-warm-up) jobs.
struct Summary {
  std::uint64_t jobs = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;  ///< everything not succeeded (failed, timeout, rejected)
  /// Failed jobs per error_class (the outcome's name, e.g. "timeout", when a job has none).
  std::map<std::string, std::uint64_t> errors_by_class;
  double error_rate = 0;          ///< failed / jobs (0 without jobs)
  /// RunInfo ended_at - started_at; when that is not positive, the measured jobs' first sent_at
  /// to their last ended_at (0 when neither gives a positive span).
  double duration_s = 0;
  double throughput_jobs_s = 0;   ///< succeeded / duration (0 when the duration is 0)
  double throughput_images_min = 0;  ///< images / duration * 60
  std::uint64_t images = 0;       ///< images produced by the succeeded jobs
  LatencyHistogram latency;     ///< end-to-end, succeeded jobs only
  LatencyHistogram queue_wait;  ///< succeeded jobs that started
  LatencyHistogram execution;   ///< succeeded jobs that started
  /// Per node ("<id> <class>"): execution time histograms over succeeded jobs.
  std::map<std::string, LatencyHistogram> per_node;
  /// Per backend id: jobs, succeeded, failed (farm runs only; empty when unknown).
  struct BackendCounts {
    std::uint64_t jobs = 0, succeeded = 0, failed = 0;
  };
  std::map<std::string, BackendCounts> per_backend;
};

[[nodiscard]] Summary summarize(const std::vector<JobResult>& jobs, const RunInfo& run);

/// .summary: {jobs, succeeded, failed, error_rate, errors_by_class, duration_s,
/// throughput: {jobs_per_s, images_per_min}, images,
/// latency_ms: {min, p50, p90, p95, p99, max, mean}, queue_wait_ms: {...}, execution_ms: {...},
/// per_node: {"3 KSampler": {p50, p95, count}}, per_backend: {"sim-0": {jobs, succeeded, failed}},
/// histogram: {relative_error}}
[[nodiscard]] boost::json::value summary_json(const Summary& summary);

/// SLA targets (seed 002's table). Each is checked only when set.
struct SlaTargets {
  std::optional<double> p95_s;                ///< end-to-end p95 latency ≤ this, seconds
  std::optional<double> error_rate;           ///< failed / jobs ≤ this (0.02 = 2 %)
  std::optional<double> throughput_img_min;   ///< images per minute ≥ this
  std::optional<double> min_concurrency;      ///< the run's concurrency ≥ this (books at once)
  std::optional<double> recovery_s;           ///< measured recovery (scenarios) ≤ this, seconds
};

/// Reads an SLA file: JSON {"p95_s": 45, "error_rate": 0.02, "throughput_img_min": 20,
/// "min_concurrency": 5, "recovery_s": 120}; every key optional, null = not set. Unknown keys,
/// non-numbers, negative or non-finite numbers and an error_rate above 1 are kInvalidArgument
/// naming the key; a document that is not an object is kInvalidArgument.
[[nodiscard]] Result<SlaTargets> parse_sla(const boost::json::value& doc);
/// parse_sla on a file's JSON: kNotFound when it cannot be read, kInvalidArgument when it is not
/// JSON; messages start with the path.
[[nodiscard]] Result<SlaTargets> load_sla_file(const std::filesystem::path& path);
/// The seed's defaults: p95 ≤ 45 s, error rate ≤ 2 %, ≥ 20 images/min, ≥ 5 concurrent,
/// recovery ≤ 120 s.
[[nodiscard]] SlaTargets seed_sla();

struct SlaCheck {
  std::string name;      ///< "p95_latency", "error_rate", "throughput", "concurrency", "recovery"
  std::string target;    ///< "<= 45 s"
  double limit = 0;
  double measured = 0;
  std::string unit;      ///< "s", "", "images/min", "jobs", "s"
  bool pass = false;
};

struct SlaVerdict {
  std::vector<SlaCheck> checks;
  [[nodiscard]] bool pass() const;
};

/// One check per set target, in this order (each independent of the others; the verdict passes
/// when all do):
/// - p95_latency: summary.latency p95 in seconds <= p95_s; fails when no job succeeded (nothing
///   measured, measured = 0).
/// - error_rate: summary.error_rate <= error_rate.
/// - throughput: summary.throughput_images_min >= throughput_img_min.
/// - concurrency: closed loop, run.concurrency >= min_concurrency; open loop (run.mode "open"),
///   the average jobs in flight estimated as run.rate * p50 end-to-end latency in seconds
///   (Little's law with the median for the mean), >= min_concurrency.
/// - recovery: only when a target is set and recovery_s (the measured recovery time a scenario
///   measured) is given: recovery_s <= target.
/// `target` reads "<= 45 s", "<= 0.02", ">= 20 images/min", ">= 5 jobs", "<= 120 s".
[[nodiscard]] SlaVerdict evaluate(const SlaTargets& targets, const Summary& summary,
                                  const RunInfo& run, std::optional<double> recovery_s = std::nullopt);
/// .sla: {pass, checks: [{name, target, limit, measured, unit, pass}]}
[[nodiscard]] boost::json::value sla_json(const SlaVerdict& verdict);
/// "SLA breach: p95_latency 51.2 s (target <= 45 s)" lines for the failing checks, in check
/// order (numbers: up to 3 decimals, 4 significant digits under 1).
[[nodiscard]] std::vector<std::string> breach_lines(const SlaVerdict& verdict);

/// Locust-style CSVs: PREFIX_stats.csv (one row per measured phase "end_to_end", "queue_wait",
/// "execution" plus "Aggregated": Type,Name,Request Count,Failure Count,Median Response Time,
/// Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,
/// Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%), PREFIX_stats_history.csv
/// (one row per interval: Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,
/// 90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median
/// Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,
/// Total Average Content Size) built from the jobs' end times in `interval_s` windows, and
/// PREFIX_failures.csv (Method,Name,Error,Occurrences). Times in ms like Locust.
///
/// Only measured (non-warm-up) jobs, summarized as summarize() does. Every row's Type is "JOB".
/// stats: end_to_end counts every job (Request Count = jobs, Failure Count = failed) with the
/// succeeded jobs' latencies; queue_wait and execution count the succeeded jobs that started
/// (no failures); Aggregated counts each job once, so it repeats end_to_end (the phases break
/// the same jobs down). Requests/s and Failures/s are over summary.duration_s; Average Content
/// Size is images per succeeded job (end_to_end, Aggregated; 0 for the phases); percentile
/// columns are "N/A" on a row without values. stats_history: one "Aggregated" row per window
/// [start + i * interval_s, start + (i + 1) * interval_s) from run.started_at (or the first
/// sent_at) to the last end, holding the jobs that ended in it: Timestamp = window end in Unix
/// seconds, User Count = run.concurrency (closed loop) or the jobs in flight at the window end
/// (open loop), Requests/s and Failures/s and percentiles over the window, Total * over every job
/// ended so far. failures: one row per (error_class, error), most frequent first: Method "JOB",
/// Name = error_class, Error = error. Lines end in CRLF (RFC 4180, as Python's csv writes);
/// fields quoted only when needed. kInvalidArgument when interval_s is not positive or a file
/// cannot be written.
[[nodiscard]] Result<void> write_csv(const std::string& prefix, const std::vector<JobResult>& jobs,
                                     const RunInfo& run, double interval_s = 1.0);

}  // namespace comfyfarm::loadtest
