// Recorded event streams (the ws.jsonl format of shared/fixtures/comfyui-real) and history
// entries as profiler input: reading them and profiling them in one call.
#pragma once

#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "comfy/workflow.hpp"
#include "core/error.hpp"
#include "profile/job_profile.hpp"
#include "profile/job_profiler.hpp"
#include "profile/time.hpp"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace comfyfarm::profile {

/// One received frame with its receive time.
struct TimedEvent {
  TimePoint received{};
  std::variant<comfy::Event, comfy::BinaryEvent> event{};
};

/// Reads a ws.jsonl recording: one JSON object per line with "t" (receive time, epoch seconds),
/// "kind" ("text" with "msg": {"type", "data"}, or "binary" with "event_type" and its decoded
/// fields) and optionally "dir" ("send" lines, the client's own frames, are skipped). Binary
/// lines become BinaryEvents without image bytes (the recording keeps only their headers).
/// Blank lines are skipped; any other malformed line is an Errc::kInvalidArgument error that
/// names its line number.
[[nodiscard]] Result<std::vector<TimedEvent>> read_ws_jsonl(std::string_view text);

/// The distinct prompt ids of a stream, in order of first appearance.
[[nodiscard]] std::vector<std::string> prompt_ids_in(std::span<const TimedEvent> events);

/// Feeds every event to the profiler in order.
void feed(JobProfiler& profiler, std::span<const TimedEvent> events);

/// Profiles one prompt of a recorded stream: options.prompt_id, or the first prompt id in the
/// stream. The stream is closed at its last event, so a prompt without a terminal event comes
/// out kIncomplete. `submitted` is the POST time when it is known (meta.json's t_post).
[[nodiscard]] JobProfile profile_trace(std::span<const TimedEvent> events,
                                       ProfilerOptions options = {},
                                       std::optional<comfy::Workflow> workflow = std::nullopt,
                                       std::optional<TimePoint> submitted = std::nullopt);

/// Profiles a prompt from its history entry alone: execution_start/cached/terminal messages with
/// the server's millisecond timestamps, so per-node durations are unknown (node statuses come
/// from the cached list, the terminal event's `executed` list, or the outputs' ancestors).
/// The workflow defaults to the one stored in the entry.
[[nodiscard]] JobProfile profile_history(const comfy::HistoryEntry& entry,
                                         ProfilerOptions options = {},
                                         std::optional<comfy::Workflow> workflow = std::nullopt);

}  // namespace comfyfarm::profile
