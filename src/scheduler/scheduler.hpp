// Scheduler: the job queue plus placement of queued jobs on backends. Pure and deterministic:
// time comes in as milliseconds, nothing is read from a clock, nothing is logged.
#pragma once

#include "core/error.hpp"
#include "scheduler/backend_view.hpp"
#include "scheduler/job_queue.hpp"
#include "scheduler/retry_policy.hpp"
#include "scheduler/types.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace comfyfarm::scheduler {

/// kAffinity, the farm's policy. Jobs are grouped by affinity key (checkpoint/loaders); a
/// backend belongs to the group of the last prompt sent to it. decide():
/// 1. fairness: once the head of the queue has been passed over `lookahead` times by jobs placed
///    on backends it fits, the free backend where it ends first takes it;
/// 2. the tail: with `tail_jobs` or fewer ready jobs (and ready x active backends <= 65,536),
///    they are list-scheduled instead of steps 3-5: highest priority, then longest first, each on
///    the backend where it is expected to end first, busy backends included, preferring one that
///    holds its loaders while that does not lengthen the plan. Free backends get what the plan
///    gives them first; one that the plan gives nothing stays idle (a long job waits for a fast
///    backend rather than starting on a slow one);
/// 3. hits: a free backend takes the first queued job of the top priority from its own group,
///    or one without loaders. It takes one of the group that will drain last instead when that
///    group, even with this backend and its load, would still drain more than one load time
///    after its own group without it (`rebalance`);
/// 4. misses: the group that will drain last (queued work / sum of the speeds of its backends,
///    infinite with none) gives its first job of the top priority to the free backend where it
///    ends first;
/// 5. anything else that fits a free backend, in queue order (lower priorities included).
/// A job's expected end on a backend = max(now, when the backend's prompts are expected to be
/// done) + the backend's measured load time if its last prompt had other loaders + cost / speed.
/// Deterministic: equal calls on equal state give equal assignments.
enum class PlacementPolicy {
  kAffinity,    ///< the farm's: see above
  kRoundRobin,  ///< ComfyPool PICK_ROUTINE (for benchmarks)
  kLeastQueue,  ///< ComfyPool PICK_LOWEST (for benchmarks)
};

struct SchedulerConfig {
  std::size_t queue_capacity = 1'000'000;
  double speed_alpha = 0.3;       ///< EWMA weight of a new speed (and load time) sample
  /// Bound on how many times a head job is passed over (kAffinity) and on jobs examined per
  /// decide() when scanning (at least 2 x free slots for the other policies).
  std::size_t lookahead = 256;
  double model_load_ms = 5000;    ///< load time assumed before a backend's first measured load
  std::size_t tail_jobs = 128;    ///< ready jobs at or below which the tail is list-scheduled
  bool rebalance = true;          ///< move a backend to a lagging group before its own runs dry
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
  /// Whether some backend (up or down, not draining) has what the job needs and has not been
  /// blocked for its structure: false means the job can never run on this farm as it is.
  [[nodiscard]] bool placeable(JobId id) const;
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
    bool load_expected = false;  // sent to a backend whose previous prompt had other loaders
    BackendId on = 0;
    bool has_avoid = false;
    BackendId avoid = 0;
  };
  /// Jobs that share loaders: queued work and the capacity of the backends that hold them.
  struct Group {
    double queued_cost = 0;  // modelled cost at speed 1.0 of queued (ready or delayed) jobs
    std::size_t queued = 0;
    double capacity = 0;     // sum of speeds of the active backends whose previous prompt is ours
    std::size_t members = 0;
  };
  using DrainKey = std::pair<double, std::uint32_t>;  // (-queued_cost / capacity, group)

  std::uint32_t intern(const std::string& s);
  bool fits(const BackendView& b, const Job& j) const;
  bool fits_ignoring_avoid(const BackendView& b, const Job& j) const;
  bool has_room(const BackendView& b) const { return b.up && !b.draining && b.in_flight.size() < b.depth; }
  void refresh_free(BackendView& b);
  BackendView* pick(const Job& j);
  void release(BackendView& b, JobId id, double cost_ms, TimeMs now);
  void assign(JobId id, Job& j, BackendView& b, TimeMs now, std::vector<Assignment>& out);

  // kAffinity placement (see PlacementPolicy).
  std::vector<Assignment> decide_affinity(TimeMs now);
  bool decide_tail(TimeMs now, std::vector<Assignment>& out);
  bool needs_load(const BackendView& b, const Job& j) const {
    return j.affinity != 0 && b.previous_affinity != j.affinity;
  }
  double expected_finish(const BackendView& b, const Job& j, TimeMs now) const;
  BackendView* earliest_free_backend(const Job& j, TimeMs now);
  std::optional<JobId> hit_for(const BackendView& b, int top_priority) const;
  std::optional<JobId> first_fitting(std::uint32_t group, const BackendView& b, int top_priority) const;
  std::uint32_t lagging_group(std::uint32_t except, int top_priority) const;
  void recompute_expected_free(BackendView& b, TimeMs now);

  // Group accounting.
  static double drain_ms(const Group& g);
  void group_changed(std::uint32_t id, const Group& before);
  void add_queued(std::uint32_t group, double cost_ms, int sign);
  void recount(BackendView& b);

  SchedulerConfig config_;
  JobQueue queue_;
  RetryPolicy retry_;
  std::unordered_map<std::string, std::uint32_t> strings_;
  std::map<BackendId, BackendView> backends_;
  std::set<BackendId> free_;  // up, not draining, under depth
  std::unordered_map<JobId, Job> jobs_;
  std::unordered_map<std::uint32_t, Group> groups_;  // no entry for an empty, unheld group
  std::set<DrainKey> by_drain_;                       // groups with queued jobs, most behind first
  std::uint64_t assign_counter_ = 0;
  BackendId rr_last_ = 0;
  bool rr_started_ = false;
  std::size_t running_ = 0;
  JobId bypassed_head_ = 0;        // the head job being passed over, and how many times
  std::size_t head_bypasses_ = 0;
};

}  // namespace comfyfarm::scheduler
