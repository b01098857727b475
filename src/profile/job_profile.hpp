// JobProfile: what one prompt's run looked like, node by node (seed 004's JobProfileStats and
// NodeExecutionProfile, plus the evidence behind each number). Built by JobProfiler.
#pragma once

#include "profile/time.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::profile {

/// Where a node stands. Every node of the workflow is in exactly one state.
enum class NodeStatus {
  kPending,      ///< never reached (not yet, or the prompt ended first, or not needed)
  kExecuting,    ///< started and not finished (only in a live profile)
  kCompleted,    ///< ran to completion in this prompt
  kCached,       ///< output taken from ComfyUI's cache: 0 ms, no `executing`
  kFailed,       ///< raised: named by execution_error
  kInterrupted,  ///< named by execution_interrupted (see NodeProfile::started_at)
};

/// How the prompt ended.
enum class Outcome {
  kNotStarted,   ///< no event of the prompt was seen (e.g. rejected by validation)
  kRunning,      ///< started, no terminal event yet
  kSucceeded,    ///< execution_success, or `executing` with node null and no error (old servers)
  kFailed,       ///< execution_error
  kInterrupted,  ///< execution_interrupted
  kIncomplete,   ///< the stream was closed without a terminal event (no client_id, lost socket)
};

/// Which event opened an interval.
enum class StartSource {
  kRunningSnapshot,  ///< progress_state entry turned "running" (ComfyUI >= 0.3.45)
  kExecuting,        ///< `executing` (older servers, or a lazy node staged again)
  kHistory,          ///< from a history entry's server timestamps (no per-node time)
};

/// Which event closed an interval; see docs/profiling.md for the error bound of each.
enum class EndSource {
  kFinishedSnapshot,  ///< progress_state entry turned "finished"
  kExecuted,          ///< the node's `executed` (UI output), when it came first
  kNextNode,          ///< inferred: another node started (servers without progress_state;
                      ///< a lazy node staged again)
  kPromptEnd,         ///< inferred: the prompt's terminal event
  kError,             ///< the node's execution_error
  kInterrupt,         ///< execution_interrupted while the node reported progress
  kStreamEnd,         ///< inferred: the stream was closed (JobProfiler::close)
};

[[nodiscard]] std::string_view to_string(NodeStatus s) noexcept;
[[nodiscard]] std::string_view to_string(Outcome o) noexcept;
[[nodiscard]] std::string_view to_string(StartSource s) noexcept;
[[nodiscard]] std::string_view to_string(EndSource s) noexcept;
[[nodiscard]] std::optional<NodeStatus> node_status_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<Outcome> outcome_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<StartSource> start_source_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<EndSource> end_source_from_string(std::string_view s) noexcept;

/// One progress update of a node: a `progress` message or a changed progress_state value,
/// whichever arrived first (the other one is the same update and is not counted twice).
struct ProgressSample {
  TimePoint at{};
  double value = 0;
  double max = 0;
  friend bool operator==(const ProgressSample&, const ProgressSample&) = default;
};

/// One period during which a node ran. A node has several when it was staged again (lazy
/// inputs) or when expanded sub-nodes ran for it (their ids are in `unit`).
struct NodeInterval {
  TimePoint start{};
  TimePoint end{};
  StartSource start_source = StartSource::kRunningSnapshot;
  EndSource end_source = EndSource::kFinishedSnapshot;
  std::string unit{};  ///< the id on the wire: the node itself or an expanded sub-node
  [[nodiscard]] Duration duration() const noexcept { return end - start; }
  friend bool operator==(const NodeInterval&, const NodeInterval&) = default;
};

/// The exception a node raised (execution_error).
struct NodeFailure {
  std::string exception_type{};     ///< e.g. "IndexError", "torch.OutOfMemoryError"
  std::string exception_message{};  ///< as sent (normally ends with "\n")
  friend bool operator==(const NodeFailure&, const NodeFailure&) = default;
};

/// One node of the submitted workflow (expanded sub-nodes are folded into their display node).
struct NodeProfile {
  std::string id{};
  std::string class_type{};  ///< from the workflow, else from the server's node_type; "" if unknown
  std::string title{};       ///< _meta.title; "" when none
  NodeStatus status = NodeStatus::kPending;
  bool cached = false;      ///< served from cache (listed by execution_cached, or replayed only)
  bool has_output = false;  ///< sent `executed` (UI output), live or replayed from cache
  /// Start of the first interval. Unset for a node that never ran, including the node named by
  /// execution_interrupted that got `executing` but whose function never ran.
  std::optional<TimePoint> started_at{};
  std::optional<TimePoint> completed_at{};  ///< end of the last interval
  /// Time the node was busy: the length of the union of its intervals (so the intervals of a
  /// lazy node are summed, and sub-nodes running inside their parent are not counted twice).
  /// 0 for cached nodes; unset when not measured (never ran, or known only from history).
  std::optional<Duration> duration{};
  std::vector<NodeInterval> intervals{};  ///< in start order
  std::vector<ProgressSample> progress{};
  std::size_t executions = 0;  ///< times the node itself was started (2+: lazy inputs)
  std::vector<std::string> sub_nodes{};  ///< expanded ids (node expansion) mapped to this node
  std::size_t previews = 0;  ///< preview frames (binary types 1 and 4) attributed to it
  std::optional<std::string> progress_text{};  ///< last binary type-3 text
  std::optional<NodeFailure> error{};
  std::vector<std::string> inputs_from{};  ///< predecessors in the workflow (document order)
  std::optional<std::size_t> sequence{};  ///< 0-based position in start order
  friend bool operator==(const NodeProfile&, const NodeProfile&) = default;
};

