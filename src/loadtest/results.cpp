#include "loadtest/results.hpp"
#include "core/csv.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

namespace comfyfarm::loadtest {

namespace json = boost::json;

namespace {

double round_to(double x, double scale) { return std::round(x * scale) / scale; }
double round3(double x) { return round_to(x, 1e3); }

double as_double(std::uint64_t n) { return static_cast<double>(n); }

/// Up to 3 decimals without trailing zeros ("51.2", "45", "1234.567"); 4 significant digits
/// under 1 so small rates stay readable ("0.01667").
std::string number(double x) {
  if (!std::isfinite(x)) return x != x ? "nan" : (x > 0 ? "inf" : "-inf");
  char buf[64];
  if (x != 0 && std::fabs(x) < 1) {
    std::snprintf(buf, sizeof buf, "%.4g", x);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.3f", x);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

bool measured(const JobResult& j) { return !j.warmup; }
bool succeeded(const JobResult& j) { return j.outcome == JobResult::Outcome::kSucceeded; }

json::object histogram_json(const LatencyHistogram& h) {
  json::object o;
  o["min"] = round3(h.min());
  o["p50"] = round3(h.percentile(50));
  o["p90"] = round3(h.percentile(90));
  o["p95"] = round3(h.percentile(95));
  o["p99"] = round3(h.percentile(99));
  o["max"] = round3(h.max());
  o["mean"] = round3(h.mean());
  return o;
}

// --- CSV ---------------------------------------------------------------------------------------

void field(std::string& out, std::string_view s) { append_csv_field(out, s); }

void row(std::string& out, const std::vector<std::string>& cells) {
  bool first = true;
  for (const auto& c : cells) {
    if (!first) out += ',';
    first = false;
    field(out, c);
  }
  out += "\r\n";
}

constexpr double kCsvPercentiles[] = {50, 66, 75, 80, 90, 95, 98, 99, 99.9, 99.99, 100};

void percentile_cells(std::vector<std::string>& cells, const LatencyHistogram& h) {
  for (double p : kCsvPercentiles) cells.push_back(h.count() == 0 ? "N/A" : number(h.percentile(p)));
}

double per_s(std::uint64_t n, double seconds) { return seconds > 0 ? as_double(n) / seconds : 0; }

std::vector<std::string> stats_row(std::string_view name, std::uint64_t requests,
                                   std::uint64_t failures, const LatencyHistogram& h,
                                   double content_size, double duration_s) {
  std::vector<std::string> cells = {
      "JOB",
      std::string(name),
      std::to_string(requests),
      std::to_string(failures),
      number(h.percentile(50)),
      number(h.mean()),
      number(h.min()),
      number(h.max()),
      number(content_size),
      number(per_s(requests, duration_s)),
      number(per_s(failures, duration_s)),
  };
  percentile_cells(cells, h);
  return cells;
}

Result<void> write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return fail(Errc::kInvalidArgument, "cannot write " + path);
  out << text;
  out.close();
  if (!out) return fail(Errc::kInvalidArgument, "cannot write " + path);
  return {};
}

}  // namespace

// --- JobResult ---------------------------------------------------------------------------------

double JobResult::latency_ms() const {
  const std::int64_t from = intended_at != 0 ? intended_at : sent_at;
  if (from == 0 || ended_at == 0) return 0;
  return static_cast<double>(ended_at - from);
}

std::optional<double> JobResult::queue_wait_ms() const {
  if (started_at == 0) return std::nullopt;
  const std::int64_t from = accepted_at != 0 ? accepted_at : sent_at;
  if (from == 0) return std::nullopt;
  return static_cast<double>(started_at - from);
}

std::optional<double> JobResult::execution_ms() const {
  if (started_at == 0 || ended_at == 0) return std::nullopt;
  return static_cast<double>(ended_at - started_at);
}

std::string_view to_string(JobResult::Outcome outcome) noexcept {
  switch (outcome) {
    case JobResult::Outcome::kSucceeded: return "succeeded";
    case JobResult::Outcome::kFailed: return "failed";
    case JobResult::Outcome::kTimeout: return "timeout";
    case JobResult::Outcome::kRejected: return "rejected";
  }
  return "unknown";
}

json::value to_json(const JobResult& job) {
  json::object o;
  o["index"] = job.index;
  o["prompt_id"] = job.prompt_id;
  o["backend"] = job.backend;
  o["warmup"] = job.warmup;
  o["intended_at"] = job.intended_at;
  o["sent_at"] = job.sent_at;
  o["accepted_at"] = job.accepted_at;
  o["started_at"] = job.started_at;
  o["ended_at"] = job.ended_at;
  o["outcome"] = to_string(job.outcome);
  o["error_class"] = job.error_class;
  o["error"] = job.error;
  o["images"] = job.images;
  o["latency_ms"] = job.latency_ms();
  if (auto q = job.queue_wait_ms()) o["queue_wait_ms"] = *q; else o["queue_wait_ms"] = nullptr;
  if (auto e = job.execution_ms()) o["execution_ms"] = *e; else o["execution_ms"] = nullptr;
  json::object nodes_ms;
  for (const auto& [id, ms] : job.node_ms) nodes_ms[id] = round3(ms);
  o["node_ms"] = std::move(nodes_ms);
  json::object classes;
  for (const auto& [id, cls] : job.node_class) classes[id] = cls;
  o["node_class"] = std::move(classes);
  return o;
}

// --- Summary -----------------------------------------------------------------------------------

Summary summarize(const std::vector<JobResult>& jobs, const RunInfo& run) {
  Summary s;
  std::int64_t first_sent = 0;
  std::int64_t last_end = 0;
  for (const auto& j : jobs) {
    if (!measured(j)) continue;
    ++s.jobs;
    if (j.sent_at != 0 && (first_sent == 0 || j.sent_at < first_sent)) first_sent = j.sent_at;
    last_end = std::max(last_end, j.ended_at);
    const bool ok = succeeded(j);
    if (ok) {
      ++s.succeeded;
      s.images += static_cast<std::uint64_t>(std::max(j.images, 0));
      s.latency.record(j.latency_ms());
      if (auto q = j.queue_wait_ms()) s.queue_wait.record(*q);
      if (auto e = j.execution_ms()) s.execution.record(*e);
      for (const auto& [id, ms] : j.node_ms) {
        auto cls = j.node_class.find(id);
        std::string key = id;
        if (cls != j.node_class.end() && !cls->second.empty()) key += " " + cls->second;
        s.per_node[key].record(ms);
      }
    } else {
      ++s.failed;
      ++s.errors_by_class[j.error_class.empty() ? std::string(to_string(j.outcome)) : j.error_class];
    }
    if (!j.backend.empty()) {
      auto& b = s.per_backend[j.backend];
      ++b.jobs;
      ++(ok ? b.succeeded : b.failed);
    }
  }
  s.error_rate = s.jobs == 0 ? 0 : as_double(s.failed) / as_double(s.jobs);
  std::int64_t span_ms = run.ended_at - run.started_at;
  if (span_ms <= 0 && first_sent != 0) span_ms = last_end - first_sent;
  s.duration_s = span_ms > 0 ? static_cast<double>(span_ms) / 1000.0 : 0;
  if (s.duration_s > 0) {
    s.throughput_jobs_s = as_double(s.succeeded) / s.duration_s;
    s.throughput_images_min = as_double(s.images) / s.duration_s * 60.0;
  }
  return s;
}

json::value summary_json(const Summary& summary) {
  json::object o;
  o["jobs"] = summary.jobs;
  o["succeeded"] = summary.succeeded;
  o["failed"] = summary.failed;
  o["error_rate"] = round_to(summary.error_rate, 1e6);
  json::object errors;
  for (const auto& [cls, n] : summary.errors_by_class) errors[cls] = n;
  o["errors_by_class"] = std::move(errors);
  o["duration_s"] = round3(summary.duration_s);
  json::object throughput;
  throughput["jobs_per_s"] = round3(summary.throughput_jobs_s);
  throughput["images_per_min"] = round3(summary.throughput_images_min);
  o["throughput"] = std::move(throughput);
  o["images"] = summary.images;
  o["latency_ms"] = histogram_json(summary.latency);
  o["queue_wait_ms"] = histogram_json(summary.queue_wait);
  o["execution_ms"] = histogram_json(summary.execution);
  json::object nodes;
  for (const auto& [key, h] : summary.per_node) {
    json::object n;
    n["p50"] = round3(h.percentile(50));
    n["p95"] = round3(h.percentile(95));
    n["count"] = h.count();
    nodes[key] = std::move(n);
  }
  o["per_node"] = std::move(nodes);
  json::object backends;
  for (const auto& [id, b] : summary.per_backend) {
    json::object n;
    n["jobs"] = b.jobs;
    n["succeeded"] = b.succeeded;
    n["failed"] = b.failed;
    backends[id] = std::move(n);
  }
  o["per_backend"] = std::move(backends);
  json::object histogram;
  histogram["relative_error"] = LatencyHistogram::kRelativeError;
  o["histogram"] = std::move(histogram);
  return o;
}

// --- SLA ---------------------------------------------------------------------------------------

Result<SlaTargets> parse_sla(const json::value& doc) {
  const json::object* o = doc.if_object();
  if (o == nullptr) return fail(Errc::kInvalidArgument, "SLA must be a JSON object");
  SlaTargets t;
  const std::pair<std::string_view, std::optional<double> SlaTargets::*> keys[] = {
      {"p95_s", &SlaTargets::p95_s},
      {"error_rate", &SlaTargets::error_rate},
      {"throughput_img_min", &SlaTargets::throughput_img_min},
      {"min_concurrency", &SlaTargets::min_concurrency},
      {"recovery_s", &SlaTargets::recovery_s},
  };
  for (const auto& [key, v] : *o) {
    const auto* known = std::find_if(std::begin(keys), std::end(keys),
                                     [&](const auto& k) { return k.first == key; });
    if (known == std::end(keys)) {
      return fail(Errc::kInvalidArgument,
                  "unknown SLA key \"" + std::string(key) +
                      "\" (known: p95_s, error_rate, throughput_img_min, min_concurrency, "
                      "recovery_s)");
    }
    if (v.is_null()) continue;
    if (!v.is_number()) {
      return fail(Errc::kInvalidArgument, "SLA key \"" + std::string(key) + "\" must be a number");
    }
    const double x = v.to_number<double>();
    if (!std::isfinite(x) || x < 0) {
      return fail(Errc::kInvalidArgument,
                  "SLA key \"" + std::string(key) + "\" must be a number >= 0");
    }
    if (key == "error_rate" && x > 1) {
      return fail(Errc::kInvalidArgument,
                  "SLA key \"error_rate\" is a fraction between 0 and 1 (0.02 = 2 %), not " +
                      number(x));
    }
    t.*(known->second) = x;
  }
  return t;
}

Result<SlaTargets> load_sla_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::kNotFound, path.string() + ": cannot read the SLA file");
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  json::value doc = json::parse(text.str(), ec);
  if (ec) return fail(Errc::kInvalidArgument, path.string() + ": not JSON: " + ec.message());
  auto targets = parse_sla(doc);
  if (!targets) return fail(targets.error().code, path.string() + ": " + targets.error().message);
  return targets;
}

