// Scheduler: the job queue plus placement of queued jobs on backends. Pure and deterministic:
// time comes in as milliseconds, nothing is read from a clock, nothing is logged.
#pragma once

#include "core/error.hpp"
#include "scheduler/backend_view.hpp"
#include "scheduler/job_queue.hpp"
#include "scheduler/retry_policy.hpp"
#include "scheduler/types.hpp"

#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace comfyfarm::scheduler {

enum class PlacementPolicy {
  kAffinity,    ///< the farm's: filters, same loaders, earliest expected finish, LRU
  kRoundRobin,  ///< ComfyPool PICK_ROUTINE (for benchmarks)
  kLeastQueue,  ///< ComfyPool PICK_LOWEST (for benchmarks)
};

struct SchedulerConfig {
  std::size_t queue_capacity = 1'000'000;
  double speed_alpha = 0.3;       ///< EWMA weight of a new speed sample
  std::size_t lookahead = 256;    ///< queued jobs examined per decide(), at least 2 x free slots
  PlacementPolicy policy = PlacementPolicy::kAffinity;
  RetryConfig retry{};
};

/// The outcome of fail(): the policy's decision and the attempt that failed.
struct FailureOutcome {
  RetryDecision decision{};
  int attempt = 0;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerConfig config = {});

  // Backends.
  [[nodiscard]] Result<void> add_backend(const BackendSpec& spec);
  /// Replaces what a backend has (after a fresh /object_info or models list).
  [[nodiscard]] Result<void> set_capabilities(BackendId id, const std::vector<std::string>& class_types,
                                              const std::vector<std::string>& model_files);
  [[nodiscard]] Result<void> set_up(BackendId id, bool up);
  [[nodiscard]] Result<void> set_draining(BackendId id, bool draining);
  /// The backend's cache was emptied (/free, restart): no affinity until its next prompt.
  [[nodiscard]] Result<void> cache_cleared(BackendId id);
  /// Marks the backend down and requeues every job it held (backend_lost).
  [[nodiscard]] Result<std::vector<std::pair<JobId, FailureOutcome>>> backend_lost(BackendId id,
                                                                                   TimeMs now);
  [[nodiscard]] const BackendView* backend(BackendId id) const;

  // Jobs.
  [[nodiscard]] Result<void> submit(const JobSpec& spec, TimeMs now);
  /// Removes a queued job (not one already sent to a backend: that needs an interrupt).
  [[nodiscard]] Result<void> cancel(JobId id);
  /// Places eligible queued jobs on backends with room; deterministic for equal inputs.
  [[nodiscard]] std::vector<Assignment> decide(TimeMs now);
  /// The job ran to the end on `backend` in `run_ms` (execution only, model loads excluded).
  [[nodiscard]] Result<void> complete(JobId id, BackendId backend, double run_ms, TimeMs now);
  /// An attempt failed: applies the retry policy (requeue with delay, block, or drop).
  [[nodiscard]] Result<FailureOutcome> fail(JobId id, BackendId backend, FailureClass failure,
                                            TimeMs now);

  [[nodiscard]] const JobQueue& queue() const noexcept { return queue_; }
  [[nodiscard]] std::size_t running() const noexcept { return running_; }
  [[nodiscard]] std::size_t jobs() const noexcept { return jobs_.size(); }

 private:
  struct Job {
    std::vector<std::uint32_t> needs;  // interned class types ("c:") and model files ("m:")
    std::uint32_t affinity = 0;
    std::uint32_t structure = 0;
    double cost_ms = 0;
    int priority = 0;
    std::string batch;
    int attempts = 0;
    bool running = false;
    BackendId on = 0;
    bool has_avoid = false;
    BackendId avoid = 0;
  };

  std::uint32_t intern(const std::string& s);
  bool fits(const BackendView& b, const Job& j) const;
  bool has_room(const BackendView& b) const { return b.up && !b.draining && b.in_flight.size() < b.depth; }
  void refresh_free(BackendView& b);
  BackendView* pick(const Job& j);
  void release(BackendView& b, JobId id, double cost_ms);

  SchedulerConfig config_;
  JobQueue queue_;
  RetryPolicy retry_;
  std::unordered_map<std::string, std::uint32_t> strings_;
  std::map<BackendId, BackendView> backends_;
  std::set<BackendId> free_;  // up, not draining, under depth
  std::unordered_map<JobId, Job> jobs_;
  std::uint64_t assign_counter_ = 0;
  BackendId rr_last_ = 0;
  bool rr_started_ = false;
  std::size_t running_ = 0;
};

}  // namespace comfyfarm::scheduler
