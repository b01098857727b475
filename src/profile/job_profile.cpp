#include "profile/job_profile.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace comfyfarm::profile {

namespace {

template <class E, std::size_t N>
std::optional<E> lookup(const std::array<std::pair<E, std::string_view>, N>& table,
                        std::string_view s) noexcept {
  for (const auto& [e, name] : table) {
    if (name == s) return e;
  }
  return std::nullopt;
}

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E e) noexcept {
  for (const auto& [v, name] : table) {
    if (v == e) return name;
  }
  return "unknown";
}

constexpr std::array<std::pair<NodeStatus, std::string_view>, 6> kStatusNames{{
    {NodeStatus::kPending, "pending"},
    {NodeStatus::kExecuting, "executing"},
    {NodeStatus::kCompleted, "completed"},
    {NodeStatus::kCached, "cached"},
    {NodeStatus::kFailed, "failed"},
    {NodeStatus::kInterrupted, "interrupted"},
}};

constexpr std::array<std::pair<Outcome, std::string_view>, 6> kOutcomeNames{{
    {Outcome::kNotStarted, "not_started"},
    {Outcome::kRunning, "running"},
    {Outcome::kSucceeded, "succeeded"},
    {Outcome::kFailed, "failed"},
    {Outcome::kInterrupted, "interrupted"},
    {Outcome::kIncomplete, "incomplete"},
}};

constexpr std::array<std::pair<StartSource, std::string_view>, 3> kStartNames{{
    {StartSource::kRunningSnapshot, "running_snapshot"},
    {StartSource::kExecuting, "executing"},
    {StartSource::kHistory, "history"},
}};

constexpr std::array<std::pair<EndSource, std::string_view>, 7> kEndNames{{
    {EndSource::kFinishedSnapshot, "finished_snapshot"},
    {EndSource::kExecuted, "executed"},
    {EndSource::kNextNode, "next_node"},
    {EndSource::kPromptEnd, "prompt_end"},
    {EndSource::kError, "error"},
    {EndSource::kInterrupt, "interrupt"},
    {EndSource::kStreamEnd, "stream_end"},
}};

}  // namespace

std::string_view to_string(NodeStatus s) noexcept { return name_of(kStatusNames, s); }
std::string_view to_string(Outcome o) noexcept { return name_of(kOutcomeNames, o); }
std::string_view to_string(StartSource s) noexcept { return name_of(kStartNames, s); }
std::string_view to_string(EndSource s) noexcept { return name_of(kEndNames, s); }
std::optional<NodeStatus> node_status_from_string(std::string_view s) noexcept {
  return lookup(kStatusNames, s);
}
std::optional<Outcome> outcome_from_string(std::string_view s) noexcept {
  return lookup(kOutcomeNames, s);
}
std::optional<StartSource> start_source_from_string(std::string_view s) noexcept {
  return lookup(kStartNames, s);
}
std::optional<EndSource> end_source_from_string(std::string_view s) noexcept {
  return lookup(kEndNames, s);
}

const NodeProfile* JobProfile::find(std::string_view node_id) const noexcept {
  for (const auto& n : nodes) {
    if (n.id == node_id) return &n;
  }
  return nullptr;
}

Duration union_length(std::vector<NodeInterval> intervals) {
  if (intervals.empty()) return Duration::zero();
  std::sort(intervals.begin(), intervals.end(),
            [](const NodeInterval& a, const NodeInterval& b) { return a.start < b.start; });
  Duration total = Duration::zero();
  TimePoint cur_start = intervals.front().start;
  TimePoint cur_end = intervals.front().end;
  for (std::size_t i = 1; i < intervals.size(); ++i) {
    const auto& iv = intervals[i];
    if (iv.start > cur_end) {
      total += cur_end - cur_start;
      cur_start = iv.start;
      cur_end = iv.end;
    } else {
      cur_end = std::max(cur_end, iv.end);
    }
  }
  total += cur_end - cur_start;
  return total;
}

void summarize(JobProfile& profile) {
  ProfileSummary s;
  s.total_nodes = profile.nodes.size();
  std::vector<const NodeProfile*> timed;
  for (const auto& n : profile.nodes) {
    switch (n.status) {
      case NodeStatus::kPending: ++s.pending_nodes; break;
      case NodeStatus::kExecuting: ++s.executing_nodes; break;
      case NodeStatus::kCompleted: ++s.executed_nodes; break;
      case NodeStatus::kCached: ++s.cached_nodes; break;
      case NodeStatus::kFailed: ++s.failed_nodes; break;
      case NodeStatus::kInterrupted: ++s.interrupted_nodes; break;
    }
    if (!n.cached && n.duration && n.duration->count() > 0) timed.push_back(&n);
  }
  // Ties keep the order of `nodes` (start order).
  std::stable_sort(timed.begin(), timed.end(), [](const NodeProfile* a, const NodeProfile* b) {
    return *a->duration > *b->duration;
  });
  for (std::size_t i = 0; i < timed.size() && i < 5; ++i) {
    s.slowest_nodes.push_back(
        SlowNode{timed[i]->id, timed[i]->class_type, timed[i]->title, *timed[i]->duration});
  }
  for (const auto& n : profile.nodes) {
    if (!n.progress.empty()) s.progress_nodes.push_back(n.id);
  }
  profile.summary = std::move(s);
}

}  // namespace comfyfarm::profile
