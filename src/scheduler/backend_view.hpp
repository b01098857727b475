// BackendView: what placement knows about one ComfyUI backend.
#pragma once

#include "scheduler/types.hpp"

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace comfyfarm::scheduler {

/// How a caller describes a backend to the Scheduler (from /object_info and the models lists).
struct BackendSpec {
  BackendId id = 0;
  std::size_t depth = 2;  ///< prompts held at once: one running + one waiting
  std::vector<std::string> class_types{};
  std::vector<std::string> model_files{};
  double speed_hint = 1.0;  ///< initial speed (modelled / actual); measured afterwards
};

/// The Scheduler's state of a backend. Strings are interned ids (see Scheduler::intern).
struct BackendView {
  BackendId id = 0;
  bool up = true;
  bool draining = false;
  std::size_t depth = 2;
  std::vector<JobId> in_flight{};              ///< in the order sent
  std::unordered_set<std::uint32_t> has{};     ///< class types and model files it has
  std::unordered_set<std::uint32_t> blocked{}; ///< structural hashes it failed as incompatible
  std::uint32_t previous_affinity = 0;         ///< loaders of its previous prompt; 0: none
  double speed = 1.0;                          ///< EWMA of modelled / actual run time
  double outstanding_cost_ms = 0;              ///< modelled cost of in_flight at speed 1.0
  std::uint64_t last_used = 0;                 ///< assignment counter when last given a job
  std::uint64_t jobs_completed = 0;
  /// Expected time of a model load on this backend (ms): SchedulerConfig::model_load_ms until
  /// the first measured load, then an EWMA of (completion - start - run_ms) over prompts that
  /// needed one.
  double load_ms = 0;
  bool load_measured = false;
  TimeMs head_started_ms = 0;   ///< when in_flight.front() started (its predecessor finished)
  double expected_free_ms = 0;  ///< when in_flight is expected to drain (absolute, ms)
  // The placement group (affinity) and speed this backend is counted in; 0: none.
  std::uint32_t counted_group = 0;
  double counted_speed = 0;
};

}  // namespace comfyfarm::scheduler
