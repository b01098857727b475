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
  double lower_bound_ms = 0;        ///< total work / total speed + one model load per backend
  std::vector<double> utilisation{};       ///< busy time / makespan, per backend
  std::vector<std::size_t> jobs_per_backend{};
};

/// Every backend has every class and checkpoint; depth 2. Deterministic.
[[nodiscard]] SimReport run_virtual_farm(const std::vector<SimBackend>& backends,
                                         const std::vector<SimJob>& jobs,
                                         PlacementPolicy policy = PlacementPolicy::kAffinity);

}  // namespace comfyfarm::scheduler
