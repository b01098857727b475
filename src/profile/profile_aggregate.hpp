// ProfileAggregate: many runs of one workflow summarised per node (p50/p95/max, cold vs warm).
#pragma once

#include "profile/job_profile.hpp"
#include "profile/time.hpp"

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace comfyfarm::profile {

/// Order statistics of a set of durations. Percentiles interpolate linearly between the two
/// closest ranks (numpy's default): p = (n - 1) * q, so with one sample every percentile is it,
/// and with few samples p95 lies between the two largest.
struct DurationStats {
  std::size_t count = 0;
  Duration min{};
  Duration p50{};
  Duration p95{};
  Duration max{};
  Duration mean{};
  friend bool operator==(const DurationStats&, const DurationStats&) = default;
};

/// Stats of a set of durations (all zero when empty).
[[nodiscard]] DurationStats duration_stats(std::vector<Duration> values);

/// One node across runs. Durations are taken only from runs in which the node ran (a cached run
/// says nothing about the node's cost).
struct NodeAggregate {
  std::string node_id{};
  std::string class_type{};
  std::string title{};
  std::size_t runs_executed = 0;  ///< runs in which it ran (completed, failed or interrupted)
  std::size_t runs_cached = 0;
  std::size_t runs_failed = 0;
  DurationStats duration{};  ///< over runs_executed
  std::optional<Duration> cold{};      ///< its time in the first run, if it ran there
  std::optional<Duration> warm_p50{};  ///< p50 over the later runs in which it ran
  friend bool operator==(const NodeAggregate&, const NodeAggregate&) = default;
};

/// Runs in the given order; the first is the cold run (nothing of the workflow loaded yet, when
/// the caller made it so), the others are warm.
struct ProfileAggregate {
  std::size_t runs = 0;
  std::size_t succeeded = 0;
  std::size_t failed = 0;  ///< failed or interrupted
  DurationStats execution_time{};
  DurationStats total_duration{};
  DurationStats queue_time{};
  std::optional<Duration> cold_execution_time{};
  std::optional<Duration> warm_execution_p50{};
  double cache_hit_ratio = 0;  ///< cached node-runs / (cached + ran node-runs)
  std::vector<NodeAggregate> nodes{};  ///< in the first run's node order, then new ones
  friend bool operator==(const ProfileAggregate&, const ProfileAggregate&) = default;
};

[[nodiscard]] ProfileAggregate aggregate(std::span<const JobProfile> runs);

}  // namespace comfyfarm::profile
