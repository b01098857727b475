#include "store/records.hpp"

#include <array>
#include <utility>

namespace comfyfarm::store {
namespace {
constexpr std::array<std::pair<JobState, std::string_view>, 6> kNames{{
    {JobState::kQueued, "queued"},
    {JobState::kDispatched, "dispatched"},
    {JobState::kRunning, "running"},
    {JobState::kSucceeded, "succeeded"},
    {JobState::kFailed, "failed"},
    {JobState::kCancelled, "cancelled"},
}};
}  // namespace

std::string_view to_string(JobState state) noexcept {
  for (const auto& [s, name] : kNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<JobState> parse_job_state(std::string_view text) noexcept {
  for (const auto& [s, name] : kNames) {
    if (name == text) return s;
  }
  return std::nullopt;
}

bool is_terminal(JobState state) noexcept {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

}  // namespace comfyfarm::store
