// Virtual-clock driver: runs the Scheduler against simulated backends, no sockets, no clock.
#pragma once

#include "scheduler/scheduler.hpp"

#include <cstdint>
#include <vector>

namespace comfyfarm::scheduler {

struct SimBackend {
  double speed = 1.0;   ///< work units per ms (1.0: runs cost_ms in cost_ms)
  TimeMs load_ms = 0;   ///< cost of loading a checkpoint that is not the previous prompt's
};

struct SimJob {
  JobId id = 0;
  int priority = 0;
  int checkpoint = 0;
  double work_ms = 1000;  ///< run time at speed 1.0, loads excluded
};

struct SimReport {
  TimeMs makespan_ms = 0;
  std::size_t model_loads = 0;
  std::size_t completed = 0;
  std::size_t completed_twice = 0;  ///< jobs reported done more than once (must be 0)
  double lower_bound_ms = 0;        ///< makespan_lower_bound() of the same input
  std::vector<double> utilisation{};       ///< busy time / makespan, per backend
  std::vector<std::size_t> jobs_per_backend{};
};

/// A makespan no placement can beat on this farm (ms), the time of every model load counted:
/// each backend starts with nothing loaded, so one that works at all first spends its load_ms
/// loading (time in which it does no work), and when there are more checkpoints than backends
/// each extra checkpoint costs at least one more load, priced at the cheapest backend's
/// speed x load_ms of lost work. The bound is the larger of
/// - the smallest T with sum over backends of speed_i x max(0, T - load_i) >= total work (+ the
///   extra loads), i.e. total work / total speed + one load per backend when loads are equal;
/// - the longest job on the backend where it would end first, its load included.
/// It ignores that jobs are indivisible and that switching checkpoints costs loads, so a real
/// schedule ends later; makespan / bound is the inefficiency of a placement.
[[nodiscard]] double makespan_lower_bound(const std::vector<SimBackend>& backends,
                                          const std::vector<SimJob>& jobs);

/// Every backend has every class and checkpoint; depth 2. All jobs are submitted at time 0 and
/// decide() runs after every completion. Deterministic.
[[nodiscard]] SimReport run_virtual_farm(const std::vector<SimBackend>& backends,
                                         const std::vector<SimJob>& jobs,
                                         PlacementPolicy policy = PlacementPolicy::kAffinity);
/// The same with a full scheduler configuration (queue_capacity is raised to fit every job).
[[nodiscard]] SimReport run_virtual_farm(const std::vector<SimBackend>& backends,
                                         const std::vector<SimJob>& jobs, SchedulerConfig config);

}  // namespace comfyfarm::scheduler