SlaTargets seed_sla() {
  SlaTargets t;
  t.p95_s = 45;
  t.error_rate = 0.02;
  t.throughput_img_min = 20;
  t.min_concurrency = 5;
  t.recovery_s = 120;
  return t;
}

bool SlaVerdict::pass() const {
  return std::all_of(checks.begin(), checks.end(), [](const SlaCheck& c) { return c.pass; });
}

SlaVerdict evaluate(const SlaTargets& targets, const Summary& summary, const RunInfo& run,
                    std::optional<double> recovery_s) {
  SlaVerdict v;
  auto add = [&](std::string name, bool at_most, double limit, double measured_value,
                 std::string unit, bool pass) {
    SlaCheck c;
    c.name = std::move(name);
    c.target = std::string(at_most ? "<= " : ">= ") + number(limit) + (unit.empty() ? "" : " " + unit);
    c.limit = limit;
    c.measured = measured_value;
    c.unit = std::move(unit);
    c.pass = pass;
    v.checks.push_back(std::move(c));
  };
  if (targets.p95_s) {
    const double p95 = summary.latency.percentile(95) / 1000.0;
    add("p95_latency", true, *targets.p95_s, p95, "s",
        summary.latency.count() > 0 && p95 <= *targets.p95_s);
  }
  if (targets.error_rate) {
    add("error_rate", true, *targets.error_rate, summary.error_rate, "",
        summary.error_rate <= *targets.error_rate);
  }
  if (targets.throughput_img_min) {
    add("throughput", false, *targets.throughput_img_min, summary.throughput_images_min,
        "images/min", summary.throughput_images_min >= *targets.throughput_img_min);
  }
  if (targets.min_concurrency) {
    const double c = run.mode == "open"
                         ? run.rate * summary.latency.percentile(50) / 1000.0
                         : as_double(run.concurrency);
    add("concurrency", false, *targets.min_concurrency, c, "jobs", c >= *targets.min_concurrency);
  }
  if (targets.recovery_s && recovery_s) {
    add("recovery", true, *targets.recovery_s, *recovery_s, "s", *recovery_s <= *targets.recovery_s);
  }
  return v;
}