/// An entry of the five slowest nodes.
struct SlowNode {
  std::string node_id{};
  std::string class_type{};
  std::string title{};
  Duration duration{};
  friend bool operator==(const SlowNode&, const SlowNode&) = default;
};

/// Counts over JobProfile::nodes. The status counts are disjoint and add up to total_nodes.
struct ProfileSummary {
  std::size_t total_nodes = 0;
  std::size_t executed_nodes = 0;  ///< status completed (ran to completion)
  std::size_t cached_nodes = 0;
  std::size_t failed_nodes = 0;
  std::size_t interrupted_nodes = 0;
  std::size_t executing_nodes = 0;
  std::size_t pending_nodes = 0;
  std::vector<SlowNode> slowest_nodes{};  ///< up to 5, by duration, cached nodes excluded
  std::vector<std::string> progress_nodes{};  ///< nodes with progress samples, in start order
  friend bool operator==(const ProfileSummary&, const ProfileSummary&) = default;
};

/// The prompt-level failure (execution_error) or interrupt.
struct PromptFailure {
  std::string node_id{};
  std::string node_type{};
  std::string exception_type{};     ///< empty for an interrupt
  std::string exception_message{};  ///< empty for an interrupt
  friend bool operator==(const PromptFailure&, const PromptFailure&) = default;
};

/// The profile of one prompt. All times are the caller's receive times (TimePoint) except the
/// server_* fields, which are the server's own millisecond timestamps on the server's clock.
struct JobProfile {
  std::string prompt_id{};
  std::string label{};     ///< the caller's name for the run ("run 1", a job id)
  std::string backend{};   ///< the server that ran it
  std::string workflow{};  ///< the caller's name for the workflow (file name)
  Outcome outcome = Outcome::kNotStarted;

  std::optional<TimePoint> queued_at{};     ///< JobProfiler::on_submitted
  std::optional<TimePoint> started_at{};    ///< execution_start received (else the first event)
  std::optional<TimePoint> completed_at{};  ///< terminal event received
  std::optional<TimePoint> closed_at{};     ///< `executing` with node null received
  bool start_inferred = false;       ///< no execution_start: started_at is the first event
  bool completion_inferred = false;  ///< no terminal event on the stream (history or close())
  std::optional<Duration> total_duration{};  ///< completed_at - (queued_at or started_at)
  std::optional<Duration> queue_time{};      ///< started_at - queued_at, at least 0
  std::optional<Duration> execution_time{};  ///< completed_at - started_at

  std::optional<std::int64_t> server_started_ms{};    ///< execution_start.timestamp
  std::optional<std::int64_t> server_completed_ms{};  ///< terminal event's timestamp
  /// max - min over the executor's events of (receive time - server timestamp): how much the
  /// delivery delay varied during the run, to within the timestamps' 1 ms resolution.
  std::optional<Duration> delivery_lag_spread{};

  bool graph_known = false;  ///< built with the workflow (critical path needs it)
  bool saw_progress_state = false;  ///< the server sends progress_state (>= 0.3.45)
  bool saw_execution_success = false;
  bool used_history = false;  ///< a history entry was merged (JobProfiler::on_history)
  std::optional<PromptFailure> error{};       ///< set when outcome is kFailed
  std::optional<PromptFailure> interrupted{}; ///< set when outcome is kInterrupted
  /// The server's own list of nodes that ran successfully (execution_error/interrupted), when sent.
  std::optional<std::vector<std::string>> server_executed{};

  /// Nodes that started, in start order, then the others in workflow order.
  std::vector<NodeProfile> nodes{};
  ProfileSummary summary{};

  std::size_t events = 0;          ///< events of this prompt that were applied
  std::size_t ignored_events = 0;  ///< events for other prompts, or after the end
  std::size_t dropped_events = 0;  ///< lost from the buffer while the prompt id was unknown

  [[nodiscard]] const NodeProfile* find(std::string_view node_id) const noexcept;
  friend bool operator==(const JobProfile&, const JobProfile&) = default;
};

/// Fills `summary` from `nodes` (used by the profiler and by readers of the JSON form).
void summarize(JobProfile& profile);

/// Length of the union of intervals (overlaps counted once).
[[nodiscard]] Duration union_length(std::vector<NodeInterval> intervals);

}  // namespace comfyfarm::profile
