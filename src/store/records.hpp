// The rows the store keeps: jobs, their attempts, transitions and outputs, backends.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::store {

/// Life of a job. queued -> dispatched -> running -> succeeded | failed | cancelled; a retried
/// job goes back to queued. The store does not police the graph: transition() is a
/// compare-and-set on the current state, the service decides which moves are legal.
enum class JobState { kQueued, kDispatched, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view to_string(JobState state) noexcept;
std::optional<JobState> parse_job_state(std::string_view text) noexcept;
/// queued, dispatched and running are unfinished (crash recovery resumes them).
bool is_terminal(JobState state) noexcept;

/// What a caller submits. Times are milliseconds since the Unix epoch, passed in: the store
/// never reads the clock.
struct NewJob {
  std::string id;  ///< the ComfyUI prompt_id
  boost::json::value workflow;
  std::string client_id;
  int priority = 0;
  std::string batch_id;  ///< "" when the job is in no batch
  int max_attempts = 3;
  std::int64_t created_at = 0;
  std::int64_t number = 0;
  bool front = false;
  boost::json::value metadata;    ///< null when none
  boost::json::value extra_data;  ///< null when none
};

struct JobRecord {
  std::int64_t seq = 0;  ///< insertion order; the pagination cursor
  std::string id;
  std::string workflow_hash;  ///< identical workflows are stored once under this hash
  boost::json::value workflow;
  std::string client_id;
  int priority = 0;
  std::string batch_id;
  JobState state = JobState::kQueued;
  int attempts = 0;
  int retry_count = 0;
  int max_attempts = 3;
  std::string backend_id;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  std::optional<std::int64_t> last_attempted_at;
  boost::json::value last_error;  ///< structured error JSON, null when none
  bool needs_regeneration = false;
  boost::json::value metadata;
  boost::json::value extra_data;
  std::int64_t number = 0;
  bool front = false;
};

/// list_jobs filters; every set field must match. Pages follow insertion (created) order.
struct JobFilter {
  std::optional<JobState> state;
  std::optional<std::string> batch_id;
  std::optional<std::string> client_id;
  std::int64_t after_seq = 0;  ///< cursor: only jobs with seq > after_seq
  std::size_t limit = 100;
};

struct JobPage {
  std::vector<JobRecord> jobs;
  std::optional<std::int64_t> next_after_seq;  ///< set when more jobs may follow
};

/// Columns a transition may set together with the state (each only when present).
struct TransitionFields {
  std::optional<std::string> backend_id;
  std::optional<boost::json::value> last_error;
  std::optional<bool> needs_regeneration;
  std::optional<int> attempts;
  std::optional<int> retry_count;
  std::optional<std::int64_t> last_attempted_at;
  std::optional<int> max_attempts;  ///< a regenerated job gets more attempts
};

struct TransitionRecord {
  std::string job_id;
  JobState from = JobState::kQueued;
  JobState to = JobState::kQueued;
  std::int64_t at = 0;
};

/// One try of a job on one backend; recorded when it starts and again (same attempt number)
/// when it ends.
struct AttemptRecord {
  std::string job_id;
  int attempt = 1;
  std::string backend_id;
  std::int64_t started_at = 0;
  std::optional<std::int64_t> ended_at;
  std::string outcome;       ///< "" while running; "succeeded", "oom", "backend_lost", ...
  boost::json::value error;  ///< null when none
};

struct OutputRecord {
  std::string node_id;
  std::string filename;
  std::string subfolder;
  std::string type;  ///< "output", "temp"
  std::string backend_id;
};

struct BackendRecord {
  std::string id;
  std::string url;
  std::string state;  ///< the service's own vocabulary ("up", "down", ...)
  bool drained = false;
  std::int64_t added_at = 0;
  boost::json::value settings;  ///< null when none
};

}  // namespace comfyfarm::store