json::value sla_json(const SlaVerdict& verdict) {
  json::object o;
  o["pass"] = verdict.pass();
  json::array checks;
  for (const auto& c : verdict.checks) {
    json::object j;
    j["name"] = c.name;
    j["target"] = c.target;
    j["limit"] = c.limit;
    j["measured"] = std::fabs(c.measured) < 1 ? round_to(c.measured, 1e6) : round3(c.measured);
    j["unit"] = c.unit;
    j["pass"] = c.pass;
    checks.push_back(std::move(j));
  }
  o["checks"] = std::move(checks);
  return o;
}

std::vector<std::string> breach_lines(const SlaVerdict& verdict) {
  std::vector<std::string> out;
  for (const auto& c : verdict.checks) {
    if (c.pass) continue;
    out.push_back("SLA breach: " + c.name + " " + number(c.measured) +
                  (c.unit.empty() ? "" : " " + c.unit) + " (target " + c.target + ")");
  }
  return out;
}

// --- CSV ---------------------------------------------------------------------------------------

Result<void> write_csv(const std::string& prefix, const std::vector<JobResult>& jobs,
                       const RunInfo& run, double interval_s) {
  if (!(interval_s > 0) || !std::isfinite(interval_s)) {
    return fail(Errc::kInvalidArgument, "the CSV history interval must be a positive number of seconds");
  }
  const Summary s = summarize(jobs, run);
  const double images_per_job = s.succeeded == 0 ? 0 : as_double(s.images) / as_double(s.succeeded);

  std::string stats =
      "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
      "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,"
      "80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n";
  row(stats, stats_row("end_to_end", s.jobs, s.failed, s.latency, images_per_job, s.duration_s));
  row(stats, stats_row("queue_wait", s.queue_wait.count(), 0, s.queue_wait, 0, s.duration_s));
  row(stats, stats_row("execution", s.execution.count(), 0, s.execution, 0, s.duration_s));
  row(stats, stats_row("Aggregated", s.jobs, s.failed, s.latency, images_per_job, s.duration_s));

  // History: windows over the measured jobs' end times.
  std::vector<const JobResult*> ended;
  std::int64_t first_sent = 0;
  std::int64_t last_end = 0;
  for (const auto& j : jobs) {
    if (!measured(j)) continue;
    if (j.sent_at != 0 && (first_sent == 0 || j.sent_at < first_sent)) first_sent = j.sent_at;
    if (j.ended_at == 0) continue;
    ended.push_back(&j);
    last_end = std::max(last_end, j.ended_at);
  }
  std::sort(ended.begin(), ended.end(),
            [](const JobResult* a, const JobResult* b) { return a->ended_at < b->ended_at; });
  std::string history =
      "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
      "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
      "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
      "Total Average Content Size\r\n";
  if (!ended.empty()) {
    std::int64_t start = run.started_at != 0 ? run.started_at : first_sent;
    if (start == 0 || start > ended.front()->ended_at) start = ended.front()->ended_at;
    const std::int64_t end = std::max(last_end, run.ended_at);
    const double interval_ms = interval_s * 1000.0;
    const double windows_d = std::max(1.0, std::ceil(static_cast<double>(end - start) / interval_ms));
    if (windows_d > 1e6) {
      return fail(Errc::kInvalidArgument, "the CSV history interval is too small for the run (over "
                                          "a million windows)");
    }
    const auto windows = static_cast<std::size_t>(windows_d);
    LatencyHistogram total;
    std::uint64_t total_jobs = 0, total_failed = 0, total_images = 0, total_ok = 0;
    std::size_t next = 0;
    for (std::size_t w = 0; w < windows; ++w) {
      const double w_end = static_cast<double>(start) + static_cast<double>(w + 1) * interval_ms;
      const bool last = w + 1 == windows;
      LatencyHistogram window;
      std::uint64_t n = 0, failed = 0;
      while (next < ended.size() &&
             (last || static_cast<double>(ended[next]->ended_at) < w_end)) {
        const JobResult& j = *ended[next++];
        ++n;
        if (succeeded(j)) {
          window.record(j.latency_ms());
          ++total_ok;
          total_images += static_cast<std::uint64_t>(std::max(j.images, 0));
        } else {
          ++failed;
        }
      }
      total.merge(window);
      total_jobs += n;
      total_failed += failed;
      std::uint64_t users = run.concurrency;
      if (run.mode == "open") {
        users = 0;
        for (const auto& j : jobs) {
          if (!measured(j) || j.sent_at == 0) continue;
          const double sent = static_cast<double>(j.sent_at);
          if (sent <= w_end && (j.ended_at == 0 || static_cast<double>(j.ended_at) > w_end)) ++users;
        }
      }
      std::vector<std::string> cells = {
          number(w_end / 1000.0), std::to_string(users), "JOB", "Aggregated",
          number(as_double(n) / interval_s), number(as_double(failed) / interval_s)};
      percentile_cells(cells, window);
      cells.push_back(std::to_string(total_jobs));
      cells.push_back(std::to_string(total_failed));
      cells.push_back(number(total.percentile(50)));
      cells.push_back(number(total.mean()));
      cells.push_back(number(total.min()));
      cells.push_back(number(total.max()));
      cells.push_back(number(total_ok == 0 ? 0 : as_double(total_images) / as_double(total_ok)));
      row(history, cells);
    }
  }

  // Failures grouped by (error_class, error), most frequent first.
  std::map<std::pair<std::string, std::string>, std::uint64_t> groups;
  for (const auto& j : jobs) {
    if (!measured(j) || succeeded(j)) continue;
    ++groups[{j.error_class.empty() ? std::string(to_string(j.outcome)) : j.error_class, j.error}];
  }
  std::vector<std::pair<std::pair<std::string, std::string>, std::uint64_t>> sorted(groups.begin(),
                                                                                   groups.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string failures = "Method,Name,Error,Occurrences\r\n";
  for (const auto& [key, n] : sorted) row(failures, {"JOB", key.first, key.second, std::to_string(n)});

  if (auto r = write_text(prefix + "_stats.csv", stats); !r) return r;
  if (auto r = write_text(prefix + "_stats_history.csv", history); !r) return r;
  return write_text(prefix + "_failures.csv", failures);
}

}  // namespace comfyfarm::loadtest
