// The farm's internal state, shared by farm.cpp (jobs, attempts, backends, recovery),
// front.cpp (the ComfyUI-compatible routes and /ws) and api.cpp (the farm API). Not installed.
#pragma once

#include "backend/backend_link.hpp"
#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "comfy/prompt_validator.hpp"
#include "farm/farm.hpp"
#include "farm/requirements.hpp"
#include "net/http_server.hpp"
#include "net/router.hpp"
#include "net/websocket_session.hpp"
#include "scheduler/scheduler.hpp"
#include "store/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace comfyfarm::farm {

namespace json = boost::json;

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

/// Milliseconds since the Unix epoch.
std::int64_t now_ms();

/// One backend of the farm.
struct BackendSlot {
  enum class Phase { kConnecting, kUp, kDown };

  std::string id;
  std::string url;
  bool persisted = false;  ///< added through the API (kept in the store), not from the config
  scheduler::BackendId sched_id = 0;
  std::shared_ptr<backend::BackendLink> link;
  Phase phase = Phase::kConnecting;
  bool drained = false;
  bool removed = false;
  std::int64_t added_at = 0;
  std::shared_ptr<const comfy::ObjectInfo> object_info;
  std::chrono::steady_clock::time_point catalog_at{};  ///< when object_info was read
  std::optional<comfy::SystemStats> system_stats;
  std::int64_t system_stats_at = 0;
  std::set<std::string> uploaded;     ///< farm input files already sent to it
  std::set<std::string> current_jobs;  ///< prompt ids it holds now
  std::string last_affinity;           ///< loaders of its last prompt
  std::uint64_t jobs_done = 0;
  std::uint64_t failures = 0;
  double busy_ms = 0;
  std::string last_error;
};

std::string_view to_string(BackendSlot::Phase phase) noexcept;

/// One job the farm has not finished.
struct Job {
  scheduler::JobId sched_id = 0;
  std::string id;  ///< the ComfyUI prompt_id
  std::shared_ptr<const json::object> prompt;
  json::object extra_data;  ///< the client's, without client_id
  std::string client_id;
  std::vector<std::string> outputs_to_execute;
  std::int64_t number = 0;
  int priority = 0;
  bool front = false;
  std::string batch;
  int max_attempts = 3;
  store::JobState state = store::JobState::kQueued;
  int attempts = 0;
  int retry_count = 0;
  std::string backend;  ///< the backend of the current (or last) attempt
  std::int64_t created_at = 0;
  std::int64_t attempt_started_at = 0;
  bool cancel_requested = false;
  WorkflowNeeds needs;
  double spec_cost = 0;     ///< the cost the scheduler was given
  bool cost_known = false;  ///< measured for its structure, not guessed
};

/// A segment of the schedule board: one attempt of one job on one backend.
struct BoardSegment {
  std::string job;
  std::string backend;
  std::int64_t start = 0;
  std::int64_t end = 0;  ///< 0 while running
  std::string outcome;   ///< "" while running
};

/// A connected /ws client.
struct WsClient {
  std::shared_ptr<net::WebSocketSession> session;
  std::string sid;
  bool preview_metadata = false;
  bool first_text_seen = false;
};

struct Farm::State : std::enable_shared_from_this<Farm::State> {
  State(boost::asio::io_context& context, FarmOptions options);

  boost::asio::io_context& context;
  Strand strand;
  FarmOptions options;
  /// Store calls, one thread: they run in the order they were posted (a job's transitions
  /// must not overtake each other), and SQLite serializes them anyway.
  boost::asio::thread_pool pool{1};
  boost::asio::thread_pool file_pool{2};  ///< input and output files
  std::unique_ptr<store::Store> store;
  scheduler::Scheduler sched;
  std::unique_ptr<net::HttpServer> http;

  // Backends.
  std::map<std::string, std::shared_ptr<BackendSlot>> backends;
  std::unordered_map<scheduler::BackendId, std::shared_ptr<BackendSlot>> by_sched_backend;
  scheduler::BackendId next_backend_id = 1;

  // Validation catalog: the union of every known backend's /object_info. Read from any thread.
  mutable std::mutex catalog_mu;
  std::shared_ptr<const comfy::NodeCatalog> catalog;
  std::shared_ptr<const std::string> catalog_json;
  std::set<std::string> backend_input_files;  ///< LoadImage choices of the backends

  // Jobs.
  std::unordered_map<std::string, std::shared_ptr<Job>> jobs;  ///< unfinished, by prompt id
  std::unordered_map<scheduler::JobId, std::shared_ptr<Job>> by_sched_job;
  scheduler::JobId next_job_id = 1;
  std::atomic<std::int64_t> next_number{0};
  std::size_t admitting = 0;  ///< submissions between the capacity check and registration
  std::size_t in_flight = 0;  ///< attempts running
  std::unordered_map<std::string, double> cost_by_structure;  ///< EWMA run ms at speed 1

  // Finished jobs' /history entries, completion order, bounded.
  std::list<std::pair<std::string, json::value>> history;
  std::unordered_map<std::string, std::list<std::pair<std::string, json::value>>::iterator>
      history_index;
  static constexpr std::size_t kMaxHistory = 10'000;

  std::deque<BoardSegment> board;
  static constexpr std::size_t kMaxBoard = 20'000;

  // /ws clients.
  std::unordered_map<std::uint64_t, WsClient> sockets;
  std::unordered_map<std::string, std::uint64_t> by_sid;

