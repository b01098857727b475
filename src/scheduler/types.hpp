// Plain value types shared by the scheduler's queue, placement, retry policy and driver.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace comfyfarm::scheduler {

using JobId = std::uint64_t;
using BackendId = std::uint32_t;
using TimeMs = std::int64_t;  ///< virtual or real milliseconds, always passed in by the caller

/// What a job needs and how it should be ordered. Strings are interned by the Scheduler.
struct JobSpec {
  JobId id = 0;
  int priority = 0;     ///< higher runs first
  bool front = false;   ///< ComfyUI's `front: true`: ahead of everything of its priority
  std::string batch{};  ///< the batch ("book") it belongs to, or empty
  std::vector<std::string> class_types{};
  std::vector<std::string> model_files{};
  std::string affinity_key{};     ///< checkpoint/loader signature (see requirements.hpp)
  std::string structural_hash{};  ///< Workflow::structural_hash()
  double cost_ms = 1000.0;        ///< modelled run time on a speed-1.0 backend
  TimeMs ready_at_ms = 0;         ///< not eligible before this time
};

/// One placement decision: send `job` to `backend`.
struct Assignment {
  JobId job = 0;
  BackendId backend = 0;
  friend bool operator==(const Assignment&, const Assignment&) = default;
};

/// Failure classes of the farm issue ("Failures and retries").
enum class FailureClass {
  kWorkflowInvalid,      ///< not retried, needs_regeneration
  kBackendIncompatible,  ///< retried elsewhere; backend blocked for the structural hash
  kOom,                  ///< /free that backend, then retried
  kBackendLost,          ///< requeued elsewhere
  kTransient,            ///< retried
};

}  // namespace comfyfarm::scheduler
