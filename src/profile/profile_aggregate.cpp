#include "profile/profile_aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

namespace comfyfarm::profile {

namespace {

bool ran(const NodeProfile& n) noexcept {
  return !n.cached && n.duration.has_value() &&
         (n.status == NodeStatus::kCompleted || n.status == NodeStatus::kFailed ||
          n.status == NodeStatus::kInterrupted);
}

Duration percentile(const std::vector<Duration>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  const double v = static_cast<double>(sorted[lo].count()) +
                   frac * static_cast<double>((sorted[hi] - sorted[lo]).count());
  return Duration(std::llround(v));
}

}  // namespace

DurationStats duration_stats(std::vector<Duration> values) {
  DurationStats s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  s.min = values.front();
  s.max = values.back();
  s.p50 = percentile(values, 0.50);
  s.p95 = percentile(values, 0.95);
  Duration sum{};
  for (auto v : values) sum += v;
  s.mean = Duration(std::llround(static_cast<double>(sum.count()) / static_cast<double>(values.size())));
  return s;
}

ProfileAggregate aggregate(std::span<const JobProfile> runs) {
  ProfileAggregate a;
  a.runs = runs.size();
  std::vector<Duration> exec, total, queue, warm_exec;
  std::map<std::string, std::size_t, std::less<>> index;
  std::vector<std::vector<Duration>> samples;
  std::vector<std::vector<Duration>> warm;
  std::size_t cached_runs = 0;
  std::size_t ran_runs = 0;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const JobProfile& p = runs[r];
    if (p.outcome == Outcome::kSucceeded) ++a.succeeded;
    if (p.outcome == Outcome::kFailed || p.outcome == Outcome::kInterrupted) ++a.failed;
    if (p.execution_time) {
      exec.push_back(*p.execution_time);
      if (r == 0) {
        a.cold_execution_time = *p.execution_time;
      } else {
        warm_exec.push_back(*p.execution_time);
      }
    }
    if (p.total_duration) total.push_back(*p.total_duration);
    if (p.queue_time) queue.push_back(*p.queue_time);
    for (const auto& n : p.nodes) {
      auto [it, inserted] = index.try_emplace(n.id, a.nodes.size());
      if (inserted) {
        a.nodes.push_back(NodeAggregate{n.id, n.class_type, n.title, 0, 0, 0, {}, {}, {}});
        samples.emplace_back();
        warm.emplace_back();
      }
      NodeAggregate& na = a.nodes[it->second];
      if (na.class_type.empty()) na.class_type = n.class_type;
      if (n.cached) {
        ++na.runs_cached;
        ++cached_runs;
      }
      if (n.status == NodeStatus::kFailed) ++na.runs_failed;
      if (ran(n)) {
        ++na.runs_executed;
        ++ran_runs;
        samples[it->second].push_back(*n.duration);
        if (r == 0) {
          na.cold = *n.duration;
        } else {
          warm[it->second].push_back(*n.duration);
        }
      }
    }
  }
  a.execution_time = duration_stats(std::move(exec));
  a.total_duration = duration_stats(std::move(total));
  a.queue_time = duration_stats(std::move(queue));
  if (!warm_exec.empty()) a.warm_execution_p50 = duration_stats(std::move(warm_exec)).p50;
  if (cached_runs + ran_runs > 0) {
    a.cache_hit_ratio =
        static_cast<double>(cached_runs) / static_cast<double>(cached_runs + ran_runs);
  }
  for (std::size_t i = 0; i < a.nodes.size(); ++i) {
    a.nodes[i].duration = duration_stats(std::move(samples[i]));
    if (!warm[i].empty()) a.nodes[i].warm_p50 = duration_stats(std::move(warm[i])).p50;
  }
  return a;
}

}  // namespace comfyfarm::profile