  // Timers and flags.
  boost::asio::steady_timer retry_timer;
  bool pump_posted = false;
  bool status_posted = false;
  bool stopping = false;
  std::function<void()> on_idle;  ///< set while stopping: runs when no attempt is in flight

  std::uint64_t submitted_total = 0;
  std::uint64_t succeeded_total = 0;
  std::uint64_t failed_total = 0;
  std::uint64_t retried_total = 0;

  // --- farm.cpp ---------------------------------------------------------------------------
  Result<void> open();
  void start();
  void begin_stop(std::chrono::milliseconds grace, std::function<void()> done);

  Result<std::shared_ptr<BackendSlot>> add_backend(const std::string& id, const std::string& url,
                                                   bool persisted, std::int64_t added_at,
                                                   bool drained);
  void remove_backend(const std::shared_ptr<BackendSlot>& b);
  void set_drained(const std::shared_ptr<BackendSlot>& b, bool drained);
  void rebuild_catalog();
  std::shared_ptr<const comfy::NodeCatalog> current_catalog() const;
  bool input_file_known(std::string_view filename) const;

  /// Registers a committed job with the scheduler (on the strand).
  Result<void> enqueue(const std::shared_ptr<Job>& job, scheduler::TimeMs ready_at);
  scheduler::JobSpec spec_of(const Job& job, scheduler::TimeMs ready_at) const;
  void pump();
  void do_pump();
  void arm_retry_timer();
  std::int64_t queue_remaining() const;
  void post_status();
  void remember_history(const std::string& id, json::value entry);
  std::optional<json::value> cached_history(const std::string& id) const;
  /// Cancels a job: removes it when queued, interrupts it when on a backend. kNotFound when
  /// it is not unfinished.
  Result<void> cancel_job(const std::string& id);
  /// Puts a finished (failed or cancelled) job back in the queue (farm API retry).
  boost::asio::awaitable<Result<void>> retry_job(std::string id);

  // Client events.
  void send_to_client(const std::string& client_id, const std::shared_ptr<const std::string>& frame,
                      bool binary);
  void send_event(const std::string& client_id, const comfy::Event& event);
  void ws_opened(const std::shared_ptr<net::WebSocketSession>& session, std::string client_id);
  void ws_message(std::uint64_t id, const net::WebSocketMessage& message);
  void ws_closed(std::uint64_t id);

  /// Output subfolder as clients see it: "<backend>" or "<backend>/<subfolder>".
  static std::string farm_subfolder(const std::string& backend, const std::string& subfolder);
  /// Rewrites the subfolders of a ui dict ({"images": [{filename, subfolder, type}]}).
  static void rewrite_output(json::value& ui, const std::string& backend);

  // --- front.cpp / api.cpp ------------------------------------------------------------------
  void add_front_routes(net::Router& router);
  void add_api_routes(net::Router& router);
  /// Validates, commits and queues one prompt. Used by POST /prompt, the farm API and batches.
  struct Submission {
    json::object prompt;
    std::string prompt_id;  ///< empty: a fresh uuid
    std::string client_id;
    json::object extra_data;
    std::optional<std::int64_t> number;
    bool front = false;
    int priority = 0;
    std::string batch;
    std::optional<int> max_attempts;
    json::value metadata;
    std::optional<std::vector<std::string>> partial_execution_targets;
  };
  struct Accepted {
    std::string prompt_id;
    std::int64_t number = 0;
    std::vector<comfy::NodeError> node_errors;
    bool existed = false;  ///< the id was already known (idempotent resubmission)
  };
  /// On failure: the HTTP status and ComfyUI-shaped error body to answer.
  struct Refusal {
    int status = 400;
    json::value body;
  };
  using SubmitResult = std::variant<Accepted, Refusal>;
  /// Off the strand: validation. Then the store (group commit), then the strand.
  static boost::asio::awaitable<SubmitResult> submit(std::shared_ptr<State> self, Submission sub);
  /// Step 1 of submit alone (no side effect): the refusal a prompt would get, if any.
  std::optional<Refusal> check(const json::object& prompt) const;
};

/// Rebuilds an unfinished or finished job from its stored record.
std::shared_ptr<Job> job_from_record(const store::JobRecord& rec);
/// Starts following the jobs the store says were unfinished (start-up).
boost::asio::awaitable<void> recover(std::shared_ptr<Farm::State> s);

/// Runs `fn` (a named callable) on the strand from any coroutine and returns its result.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> on_strand(Farm::State& s, F& fn);

json::value error_json(std::string_view type, std::string_view message, json::value details = {});

/// ComfyUI-shaped error body {"error": {type, message, details, extra_info}, "node_errors": {}}.
json::value comfy_error_body(std::string_view type, std::string_view message,
                             std::string_view details = {});

}  // namespace comfyfarm::farm

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace comfyfarm::farm {

namespace detail {
template <class F, class R = std::invoke_result_t<F&>>
boost::asio::awaitable<std::optional<R>> strand_call(std::reference_wrapper<F> f) {
  co_return std::optional<R>(f.get()());
}
}  // namespace detail

template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> on_strand(Farm::State& s, F& fn) {
  auto work = detail::strand_call(std::ref(fn));
  auto out = co_await boost::asio::co_spawn(s.strand, std::move(work), boost::asio::use_awaitable);
  co_return std::move(*out);
}

}  // namespace comfyfarm::farm
