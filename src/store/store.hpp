// Store: the synchronous durable store of the farm. SQLite (embedded, WAL) is the default
// implementation; PostgreSQL will come behind the same interface. Every call is blocking: the
// service runs them on its blocking pool, never on an I/O thread. Thread-safe.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "store/records.hpp"

namespace comfyfarm::store {

/// SQLite `synchronous`: kNormal (WAL default) makes a commit durable against a crash of the
/// process (SIGKILL); kFull also against power loss, at the cost of an fsync per commit.
enum class Synchronous { kNormal, kFull };

struct StoreOptions {
  Synchronous synchronous = Synchronous::kNormal;
  int busy_timeout_ms = 5000;
  /// submit(): pending submissions beyond this are refused with kResourceExhausted.
  std::size_t submit_queue_limit = 65536;
  /// submit(): at most this many jobs are committed in one transaction.
  std::size_t max_group_size = 4096;
  /// How often a background thread copies the WAL into the database (a PASSIVE checkpoint on
  /// its own connection, so commits never wait for one).
  std::chrono::milliseconds checkpoint_interval{std::chrono::milliseconds(500)};
};

class Store {
 public:
  /// The newest schema version this binary knows.
  static constexpr int kSchemaVersion = 2;

  /// Opens (creating when absent) the SQLite database at `path` and migrates it. A file that is
  /// not a SQLite database, is corrupt, cannot be read, or has a newer schema than this binary
  /// knows is refused with a message naming the file; it is never written to.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& path,
                                             const StoreOptions& options = {});

  virtual ~Store() = default;
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  [[nodiscard]] virtual Result<int> schema_version() = 0;

  // --- jobs -----------------------------------------------------------------------------------
  /// Inserts one job in state queued, committed before it returns. kAlreadyExists on a duplicate
  /// id, kInvalidArgument on an empty id.
  [[nodiscard]] virtual Result<void> insert_job(const NewJob& job) = 0;
  /// Inserts all jobs in one transaction: all or none (a duplicate id fails the whole batch).
  [[nodiscard]] virtual Result<void> insert_jobs(const std::vector<NewJob>& jobs) = 0;
  /// Group commit: queues the job for a committer thread that writes concurrent submissions in
  /// one transaction. The future is ready only once the job's transaction committed (or failed:
  /// kAlreadyExists for a duplicate id, which fails only that job).
  [[nodiscard]] virtual std::future<Result<void>> submit(NewJob job) = 0;
  /// Group commit with a callback instead of a future: `done` runs once, on the committer
  /// thread (or on the caller's thread when the submission is refused at once), after the
  /// job's transaction committed or failed. Keep it short: post the result elsewhere.
  virtual void submit(NewJob job, std::function<void(Result<void>)> done) = 0;

  [[nodiscard]] virtual Result<JobRecord> get_job(std::string_view id) = 0;
  [[nodiscard]] virtual Result<JobPage> list_jobs(const JobFilter& filter) = 0;
  /// Jobs queued, dispatched or running, in insertion order: what a restart resumes.
  [[nodiscard]] virtual Result<std::vector<JobRecord>> unfinished_jobs() = 0;

  /// Compare-and-set: moves the job from `from` to `to` at `at` (ms since epoch), setting the
  /// given fields and recording the transition, in one transaction. kNotFound for an unknown
  /// id; kFailedPrecondition (naming the current state) when the job is not in `from`.
  [[nodiscard]] virtual Result<void> transition(std::string_view id, JobState from, JobState to,
                                                std::int64_t at,
                                                const TransitionFields& fields = {}) = 0;
  [[nodiscard]] virtual Result<std::vector<TransitionRecord>> transitions(std::string_view id) = 0;

  /// Records (or updates, same job and attempt number) an attempt; raises the job's attempts
  /// count to at least `attempt` and sets last_attempted_at. kNotFound for an unknown job.
  [[nodiscard]] virtual Result<void> record_attempt(const AttemptRecord& attempt) = 0;
  [[nodiscard]] virtual Result<std::vector<AttemptRecord>> attempts(std::string_view id) = 0;

  [[nodiscard]] virtual Result<void> add_outputs(std::string_view id,
                                                 const std::vector<OutputRecord>& outputs) = 0;
  [[nodiscard]] virtual Result<std::vector<OutputRecord>> outputs(std::string_view id) = 0;

  [[nodiscard]] virtual Result<void> set_profile(std::string_view id,
                                                 const boost::json::value& profile) = 0;
  [[nodiscard]] virtual Result<boost::json::value> get_profile(std::string_view id) = 0;
  /// The job's final result as the ComfyUI-compatible front answers it (its /history entry).
  [[nodiscard]] virtual Result<void> set_result(std::string_view id,
                                                const boost::json::value& result) = 0;
  [[nodiscard]] virtual Result<boost::json::value> get_result(std::string_view id) = 0;  ///< kNotFound
  /// The highest `number` of any job, -1 when there is none.
  [[nodiscard]] virtual Result<std::int64_t> max_number() = 0;
  /// The results of the `limit` jobs that ended last (succeeded, failed or cancelled), as
  /// (job id, result), oldest first: what a restarted farm shows in GET /history.
  [[nodiscard]] virtual Result<std::vector<std::pair<std::string, boost::json::value>>> recent_results(
      std::size_t limit) = 0;

  // --- backends -------------------------------------------------------------------------------
  [[nodiscard]] virtual Result<void> add_backend(
      const BackendRecord& backend) = 0;  ///< kAlreadyExists
  [[nodiscard]] virtual Result<void> update_backend(
      const BackendRecord& backend) = 0;  ///< kNotFound
  [[nodiscard]] virtual Result<BackendRecord> get_backend(std::string_view id) = 0;
  [[nodiscard]] virtual Result<std::vector<BackendRecord>> list_backends() = 0;
  [[nodiscard]] virtual Result<void> remove_backend(std::string_view id) = 0;  ///< kNotFound

  /// Distinct workflow bodies stored (identical workflows are stored once).
  [[nodiscard]] virtual Result<std::int64_t> workflow_count() = 0;
};

}  // namespace comfyfarm::store
