// JobProfiler: folds one prompt's ComfyUI events, stamped with their receive time, into a
// JobProfile. Pure: the caller passes the time; no clock, no I/O, no logging.
#pragma once

#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "comfy/workflow.hpp"
#include "profile/job_profile.hpp"
#include "profile/time.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace comfyfarm::profile {

struct ProfilerOptions {
  /// The prompt to follow. When unset, events are buffered (up to max_buffered_events) until
  /// set_prompt_id() names it, and close() adopts the first prompt id seen.
  std::optional<std::string> prompt_id{};
  std::string label{};     ///< copied to JobProfile::label
  std::string backend{};   ///< copied to JobProfile::backend
  std::string workflow{};  ///< copied to JobProfile::workflow
  std::size_t max_buffered_events = 4096;
};

/// Builds the profile of one prompt from its event stream. Feed it every event received on the
/// socket the prompt was submitted on (events of other prompts are ignored), with the time each
/// one was received; profile() can be called at any point.
///
/// Per node (a "unit" is an id on the wire: a node of the workflow or an expanded sub-node,
/// folded into its display node):
///
///     pending --running snapshot / executing--> open --finished snapshot / executed--> closed
///        |                                       |  \--executing again (lazy)--> closed + open
///        |                                       |--execution_error--> failed
///        |                                       \--execution_interrupted--> interrupted
///        \--execution_cached / finished or executed without a start--> cached
///
/// On servers without progress_state (< 0.3.45) a unit also closes when another unit starts or
/// the prompt ends. docs/profiling.md gives the exact rules and their error bounds.
///
/// Not thread-safe: one owner (e.g. the job's strand) calls it. Cost: O(1) per event except
/// progress_state, O(entries) with a cheap comparison per unchanged entry.
class JobProfiler {
 public:
  explicit JobProfiler(ProfilerOptions options = {},
                       std::optional<comfy::Workflow> workflow = std::nullopt);

  /// Names the prompt once the POST reply arrives; buffered events of that prompt are applied
  /// in order and the others dropped. A second call with another id is ignored.
  void set_prompt_id(std::string_view prompt_id);
  [[nodiscard]] const std::optional<std::string>& prompt_id() const noexcept { return prompt_id_; }

  /// The time the POST /prompt was sent (queue time is measured from it). May come before or
  /// after the prompt's first events.
  void on_submitted(TimePoint sent) noexcept;

  /// A text event received at `received`.
  void on_event(const comfy::Event& event, TimePoint received);
  /// A binary frame received at `received` (previews and progress text, attributed to nodes).
  void on_binary(const comfy::BinaryEvent& event, TimePoint received);

  /// Merges GET /history/{prompt_id}: the cached list, the outcome and the failing node when the
  /// stream lacked them (no client_id, lost socket), the workflow when none was given. With no
  /// events seen at all it is the only source, and the times are the server's timestamps.
  void on_history(const comfy::HistoryEntry& entry);

  /// No more events will come (timeout, socket lost, end of a recording) at `at`: nodes still
  /// open are closed by inference, and a prompt without a terminal event becomes kIncomplete.
  void close(TimePoint at);

  /// A terminal event was seen, or close() was called.
  [[nodiscard]] bool done() const noexcept { return terminal_ || closed_; }

  /// The profile so far. Nodes still running are kExecuting, with started_at and no duration.
  [[nodiscard]] JobProfile profile() const;
  /// The same, with running nodes' durations measured up to `now` (a live view).
  [[nodiscard]] JobProfile snapshot(TimePoint now) const;

 private:
  enum class Wire : std::uint8_t { kAbsent, kPending, kRunning, kFinished, kError };

  struct Unit {
    std::string id;
    std::uint32_t node = 0;  // index into nodes_
    Wire wire = Wire::kAbsent;
    bool open = false;
    bool open_has_executing = false;
    bool open_progress = false;
    TimePoint open_start{};
    StartSource open_source = StartSource::kRunningSnapshot;
    std::optional<TimePoint> first_other_start{};
    std::optional<TimePoint> executed_at{};
    double last_value = -1;
    double last_max = -1;
  };

  struct NodeState {
    NodeProfile p;             // intervals, progress and facts; derived fields filled by build()
    bool in_workflow = false;
    bool cached = false;
    bool failed = false;
    bool interrupted = false;
    bool ran_untimed = false;  // known to have run (history) without a time
    std::size_t order = 0;     // workflow position, or kAfterWorkflow + creation order
  };

  struct SnapshotEntry {
    std::string id;
    std::uint32_t unit = 0;
    comfy::Number value{};
    comfy::Number max{};
    Wire state = Wire::kAbsent;
  };

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using Index = std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>>;

  using Buffered = std::variant<comfy::Event, comfy::BinaryEvent>;

  bool accepts(std::optional<std::string_view> event_prompt);
  void apply(const comfy::Event& event, TimePoint t);
  void apply_binary(const comfy::BinaryEvent& event, TimePoint t);
  void replay_buffer();
  void adopt_first_buffered_prompt();

  std::uint32_t node_for(std::string_view id);
  std::uint32_t unit_for(std::string_view raw, std::string_view hint1, std::string_view hint2);
  std::optional<std::uint32_t> current_unit() const;

  void start(std::uint32_t unit, TimePoint t, StartSource source);
  void finish(std::uint32_t unit, TimePoint t);
  void on_executed(std::uint32_t unit, TimePoint t);
  void close_unit(std::uint32_t unit, TimePoint end, EndSource source);
  void discard_open(std::uint32_t unit);
  void add_sample(std::uint32_t unit, TimePoint t, double value, double max);
  void close_open_units(TimePoint t, EndSource fallback);
  void end_prompt(Outcome outcome, TimePoint t, std::optional<std::int64_t> server_ms);
  void lag_sample(TimePoint t, std::optional<std::int64_t> server_ms);
  void mark_cached(std::string_view id);
  void mark_ran(const std::vector<std::string>& ids);
  void adopt_workflow(const comfy::Workflow& workflow);

  JobProfile build(std::optional<TimePoint> now) const;

  ProfilerOptions options_;
  std::optional<comfy::Workflow> workflow_;
  std::optional<std::string> prompt_id_;

  std::vector<NodeState> nodes_;
  Index node_index_;
  std::vector<Unit> units_;
  Index unit_index_;
  std::vector<std::uint32_t> open_units_;  // in start order
  std::vector<SnapshotEntry> last_snapshot_;

  std::vector<std::pair<TimePoint, Buffered>> buffer_;

  std::optional<TimePoint> queued_at_;
  std::optional<TimePoint> first_event_at_;
  std::optional<TimePoint> last_event_at_;
  std::optional<TimePoint> started_at_;
  std::optional<TimePoint> completed_at_;
  std::optional<TimePoint> closed_at_;
  std::optional<std::int64_t> server_started_ms_;
  std::optional<std::int64_t> server_completed_ms_;
  std::optional<std::int64_t> lag_min_us_;
  std::optional<std::int64_t> lag_max_us_;
  Outcome outcome_ = Outcome::kNotStarted;
  bool terminal_ = false;
  bool closed_ = false;
  bool completion_inferred_ = false;
  bool saw_progress_state_ = false;
  bool saw_execution_success_ = false;
  bool used_history_ = false;
  std::optional<PromptFailure> error_;
  std::optional<PromptFailure> interrupted_;
  std::optional<std::vector<std::string>> server_executed_;
  std::size_t events_ = 0;
  std::size_t ignored_ = 0;
  std::size_t dropped_ = 0;
};

}  // namespace comfyfarm::profile
